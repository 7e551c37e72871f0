# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""OutputStage: one background thread that runs a window's outputs after the worker is done.

The engine's worker runs backend -> masks -> mapper per window; what comes after the mapper
(planner outputs, the sink's ``window_mapped``: TF, map and planner messages) does not feed the
next window, so with the stage on the worker hands it over here and starts the next window.

* FIFO, one thread: jobs run strictly in the order submitted (the tracker is sequential).
* Bounded: at most ``depth`` jobs wait besides the one running; :meth:`OutputStage.submit`
  blocks while the queue is full (back-pressure: nothing accepted is ever dropped) and
  returns how long it waited.
* Errors: an exception raised by a job is kept and re-raised on the submitting thread by the
  next :meth:`submit`, :meth:`drain` or :meth:`close` (once per error, oldest first); the
  stage goes on with the next jobs, as the synchronous engine goes on with the next window.
* :meth:`drain` waits until every accepted job ran; :meth:`close` drains and ends the thread.

:class:`StreamHandoff` moves device work across: the worker records an event on its stream
after the last write the job reads; the job's device work runs on the stage's own CUDA stream,
which waits for that event first (no host sync on the worker). No-op on the CPU.
"""

from __future__ import annotations

import collections
from contextlib import contextmanager
from dataclasses import dataclass, field
import threading
import time
from typing import Callable, Iterator

import torch

from vggt4d_ros.config_fields import field_meta as _meta

#: A unit of work of the stage.
Job = Callable[[], None]


@dataclass(frozen=True)
class OutputStageConfig:
    """Where the outputs after the mapper run (planner outputs, TF, map, planner messages)."""

    run_async: bool = field(default=True, metadata=_meta(
        'run the planner outputs and the publishing after the mapper on their own thread, so '
        'the next window starts at once (off: on the worker, in line; the outputs are the '
        'same either way).'))
    queue_depth: int = field(default=1, metadata=_meta(
        'windows that may wait for the output thread besides the one it runs; the worker '
        "blocks when more are pending (each holds its window's device tensors).",
        (1, 2)))


@dataclass
class StageStats:
    """Counters over the stage's life (read from any thread; written by the stage's)."""

    jobs: int = 0
    errors: int = 0
    waits: int = 0  # submits that blocked on a full queue
    wait_s: float = 0.0  # seconds the submitting thread blocked


class OutputStage:
    """A single background thread running jobs in order (see the module docstring).

    Args:
        depth: jobs that may wait besides the running one (>= 1).
        name: the thread's name.

    """

    def __init__(self, depth: int = 1, name: str = 'vggt4d_outputs') -> None:
        if depth < 1:
            raise ValueError(f'output stage depth must be >= 1, got {depth}')
        self.depth = depth
        self.stats = StageStats()
        self._jobs: collections.deque[Job] = collections.deque()
        self._errors: collections.deque[BaseException] = collections.deque()
        self._running = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs accepted and not finished (queued plus running)."""
        with self._cond:
            return len(self._jobs) + self._running

    def submit(self, job: Job) -> float:
        """Queue ``job`` (blocks while ``depth`` jobs wait); returns the seconds it blocked.

        The job is accepted before an earlier job's error is re-raised, so it runs either way.

        Raises:
            RuntimeError: the stage is closed.
            Exception: the oldest error of an earlier job not reported yet.

        """
        with self._cond:
            if self._closed:
                raise RuntimeError('output stage is closed')
            waited = 0.0
            if len(self._jobs) >= self.depth:
                start = time.perf_counter()
                self._cond.wait_for(lambda: len(self._jobs) < self.depth or self._closed)
                waited = time.perf_counter() - start
                self.stats.waits += 1
                self.stats.wait_s += waited
            if self._closed:
                raise RuntimeError('output stage is closed')
            self._jobs.append(job)
            self._cond.notify_all()
        self.raise_error()
        return waited

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every accepted job ran, then re-raise a pending error.

        Returns:
            True when drained, False when ``timeout_s`` passed first.

        """
        with self._cond:
            done = self._cond.wait_for(lambda: not self._jobs and not self._running, timeout_s)
        self.raise_error()
        return done

    def close(self, timeout_s: float | None = None) -> None:
        """Run what was accepted, end the thread (idempotent); then re-raise a pending error.

        ``timeout_s``: give up waiting for the thread after that long (it is a daemon thread;
        the jobs still queued then run only if it comes back).
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        self.raise_error()

    @property
    def alive(self) -> bool:
        """Whether the stage's thread still runs."""
        return self._thread.is_alive()

    def raise_error(self) -> None:
        """Re-raise the oldest error of a job not reported yet (no-op when there is none)."""
        with self._cond:
            error = self._errors.popleft() if self._errors else None
        if error is not None:
            raise error

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._jobs or self._closed)
                if not self._jobs:  # closed and drained
                    return
                job = self._jobs.popleft()
                self._running = True
                self._cond.notify_all()  # room in the queue
            try:
                job()
            except BaseException as error:  # noqa: B902 - reported on the submitting thread
                with self._cond:
                    self._errors.append(error)
                    self.stats.errors += 1
            finally:
                with self._cond:
                    self._running = False
                    self.stats.jobs += 1
                    self._cond.notify_all()


class StreamHandoff:
    """Device tensors from the worker's CUDA stream to the stage's own stream (CPU: no-op)."""

    def __init__(self) -> None:
        self._streams: dict[torch.device, torch.cuda.Stream] = {}

    @staticmethod
    def record(device: torch.device) -> torch.cuda.Event | None:
        """Worker side: an event after everything queued so far on the current stream."""
        if device.type != 'cuda':
            return None
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(device))
        return event

    @contextmanager
    def run(self, device: torch.device, event: torch.cuda.Event | None) -> Iterator[None]:
        """Stage side: run the block on the stage's stream, after ``event``.

        At the end the stage's stream is synchronised: the handed-over tensors (allocated on
        the worker's stream) are freed after the job, and their blocks may go to the worker's
        next window only once nothing here still reads them. Without an event nothing was
        handed over (the outputs run in line on the worker): the block runs on the current
        stream, as it does on the CPU.
        """
        if device.type != 'cuda' or event is None:
            yield
            return
        stream = self._streams.get(device)
        if stream is None:
            stream = self._streams[device] = torch.cuda.Stream(device)
        with torch.cuda.stream(stream):
            stream.wait_event(event)
            try:
                yield
            finally:
                stream.synchronize()


__all__ = ['Job', 'OutputStage', 'OutputStageConfig', 'StageStats', 'StreamHandoff']
