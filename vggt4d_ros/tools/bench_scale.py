# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Added cost per window of each metric-scale source (and of the fusion), no network.

Builds oracle windows of S frames at VGGT's network size for a 640x480 camera (8 x 392 x 518,
crop mode), a simulated aligned depth image per frame at camera resolution and a noisy
odometry buffer, then times ``ScaleEstimator.update`` per source and ``ScaleFilter.update``.
Prints a markdown table (ms per window: p50 / p95 / max) and each source's scale error.

    python -m vggt4d_ros.tools.bench_scale --windows 20
    python -m vggt4d_ros.tools.bench_scale --device cuda   # WindowResult tensors on the GPU
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import os
import platform
import time

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import plan_resize
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.runtime.scale.config import ScaleConfig
from vggt4d_ros.runtime.scale.estimator import ScaleEstimator
from vggt4d_ros.runtime.scale.estimator import ScaleInputs
from vggt4d_ros.runtime.scale.filter import ScaleFilter
from vggt4d_ros.runtime.scale.testing import GROUND_CAMERA
from vggt4d_ros.runtime.scale.testing import ground_robot_scene
from vggt4d_ros.runtime.scale.testing import odometry_buffer
from vggt4d_ros.runtime.scale.testing import sensor_depth

STEP_NS = 200_000_000


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--windows', type=int, default=20, help='timed windows per source')
    parser.add_argument('--camera', default='480x640', help='camera HxW')
    parser.add_argument('--window-size', type=int, default=8)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def _windows(args: argparse.Namespace):
    """Yield (result on device, depth images, truth metres/unit) per window."""
    height, width = (int(v) for v in args.camera.lower().split('x'))
    plan = plan_resize((height, width))
    backend = OracleBackend(scene=ground_robot_scene(), network_hw=plan.network_hw,
                            seed=args.seed)
    rng = np.random.default_rng(args.seed)
    size = args.window_size
    for k in range(args.windows + 1):  # the first is a warm-up
        stamps = [(size // 2 * k + i) * STEP_NS for i in range(size)]
        result = replace(backend.run([], stamps), transform=plan).to(args.device)
        depths = {s: sensor_depth(backend, s, plan, rng) for s in stamps}
        yield result, depths, 1.0 / backend.window_scales[-1]


def _row(name: str, times: list[float], errors: list[float]) -> str:
    ms = np.array(times) * 1e3
    err = np.abs(np.array(errors)) * 100
    accuracy = f'{np.median(err):.2f} | {err.max():.2f}' if errors else '- | -'
    return (f'| {name} | {np.percentile(ms, 50):.2f} | {np.percentile(ms, 95):.2f} | '
            f'{ms.max():.2f} | {accuracy} |')


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    windows = list(_windows(args))
    odometry = odometry_buffer(ground_robot_scene(), 0,
                               (args.window_size // 2 * (args.windows + 2) + args.window_size)
                               * STEP_NS, np.random.default_rng(args.seed), rate_hz=50.0)
    inputs_base = ScaleInputs(odometry=odometry, base_from_camera=GROUND_CAMERA)
    print(f'# metric scale cost per window ({args.window_size} frames, camera {args.camera}, '
          f'network {tuple(windows[0][0].transform.network_hw)}, device {args.device}, '
          f'{args.threads} torch thread(s), {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} cores)\n')
    print('| source | p50 ms | p95 ms | max ms | median abs error % | max abs error % |')
    print('|---|---|---|---|---|---|')
    for source in ('depth', 'odometry', 'camera_height'):
        estimator = ScaleEstimator(ScaleConfig(source=source))
        times, errors = [], []
        for index, (result, depths, truth) in enumerate(windows):
            inputs = replace(inputs_base, depths=depths)
            if args.device.startswith('cuda'):
                torch.cuda.synchronize()
            tic = time.perf_counter()
            estimate = estimator.update(result, inputs)
            elapsed = time.perf_counter() - tic
            if index == 0:
                continue
            times.append(elapsed)
            if estimate.ok:
                errors.append(estimate.metres_per_unit / truth - 1.0)
        print(_row(source, times, errors))
    fusion = ScaleFilter()
    rng = np.random.default_rng(args.seed)
    times = []
    for _ in range(1000):
        value = float(np.exp(0.02 * rng.standard_normal()))
        tic = time.perf_counter()
        fusion.update(value, 0.01)
        times.append(time.perf_counter() - tic)
    print(_row('filter (fusion)', times, []))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
