# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A second CUDA stream for the window's pose-free side work (``PipelineConfig.overlap_streams``).

Pass 1's heads and the refinement's pose-free half (candidates, 3D clusters) depend on
neither the cues nor pass 2, and only the candidates' last step reads the coarse mask. Queued
on a second stream they run on the device next to the main stream's work: the heads and the
outlier removal right after pass 1, next to the cues and the coarse stage (a CUDA graph of
thousands of tiny kernels that leaves most of the device idle); the coarse-mask restriction
and the 3D clusters next to pass 2 (~38 ms of GEMMs and attention on an H200). The pipeline
(``VGGT4DPipeline._window``) orders the launches so that the side's one host read (the
candidate count) comes after every launch of pass 2. With ``PipelineConfig.overlap_start``
'coarse' the heads and the outlier removal are queued after the coarse stage instead, so all
side work runs next to pass 2 and none next to the coarse stage's small kernels.

Ordering is by events only: the side stream waits for an event the main stream records
(:meth:`SideStream.follow_main`), the main stream waits for the side's last work
(:meth:`SideStream.join`). The kernels are the serial path's kernels: the results are the same
bits, only the order of the launches on the device changes.

The caching allocator hands a freed block back to the stream that allocated it at once, with
no regard for other streams still reading it: every tensor that crosses streams goes through
:meth:`SideStream.to_side` or :meth:`SideStream.to_main` (``Tensor.record_stream``), which
holds the block until the work queued on the other stream so far has finished.

Without a stream (CPU, option off) every method is a no-op and :meth:`SideStream.run` runs
its block on the current stream: the caller writes one flow for both cases.
"""

from __future__ import annotations

import contextlib
from dataclasses import fields, is_dataclass
from typing import Iterator

import torch


class SideStream:
    """The second stream of one pipeline, and the main stream of the window being run.

    Args:
        side: the side stream, made once per pipeline (None: no overlap, every call a no-op).

    """

    def __init__(self, side: torch.cuda.Stream | None) -> None:
        self.side = side
        self.main = torch.cuda.current_stream(side.device) if side is not None else None

    @property
    def active(self) -> bool:
        """Whether work is queued on a second stream at all."""
        return self.side is not None

    def follow_main(self) -> None:
        """Make the side stream wait for everything queued on the main stream so far."""
        if self.side is not None:
            _wait(self.side, self.main)

    def join(self) -> None:
        """Make the main stream wait for everything queued on the side stream so far."""
        if self.side is not None:
            _wait(self.main, self.side)

    @contextlib.contextmanager
    def run(self, on_side: bool = True) -> Iterator[None]:
        """Queue the block's device work on the side stream (``on_side`` and a stream)."""
        if self.side is None or not on_side:
            yield
            return
        with torch.cuda.stream(self.side):
            yield

    def to_side(self, *items: object) -> None:
        """Tensors made on the main stream that side work reads (``record_stream``)."""
        if self.side is not None:
            _record(items, self.side)

    def to_main(self, *items: object) -> None:
        """Tensors made on the side stream that main-stream work (or the caller) reads."""
        if self.side is not None:
            _record(items, self.main)


def _wait(waiting: torch.cuda.Stream, producer: torch.cuda.Stream) -> None:
    """Queue on ``waiting`` a wait for everything queued on ``producer`` so far (an event)."""
    done = torch.cuda.Event()
    done.record(producer)
    waiting.wait_event(done)


def _record(items: tuple[object, ...], stream: torch.cuda.Stream) -> None:
    """``record_stream`` every CUDA tensor in ``items`` (tensors, lists, dicts, dataclasses)."""
    for item in items:
        if isinstance(item, torch.Tensor):
            if item.is_cuda:
                item.record_stream(stream)
        elif isinstance(item, (list, tuple)):
            _record(tuple(item), stream)
        elif isinstance(item, dict):
            _record(tuple(item.values()), stream)
        elif is_dataclass(item) and not isinstance(item, type):
            _record(tuple(getattr(item, f.name) for f in fields(item)), stream)
