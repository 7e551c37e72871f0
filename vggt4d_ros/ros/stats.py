# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Thread-safe rate and latency statistics for diagnostics and the benchmark."""

from __future__ import annotations

import collections
import threading
import time

import numpy as np


class RateMeter:
    """Events per second over a sliding time window (monotonic clock)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window_s = window_s
        self._times: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self.total = 0

    def tick(self, now_s: float | None = None) -> None:
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            self._times.append(now_s)
            self.total += 1
            self._trim(now_s)

    def rate_hz(self, now_s: float | None = None) -> float:
        """Average rate over the window; 0 with fewer than two events."""
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            self._trim(now_s)
            if len(self._times) < 2:
                return 0.0
            span = max(now_s - self._times[0], self._times[-1] - self._times[0])
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now_s: float) -> None:
        while self._times and now_s - self._times[0] > self._window_s:
            self._times.popleft()


class LatencyMeter:
    """Keeps the last ``size`` latencies (seconds) and reports percentiles."""

    def __init__(self, size: int = 500) -> None:
        self._values: collections.deque = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(seconds)

    def percentile(self, q: float) -> float:
        """Return a percentile of the kept latencies in seconds (q in 0-100); NaN if empty."""
        with self._lock:
            if not self._values:
                return float('nan')
            return float(np.percentile(np.fromiter(self._values, dtype=np.float64), q))
