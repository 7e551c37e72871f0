# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The benchmarks' shared timer: median of repeated calls, CUDA events on a GPU."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def time_ms(fn: Callable[[], object], device: torch.device | str = 'cuda', repeats: int = 20,
            warmup: int = 2) -> float:
    """Median milliseconds of ``fn`` after ``warmup`` untimed calls.

    On CUDA each call is timed with events (device time, one wait per call); on the CPU with
    the wall clock.
    """
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        else:
            begin = time.perf_counter()
            fn()
            times.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(times)
