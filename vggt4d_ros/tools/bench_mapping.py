# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Mapper cost per window and map size over a long synthetic run (no network).

Feeds ``Mapper.integrate`` with oracle ``WindowResult`` objects of S frames at the network
resolution (default 8 x 392 x 518, VGGT's size for 640x480 cameras) and prints a markdown
table: wall and CPU time per window (p50/p95/max), stage split, map size, window cloud size.

The oracle ray-casts at ``1/render_factor`` of the resolution and repeats pixels up to full
size, so generating the input is cheap; the mapper still sees full-size tensors.

    python -m vggt4d_ros.tools.bench_mapping --windows 200 --pixel-strides 4,6,8
    python -m vggt4d_ros.tools.bench_mapping --device cuda   # tensors start on the GPU
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import os
import platform
import time
from typing import Iterator

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import ResizeCrop
from vggt4d_ros.geometry.sim3 import umeyama
from vggt4d_ros.mapping.mapper import Mapper
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.mapping.voxel_map import VoxelMapConfig
from vggt4d_ros.motion.result import WindowResult

STEP_NS = 200_000_000


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--windows', type=int, default=100, help='windows per configuration')
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--window-size', type=int, default=8)
    parser.add_argument('--stride', type=int, default=4, help='new frames per window')
    parser.add_argument('--pixel-strides', default='4,6,8', help='mapper pixel strides to try')
    parser.add_argument('--voxel-size', type=float, default=0.02)
    parser.add_argument('--max-voxels', type=int, default=500_000)
    parser.add_argument('--render-factor', type=int, default=2, help='oracle ray-cast subsampling')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def _upscale(result: WindowResult, factor: int, device: str) -> WindowResult:
    """Repeat pixels ``factor`` times per axis; intrinsics follow (integer-pixel convention)."""
    if factor == 1:
        return result.to(device)

    def grow(x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)

    intrinsics = result.intrinsics.clone()
    intrinsics[:, :2, :2] *= factor
    intrinsics[:, :2, 2] = intrinsics[:, :2, 2] * factor + (factor - 1) / 2
    height, width = result.transform.network_hw
    size = (height * factor, width * factor)
    plan = ResizeCrop(size, size, size, (0, 0), 'crop')
    return replace(
        result,
        images=grow(result.images),
        depth=grow(result.depth),
        depth_conf=grow(result.depth_conf),
        intrinsics=intrinsics,
        coarse_masks=grow(result.coarse_masks),
        refined_masks=grow(result.refined_masks),
        transform=plan,
    ).to(device)


def _inputs(args: argparse.Namespace) -> tuple[Iterator[WindowResult], OracleBackend]:
    """Windows generated on the fly (a long run of full-size results does not fit in memory).

    Same seed, same windows: every configuration sees identical input.
    """
    factor = args.render_factor
    if args.height % factor or args.width % factor:
        raise SystemExit('height and width must be divisible by --render-factor')
    backend = OracleBackend(network_hw=(args.height // factor, args.width // factor),
                            seed=args.seed)

    def generate() -> Iterator[WindowResult]:
        for k in range(args.windows):
            first = k * args.stride
            stamps = [(first + i) * STEP_NS for i in range(args.window_size)]
            yield _upscale(backend.run([], stamps), factor, args.device)

    return generate(), backend


def _percentiles(values: list[float]) -> str:
    ms = np.asarray(values) * 1e3
    return ' / '.join(f'{v:.1f}' for v in (np.percentile(ms, 50), np.percentile(ms, 95), ms.max()))


def _run_one(args: argparse.Namespace, stride: int) -> dict[str, str]:
    results, backend = _inputs(args)
    config = MapperConfig(
        pixel_stride=stride,
        voxel=VoxelMapConfig(voxel_size=args.voxel_size, max_voxels=args.max_voxels),
    )
    mapper = Mapper(config)
    wall, cpu, stages, clouds = [], [], {'sample': [], 'align': [], 'fuse': []}, []
    for result in results:
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        tic_wall, tic_cpu = time.perf_counter(), time.thread_time()
        update = mapper.integrate(result)
        wall.append(time.perf_counter() - tic_wall)
        cpu.append(time.thread_time() - tic_cpu)
        for name in stages:
            stages[name].append(update.timings[name])
        clouds.append(len(update.points_xyz))
    # Skip the first window (warm-up allocations) in the statistics.
    est = mapper.trajectory.matrices()[:, :3, 3]
    truth = np.stack([backend.scene.camera_pose(s * 1e-9)[:3, 3]
                      for s in mapper.trajectory.stamps_ns])
    align = umeyama(est, truth)
    ate = float(np.sqrt(np.mean(np.sum((align.apply(est) - truth) ** 2, axis=1))))
    stage_p50 = ' / '.join(f'{np.median(v[1:]) * 1e3:.1f}' for v in stages.values())
    return {
        'pixel stride': str(stride),
        'wall ms p50/p95/max': _percentiles(wall[1:]),
        'CPU ms p50/p95/max': _percentiles(cpu[1:]),
        'sample/align/fuse ms p50': stage_p50,
        'cloud pts/window': f'{int(np.median(clouds))}',
        'voxels stored': f'{len(mapper.map)}',
        'voxels exported': f'{len(mapper.map.points()[0])}',
        'resets': f'{sum(mapper.stats.resets.values())}',
        'ATE (m)': f'{ate:.4f}',
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the markdown table."""
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    rows = [_run_one(args, int(s)) for s in args.pixel_strides.split(',')]
    print(f'# Mapper per window: {args.windows} windows of {args.window_size} frames at '
          f'{args.height}x{args.width}, {args.stride} new frames per window\n')
    print(f'device {args.device}, torch threads {args.threads}, {platform.processor() or "cpu"}, '
          f'{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, '
          f'voxel size {args.voxel_size} map units\n')
    header = list(rows[0])
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in rows:
        print('| ' + ' | '.join(row[h] for h in header) + ' |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
