# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Benchmark the node's track messages: rclpy message objects against ``track_cdr`` bytes.

Per message kind (detections, obstacles, markers) and track count, the median milliseconds of:
``message``: the pooled message builder of ``ros/perception_msgs.py`` plus
``serialize_message`` (what ``publish`` of a message object does before DDS); ``bytes``:
``ros/track_cdr.py`` (``publish`` of bytes hands them to DDS as they are). Printed as a
markdown table; needs rclpy and the generated vision_msgs / nav2_dynamic_msgs::

    python -m vggt4d_ros.tools.bench_track_msgs --tracks 5 --tracks 50
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
from rclpy.serialization import serialize_message

from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.ros import perception_msgs as pm
from vggt4d_ros.ros import track_cdr
from vggt4d_ros.ros.outputs import header_at

_KINDS = (('detections', pm.detections_msg, track_cdr.detections_cdr),
          ('obstacles', pm.obstacles_msg, track_cdr.obstacles_cdr),
          ('markers', pm.markers_msg, track_cdr.markers_cdr))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tracks', type=int, action='append', default=[],
                        help='track counts (repeatable; default 5 and 50)')
    parser.add_argument('--repeats', type=int, default=50, help='timed calls per cell')
    parser.add_argument('--seed', type=int, default=3)
    return parser.parse_args(argv)


def random_tracks(count: int, rng: np.random.Generator) -> list[Track]:
    """``count`` tracks with ids up to 5 digits and random states (Python-side cost only)."""
    return [Track(int(rng.integers(1, 100_000)), rng.normal(size=3), rng.normal(size=3),
                  rng.uniform(0.1, 2.0, 3), 0, 1.0, 10, 0.0, float(rng.uniform()),
                  float(rng.uniform(0.0, 0.1)), float(rng.uniform(0.0, 0.5)))
            for _ in range(count)]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall milliseconds of ``fn`` over ``repeats`` calls after 3 untimed ones."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        times.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    stamp_ns, frame = 1_700_000_000_123_456_789, 'map'
    header = header_at(stamp_ns, frame)
    print('| tracks | message | message ms (build + serialise) | bytes ms | ratio | bytes |')
    print('|---|---|---|---|---|---|')
    for count in args.tracks or [5, 50]:
        tracks = random_tracks(count, rng)
        for kind, build_msg, build_cdr in _KINDS:
            pool = pm.MessagePool()
            message = median_ms(
                lambda: serialize_message(build_msg(header, tracks, pool=pool)), args.repeats)
            raw = median_ms(lambda: build_cdr(stamp_ns, frame, tracks), args.repeats)
            size = len(build_cdr(stamp_ns, frame, tracks))
            print(f'| {count} | {kind} | {message:.3f} | {raw:.3f} | {message / raw:.1f}x '
                  f'| {size} |')


if __name__ == '__main__':
    main()
