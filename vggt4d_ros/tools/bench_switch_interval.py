# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What Python's thread switch interval costs a thread of torch launches next to Python work.

The engine's worker launches thousands of small ops per window; torch releases the GIL in
each op and takes it back after. While another thread runs Python (the output thread's
tracker and planner messages, the image callbacks), the worker may wait for the GIL after
an op until the holder is asked to drop it: up to one switch interval (Python's default
5 ms; the node sets ``gil_switch_interval_ms``, docs/ros.md "Threading and drops"). This
prints, per interval, the time of ``--ops`` small ops alone and next to a thread running
pure Python (median and worst of ``--repeats``: the hand-over is a race)::

    python -m vggt4d_ros.tools.bench_switch_interval [--device cuda] [--ops 300]

No ROS, no model: the two threads' kinds of work only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

import torch

INTERVALS_MS = (5.0, 1.0, 0.5, 0.2, 0.1)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', help='where the launched ops run')
    parser.add_argument('--ops', type=int, default=300, help='ops launched per timing')
    parser.add_argument('--size', type=int, default=4096, help='elements per op')
    parser.add_argument('--repeats', type=int, default=7, help='timings next to Python')
    parser.add_argument('--intervals', type=float, nargs='+', default=INTERVALS_MS,
                        help='switch intervals to time, ms')
    return parser.parse_args(argv)


def _launches(x: torch.Tensor, ops: int) -> float:
    """Seconds to run ``ops`` small in-place ops on ``x`` (and wait for the device)."""
    tic = time.perf_counter()
    for _ in range(ops):
        x.mul_(1.0)
    if x.device.type == 'cuda':
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - tic


def _python(stop: threading.Event, done: list[int]) -> None:
    """Pure Python until ``stop`` (as message building); appends the iterations done."""
    count = 0
    while not stop.is_set():
        total = 0
        for i in range(200):
            total += i
        count += 1
    done.append(count)


def _next_to_python(x: torch.Tensor, ops: int) -> float:
    """Seconds of ``ops`` launches while another thread runs ``_python``."""
    stop, done = threading.Event(), []
    thread = threading.Thread(target=_python, args=(stop, done))
    thread.start()
    time.sleep(0.02)  # the Python thread holds the GIL by now
    seconds = _launches(x, ops)
    stop.set()
    thread.join()
    return seconds


def measure(interval_s: float, x: torch.Tensor, ops: int, repeats: int
            ) -> tuple[float, list[float]]:
    """Seconds of ``ops`` launches alone (best of 3) and next to Python (each repeat).

    The GIL's hand-over is a race (which thread wakes first), so the time next to Python
    swings between about alone and about one interval per op: every repeat is kept.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval_s)
    try:
        alone = min(_launches(x, ops) for _ in range(3))
        return alone, [_next_to_python(x, ops) for _ in range(repeats)]
    finally:
        sys.setswitchinterval(previous)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    x = torch.ones(args.size, device=args.device)
    _launches(x, 100)  # warm-up
    print(f'# bench_switch_interval: {args.ops} ops of {args.size} elements on {args.device}, '
          f'Python {sys.version.split()[0]}, torch {torch.__version__}')
    print('| switch interval ms | ops alone ms | ops next to Python: median / max ms | per op '
          'next to Python: median / max us |')
    print('|---|---|---|---|')
    for interval in args.intervals:
        alone, together = measure(interval * 1e-3, x, args.ops, args.repeats)
        middle, worst = statistics.median(together), max(together)
        print(f'| {interval:g} | {alone * 1e3:.1f} | {middle * 1e3:.1f} / {worst * 1e3:.1f} | '
              f'{middle / args.ops * 1e6:.0f} / {worst / args.ops * 1e6:.0f} |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
