# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""CUDA-graph replay of the launch-bound post-processing (k-means, multi-Otsu).

The coarse mask and the refinement's 3D k-means are thousands of tiny kernels (greedy
k-means++ is a Python loop of ~15 kernels per centre). Eagerly, the host spends ~8 us per
launch and the device mostly waits. A CUDA graph records the kernels once per input shape and
replays them with one launch; the replayed kernels are the recorded ones, so the results are
those of the eager run.

A function can be graphed when, for fixed input shapes, it launches the same kernels every
time: no host synchronisation, no host-to-device copy, no data-dependent shape, no generator
state (k-means takes its seeding draws as an input for this reason). Graphs are recorded from
two threads (the worker's pipeline, the output thread's perception): one capture at a time,
in thread-local capture mode (:meth:`GraphedFunction._record`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
import logging
import threading
from typing import Callable, Sequence

import torch

LOG = logging.getLogger(__name__)
#: Held while a graph is captured (the worker and the engine's output thread both record).
_CAPTURE_LOCK = threading.Lock()

GraphKey = tuple


@dataclass
class _Recorded:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]
    outputs: tuple[torch.Tensor, ...]


class GraphedFunction:
    """Replay ``fn(*tensors, **static) -> tensors`` from a CUDA graph, one per signature.

    Args:
        fn: the function; its tensor arguments are copied into static buffers before each
            replay, its outputs are cloned out of the graph's memory after it.
        max_graphs: recorded signatures kept (least recently used dropped first); each holds
            its own memory pool, so bound it where shapes vary (bucket them instead).
        clone_outputs: False returns the graph's own output tensors (one launch saved per
            output): valid until the next call with the same signature overwrites them. A
            state that ``fn`` updates in place and returns can be passed back as is: an
            argument that already is the graph's input tensor is not copied.

    On the CPU ``fn`` runs eagerly. A call whose capture fails runs eagerly (same results);
    a later call tries again, up to ``max_failures`` failed captures, after which every call
    runs eagerly (``failed``). One H100 run saw the instances graph's first capture fail after
    other CUDA tests in the same process and succeed in a fresh one (docs/performance.md
    section 13): a transient failure must not cost the rest of the process its graphs.
    """

    def __init__(self, fn: Callable[..., tuple], max_graphs: int = 4,
                 clone_outputs: bool = True, max_failures: int = 3) -> None:
        self.fn = fn
        self.max_graphs = max_graphs
        self.clone_outputs = clone_outputs
        self.max_failures = max_failures
        self._graphs: OrderedDict[GraphKey, _Recorded] = OrderedDict()
        self.capture_failures = 0
        self.captures = 0

    @property
    def failed(self) -> bool:
        """Whether captures failed ``max_failures`` times: every call now runs eagerly."""
        return self.capture_failures >= self.max_failures

    def clear(self) -> None:
        """Drop every recorded graph (and with it its memory pool)."""
        self._graphs.clear()

    @staticmethod
    def _on_cuda(tensors: Sequence[torch.Tensor]) -> bool:
        return tensors[0].is_cuda

    @staticmethod
    def _key(tensors: Sequence[torch.Tensor]) -> GraphKey:
        return tuple((tuple(t.shape), t.dtype, str(t.device)) for t in tensors)

    def __call__(self, *tensors: torch.Tensor, **static: object) -> tuple:
        """Run ``fn(*tensors, **static)`` (graph replay on CUDA).

        ``static`` holds hashable non-tensor arguments; they are part of the graph's key.
        """
        if self.failed or not self._on_cuda(tensors):
            return tuple(self.fn(*tensors, **static))
        key = (self._key(tensors), tuple(sorted(static.items())))
        recorded = self._graphs.get(key)
        if recorded is None:
            try:
                recorded = self._record(tensors, static)
            except RuntimeError as error:  # an op that cannot be captured: this call eager
                self.capture_failures += 1
                LOG.warning('CUDA graph capture of %s failed (%s); running eagerly (%s)',
                            getattr(self.fn, '__name__', self.fn), error,
                            'from now on' if self.failed else
                            f'this call; failure {self.capture_failures} of '
                            f'{self.max_failures}')
                return tuple(self.fn(*tensors, **static))
            self._graphs[key] = recorded
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        for static, value in zip(recorded.inputs, tensors):
            if value is not static:
                static.copy_(value)
        recorded.graph.replay()
        if not self.clone_outputs:
            return recorded.outputs
        return tuple(out.clone() for out in recorded.outputs)

    def _record(self, tensors: Sequence[torch.Tensor], static: dict) -> _Recorded:
        inputs = [t.clone() for t in tensors]
        # Warm up on a side stream (library handles, workspaces) as torch.cuda.graphs asks.
        side = torch.cuda.Stream(device=inputs[0].device)
        side.wait_stream(torch.cuda.current_stream(inputs[0].device))
        with torch.cuda.stream(side):
            self.fn(*inputs, **static)
        torch.cuda.current_stream(inputs[0].device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # One capture at a time in the process: torch.cuda.graph captures on one shared
        # stream. Thread-local capture: the engine's output thread records the perception graphs
        # while the worker runs the next window (and the worker records refinement buckets
        # while the output thread copies results to the host). In the default global mode a
        # host sync in the OTHER thread fails ('operation not permitted when stream is
        # capturing', H100, test_runtime_engine_output_stage.py). Every stream this project
        # captures or runs on is a non-blocking pool stream or the worker's, so nothing else
        # joins the capture.
        with _CAPTURE_LOCK, torch.cuda.graph(graph, capture_error_mode='thread_local'):
            outputs = tuple(self.fn(*inputs, **static))
        self.captures += 1
        return _Recorded(graph=graph, inputs=inputs, outputs=outputs)


def bucket_size(count: int, step: int = 1024, ratio: float = 1.25) -> int:
    """Round ``count`` up to a size from a geometric ladder of multiples of ``step``.

    Padding a data-dependent size to a few bucket sizes lets a graph recorded for one window
    be replayed for the next ones; the ratio bounds the padding waste.
    """
    size = step
    while size < count:
        size = max(size + step, int(size * ratio) // step * step)
    return size


def bucket_ladder(limit: int, step: int = 1024, ratio: float = 1.25) -> list[int]:
    """Every size :func:`bucket_size` returns for a count in ``1..limit``, ascending."""
    sizes = [bucket_size(1, step, ratio)]
    while sizes[-1] < limit:
        sizes.append(bucket_size(sizes[-1] + 1, step, ratio))
    return sizes
