# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Deadlines for tests that wait, sized for a slow, busy machine.

A waiting test names how long what it waits for takes on an idle machine, with a margin; on a
loaded machine the same work takes proportionally longer, so the deadline is stretched by the
CPU contention measured now (pytest.ini puts test/ on sys.path: ``from waiting import ...``).
"""

from __future__ import annotations

import time


def cpu_contention(sample_cpu_s: float = 0.05) -> float:
    """Wall seconds this thread needs per CPU second right now (about 1 on an idle machine).

    A short busy loop measured in wall time and in thread CPU time: with N runnable processes
    on 2 cores it gets about 2/N of a core, so the ratio is the slowdown every process here
    (the node's too) sees at the moment.
    """
    wall_start, cpu_start = time.perf_counter(), time.thread_time()
    while time.thread_time() - cpu_start < sample_cpu_s:
        pass
    return (time.perf_counter() - wall_start) / max(time.thread_time() - cpu_start, 1e-9)


class LoadScaledDeadline:
    """A deadline of ``timeout_s`` seconds on an idle machine, stretched by the CPU contention.

    Waiting tests name how long what they wait for takes on an idle machine, with a margin;
    on a loaded machine the same work takes proportionally longer. The contention is measured
    when the wait starts and again when the stretched deadline is reached (the load may have
    grown meanwhile); the wait ends only when both measurements say the time is up. The
    stretch is capped so that a hung test still ends.
    """

    MAX_STRETCH = 20.0

    def __init__(self, timeout_s: float) -> None:
        self.start = time.monotonic()
        self.timeout_s = timeout_s
        self.stretch = self._measure()

    def _measure(self) -> float:
        return load_stretch()

    def expired(self) -> bool:
        elapsed = time.monotonic() - self.start
        if elapsed < self.timeout_s * self.stretch:
            return False
        self.stretch = max(self.stretch, self._measure())
        return elapsed >= self.timeout_s * self.stretch


def load_stretch() -> float:
    """Return the factor a deadline is stretched by now (1 on an idle machine, capped)."""
    return min(max(cpu_contention(), 1.0), LoadScaledDeadline.MAX_STRETCH)
