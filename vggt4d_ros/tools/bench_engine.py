# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Benchmark the perception engine as the node runs it, without ROS: frames in, outputs out.

Feeds a synthetic moving 640x480 stream through ``PerceptionEngine`` (window manager -> VGGT4D
pipeline -> mapper -> camera-resolution masks) and prints per-window time by stage as a markdown
table: the pipeline's own stages (preprocess, pass1, cues, coarse, pass2, refine) and the
engine's (backend total, mapper, masks). ``--cprofile`` prints the top host functions, which
is how host-side stalls (syncs, Python loops) show up.

GPU (full model, random weights)::

    python -m vggt4d_ros.tools.bench_engine --config full --device cuda --windows 12

CPU smoke test::

    python -m vggt4d_ros.tools.bench_engine --config tiny --device cpu --windows 3 \
        --width 160 --height 120
"""

from __future__ import annotations

import argparse
import cProfile
from dataclasses import replace
import pstats
import time

import numpy as np
import torch

from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.prepare import prepare_model
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.window import replay_window
from vggt4d_ros.runtime.window import WindowConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', choices=('full', 'tiny'), default='full')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--window', type=int, default=8)
    parser.add_argument('--stride', type=int, default=4)
    parser.add_argument('--windows', type=int, default=12, help='windows to time')
    parser.add_argument('--compile', action='store_true', help='PipelineConfig.compile_model')
    parser.add_argument('--compile-mode', default=None,
                        help="torch.compile mode, e.g. 'max-autotune-no-cudagraphs'")
    parser.add_argument('--no-refine', action='store_true')
    parser.add_argument('--no-fused-gelu', action='store_true',
                        help='PipelineConfig.fused_gelu=False (exact GELU kernels)')
    parser.add_argument('--cprofile', action='store_true', help='print top host functions')
    parser.add_argument('--torch-profile', action='store_true',
                        help='torch.profiler tables (host and device ops) of the timed windows')
    return parser.parse_args(argv)


def moving_stream(count: int, height: int, width: int, seed: int = 0):
    """Textured background panning right, with a bright square moving the other way."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height, width * 2, 3), dtype=np.uint8)
    for index in range(count):
        shift = (index * 3) % width
        frame = np.ascontiguousarray(texture[:, shift:shift + width])
        x = (width - 80 - index * 7) % (width - 80)
        frame[height // 3:height // 3 + 80, x:x + 80] = (250, 40, 40)
        yield frame, index * 33_333_333


def build_engine(args: argparse.Namespace) -> PerceptionEngine:
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == 'cuda' else torch.float32
    config = VGGTConfig.full() if args.config == 'full' else VGGTConfig.tiny()
    with device:
        model = VGGT(config)
    model = model.to(dtype).eval()
    pipeline_config = PipelineConfig(compile_model=args.compile,
                                     refine_enabled=not args.no_refine,
                                     fused_gelu=not args.no_fused_gelu)
    if args.compile_mode:
        pipeline_config = replace(pipeline_config, compile_mode=args.compile_mode)
    model = prepare_model(model, pipeline_config, device)
    pipeline = VGGT4DPipeline(model, pipeline_config, device, dtype)
    window = replay_window(WindowConfig(window_size=args.window, stride=args.stride))
    return PerceptionEngine(pipeline, window, MapperConfig())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engine = build_engine(args)
    total = args.window + args.stride * (args.windows + 1)
    rows: list[dict[str, float]] = []
    profiler = cProfile.Profile() if args.cprofile else None
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.device(args.device).type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    torch_profiler = torch.profiler.profile(activities=activities) if args.torch_profile else None
    for index, (frame, stamp) in enumerate(moving_stream(total, args.height, args.width)):
        warm = index >= args.window + args.stride  # the first window is warm-up
        if profiler is not None and warm:
            profiler.enable()
        if torch_profiler is not None and index == args.window + args.stride:
            torch_profiler.start()
        tic = time.perf_counter()
        outputs = engine.push(frame, stamp)
        elapsed = time.perf_counter() - tic
        if profiler is not None:
            profiler.disable()
        for output in outputs:
            if warm:
                # Random weights give arbitrary coarse masks; the refinement's cost follows
                # their coverage, so it is listed with every window.
                coverage = float(output.result.coarse_masks.float().mean())
                rows.append({**output.result.timings, **output.timings, 'push': elapsed,
                             'coverage': coverage})
    if not rows:
        print('no window was timed')
        return 1
    keys = [key for key in rows[0] if key != 'coverage']
    print(f'# engine, {args.config} model, {args.device}, {args.width}x{args.height}, '
          f'window {args.window} / stride {args.stride}, {len(rows)} windows (median ms)')
    print('| ' + ' | '.join(keys) + ' |')
    print('|' + '---|' * len(keys))
    print('| ' + ' | '.join(f'{1000 * np.median([r[k] for r in rows]):.1f}' for k in keys) + ' |')
    print('per window (ms): ' + ', '.join(
        f"{k} {' '.join(f'{1000 * r.get(k, 0.0):.0f}' for r in rows)}"
        for k in ('cluster', 'refine', 'total')))
    print('coarse coverage per window (%): '
          + ' '.join(f"{100 * r['coverage']:.0f}" for r in rows))
    pipeline = getattr(engine.backend, 'pipeline', engine.backend)
    for name in ('_coarse_graph', '_cluster_graph'):
        graphed = getattr(pipeline, name, None)
        if graphed is not None:
            print(f'{name}: {graphed.captures} captures, failed={graphed.failed}')
    print(f'frames reused: {getattr(pipeline, "reused_frames", 0)}')
    if profiler is not None:
        pstats.Stats(profiler).sort_stats('cumulative').print_stats(40)
    if torch_profiler is not None:
        torch_profiler.stop()
        averages = torch_profiler.key_averages()
        print(averages.table(sort_by='self_cpu_time_total', row_limit=20))
        if len(activities) > 1:
            print(averages.table(sort_by='self_device_time_total', row_limit=20))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
