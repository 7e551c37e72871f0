# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Benchmark the VGGT4D window pipeline stage by stage (random weights, random images).

GPU (the target numbers):
    python -m vggt4d_ros.tools.bench_pipeline --frames 8 16 32 --height 392 --width 518

CPU smoke run:
    python -m vggt4d_ros.tools.bench_pipeline --config tiny --device cpu --frames 4 \
        --height 56 --width 70 --dtype fp32

Prints a markdown table: median seconds per stage over the timed runs and the peak device
memory (``torch.cuda.max_memory_allocated``, weights included). Random weights say nothing
about mask quality, and the refinement's cost depends on how many pixels the coarse mask
holds (random weights give arbitrary masks; the table reports the coarse-mask fraction).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Sequence

import torch

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.refine import RefineConfig

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}
COLUMNS = ('pass1', 'cues', 'coarse', 'pass2', 'refine', 'total')


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, nargs='+', default=[8, 16, 32])
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--config', choices=('full', 'tiny'), default='full')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', choices=tuple(DTYPES), default='bf16',
                        help='compute dtype of the network')
    parser.add_argument('--weights', choices=('cast', 'autocast'), default='cast',
                        help="'cast': weights in --dtype (fastest); 'autocast': fp32 weights "
                             'under autocast (the release mode)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--refine-mode', choices=('cluster', 'gradient', 'off'),
                        default='cluster')
    parser.add_argument('--neighbour-search', choices=('image', 'exact'), default='image')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the aggregator in place (slow first run)')
    parser.add_argument('--profile', action='store_true',
                        help='synchronise after every stage (wall-clock stage times)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def build_pipeline(args: argparse.Namespace) -> VGGT4DPipeline:
    torch.manual_seed(args.seed)
    config = VGGTConfig.full() if args.config == 'full' else VGGTConfig.tiny()
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    model = VGGT(config).eval()
    if args.weights == 'cast':
        model = model.to(dtype)
    model = model.to(device)
    if args.compile:
        model.aggregator.compile()
    refine = RefineConfig(mode='cluster' if args.refine_mode == 'off' else args.refine_mode,
                          neighbour_search=args.neighbour_search)
    pipe_config = PipelineConfig(refine=refine, refine_enabled=args.refine_mode != 'off',
                                 profile=args.profile)
    return VGGT4DPipeline(model, pipe_config, device=device, dtype=dtype)


def bench_one(pipe: VGGT4DPipeline, frames: int, args: argparse.Namespace) -> dict[str, float]:
    device = pipe.device
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.rand(frames, 3, args.height, args.width, generator=gen).to(device)
    stamps = list(range(frames))
    for _ in range(args.warmup):
        pipe.run_tensor(images, stamps)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    runs: list[dict[str, float]] = []
    coarse_fraction = 0.0
    for _ in range(args.repeats):
        begin = time.perf_counter()
        result = pipe.run_tensor(images, stamps)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        timings = dict(result.timings)
        timings['wall'] = time.perf_counter() - begin
        runs.append(timings)
        coarse_fraction = float(result.coarse_masks.float().mean())
    row = {name: statistics.median(r.get(name, 0.0) for r in runs) for name in runs[0]}
    row['peak_gib'] = (torch.cuda.max_memory_allocated(device) / 2**30
                       if device.type == 'cuda' else float('nan'))
    row['coarse_fraction'] = coarse_fraction
    return row


def format_table(rows: dict[int, dict[str, float]]) -> str:
    header = ('| frames | ' + ' | '.join(f'{c} (s)' for c in COLUMNS)
              + ' | wall (s) | peak GiB | coarse px |')
    lines = [header, '|' + '---|' * (len(COLUMNS) + 4)]
    for frames, row in rows.items():
        cells = [f'{row.get(c, 0.0):.4f}' for c in COLUMNS]
        lines.append(f'| {frames} | ' + ' | '.join(cells)
                     + f" | {row['wall']:.4f} | {row['peak_gib']:.2f}"
                     + f" | {100 * row['coarse_fraction']:.1f}% |")
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    pipe = build_pipeline(args)
    rows = {frames: bench_one(pipe, frames, args) for frames in args.frames}
    device_name = (torch.cuda.get_device_name(pipe.device) if pipe.device.type == 'cuda'
                   else 'cpu')
    print(f'VGGT4D pipeline, {args.config} model, {args.height}x{args.width}, '
          f'{args.dtype} ({args.weights}), refine={args.refine_mode}, '
          f'compile={args.compile}, torch {torch.__version__}, {device_name}')
    print(format_table(rows))


if __name__ == '__main__':
    main()
