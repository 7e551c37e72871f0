# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Benchmark one long VGGT4D window (128 / 256 / 500 frames): time and peak device memory.

GPU (full model, random bf16 weights, one window per size after an 8-frame warm-up):
    python -m vggt4d_ros.tools.bench_long_window --frames 128 256 500 --height 392 --width 518

CPU smoke run (tiny model):
    python -m vggt4d_ros.tools.bench_long_window --tiny --frames 16 40 --height 28 --width 42

Prints, per window size, the stage times (seconds), the wall time, the peak of
``torch.cuda.max_memory_allocated`` (weights included) and ``max_memory_reserved`` in GiB,
and next to it the analytic estimate of the pass-1 peak (:func:`estimate_memory`), which
``--estimate-only`` prints without running anything (CPU, no model memory). A window that
runs out of memory is reported as such and the next size still runs. Random weights say
nothing about mask quality, and the refinement's cost depends on how many pixels the random
coarse masks hold (reported as "coarse px").
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import gc
import time
from typing import Sequence

import torch

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.motion.pipeline import layers_for_depth
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.prepare import prepare_model
from vggt4d_ros.motion.refine import RefineConfig
from vggt4d_ros.tools.bench_pipeline import attention_backends
from vggt4d_ros.tools.bench_pipeline import SDPA_ORDERS

GIB = 2 ** 30
STAGES = ('pass1', 'heads1', 'cues', 'coarse', 'pass2', 'prepare', 'cluster', 'refine')
#: Live [T,C] activations of one transformer block at its peak, in units of the residual
#: stream: input, norm1, qkv (3; v stays a view of it), q after RoPE, k after QK-norm and the
#: three RoPE temporaries of k, plus the frame block's output a kept layer holds; the MLP's
#: peak (input, norm2, 4x hidden, output) is lower.
BLOCK_WORKING_SET = 11


@dataclass(frozen=True)
class MemoryEstimate:
    """Analytic pass-1 peak of one window, bytes per part (see :func:`estimate_memory`)."""

    weights: int
    images: int
    patch_features: int
    captures: int
    kept_layers: int
    block: int

    @property
    def total(self) -> int:
        return (self.weights + self.images + self.patch_features + self.captures
                + self.kept_layers + self.block)


def estimate_memory(config: VGGTConfig, frames: int, height: int, width: int,
                    activation_bytes: int = 2, weight_bytes: int = 2,
                    pipeline: PipelineConfig = PipelineConfig()) -> MemoryEstimate:
    """Pass-1 peak of a window: what is alive while the last kept aggregator block runs.

    Pass 1 holds its q/k captures (the cue layers' patch tokens), the DPT layers' outputs
    ([S,P,2C] each, 4 kept) and the running block's working set, besides the weights, the
    fp32 network images and the DINOv2 patch features that pass 2 reuses. Pass 2 holds no
    captures and keeps one layer's camera tokens only, and the heads run 8 frames at a time,
    so neither exceeds it. Everything here is linear in S: no [S*P,S*P] attention matrix
    exists (fused SDPA kernels), and the post-processing is chunked.

    Args:
        config: the model's sizes.
        frames, height, width: the window (network image size).
        activation_bytes: 2 for bf16 activations (weights cast to bf16); 4 for the fp32
            residual stream, QK-norm outputs and captures of the autocast mode.
        weight_bytes: 2 (cast) or 4 (fp32 weights under autocast).

    """
    with torch.device('meta'):
        params = sum(p.numel() for p in VGGT(config).parameters())
    patches = (height // config.patch_size) * (width // config.patch_size)
    tokens = frames * (config.patch_start_idx + patches)
    channels = config.embed_dim
    layers = layers_for_depth(pipeline.cues.layers, config.depth)
    captured = len(layers.q_blocks()) + len(layers.k_blocks())
    return MemoryEstimate(
        weights=params * weight_bytes,
        images=frames * 3 * height * width * 4,
        patch_features=frames * patches * channels * activation_bytes,
        captures=captured * frames * patches * channels * activation_bytes,
        kept_layers=len(config.kept_layers) * tokens * 2 * channels * activation_bytes,
        block=BLOCK_WORKING_SET * tokens * channels * activation_bytes)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, nargs='+', default=[128, 256, 500])
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--tiny', action='store_true', help='the tiny model (CPU smoke run)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--weights', choices=('cast', 'autocast'), default='cast',
                        help="'cast': bf16 weights and activations (the long-window mode); "
                             "'autocast': fp32 weights under bf16 autocast (the release mode)")
    parser.add_argument('--chunk-frames', type=int, default=PipelineConfig.chunk_frames,
                        help='PipelineConfig.chunk_frames')
    parser.add_argument('--refine-mode', choices=('cluster', 'gradient', 'off'),
                        default='cluster')
    parser.add_argument('--sdpa', default='default', choices=('default',) + tuple(SDPA_ORDERS),
                        help='SDPA backend priority order')
    parser.add_argument('--warmup-frames', type=int, default=8,
                        help='frames of the warm-up window (0 = none)')
    parser.add_argument('--estimate-only', action='store_true',
                        help='print the analytic memory estimate and exit')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def build_pipeline(args: argparse.Namespace) -> VGGT4DPipeline:
    torch.manual_seed(args.seed)
    config = VGGTConfig.tiny() if args.tiny else VGGTConfig.full()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == 'cuda' else torch.float32
    with device:  # initialise on the device: far faster than 1.26 B parameters on the CPU
        model = VGGT(config).eval()
    if args.weights == 'cast':
        model = model.to(dtype)
    refine = RefineConfig(mode='cluster' if args.refine_mode == 'off' else args.refine_mode)
    pipe_config = PipelineConfig(chunk_frames=args.chunk_frames, refine=refine,
                                 refine_enabled=args.refine_mode != 'off')
    model = prepare_model(model, pipe_config, device)
    return VGGT4DPipeline(model, pipe_config, device=device, dtype=dtype)


def _images(frames: int, args: argparse.Namespace, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(args.seed + frames)
    return torch.rand(frames, 3, args.height, args.width, generator=generator).to(device)


def run_window(pipe: VGGT4DPipeline, frames: int, args: argparse.Namespace) -> dict:
    """One window of ``frames`` frames: stage seconds, wall seconds, peak GiB (or 'oom')."""
    device = pipe.device
    cuda = device.type == 'cuda'
    images = _images(frames, args, device)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    begin = time.perf_counter()
    try:
        result = pipe.run_tensor(images, list(range(frames)))
    except torch.cuda.OutOfMemoryError as error:
        row = {'oom': str(error).splitlines()[0]}
    else:
        if cuda:
            torch.cuda.synchronize(device)
        row = dict(result.timings)
        row['coarse_fraction'] = float(result.coarse_masks.float().mean())
        del result
    row['wall'] = time.perf_counter() - begin
    row['peak_gib'] = torch.cuda.max_memory_allocated(device) / GIB if cuda else float('nan')
    row['reserved_gib'] = torch.cuda.max_memory_reserved(device) / GIB if cuda else float('nan')
    del images
    pipe.release_memory()
    gc.collect()
    return row


def format_rows(rows: dict[int, dict], estimates: dict[int, MemoryEstimate]) -> str:
    header = ('| frames | ' + ' | '.join(f'{s} (s)' for s in STAGES)
              + ' | total (s) | wall (s) | peak GiB | reserved GiB | estimate GiB | coarse px |')
    lines = [header, '|' + '---|' * (len(STAGES) + 7)]
    for frames, row in rows.items():
        estimate = f'{estimates[frames].total / GIB:.2f}'
        if 'oom' in row:
            lines.append(f'| {frames} | out of memory: {row["oom"][:80]} | '
                         + ' | ' * (len(STAGES) - 1)
                         + f'| {row["wall"]:.1f} | {row["peak_gib"]:.2f} | '
                         f'{row["reserved_gib"]:.2f} | {estimate} | |')
            continue
        cells = [f'{row.get(stage, 0.0):.3f}' for stage in STAGES]
        lines.append(f'| {frames} | ' + ' | '.join(cells)
                     + f' | {row["total"]:.2f} | {row["wall"]:.2f} | {row["peak_gib"]:.2f} | '
                     f'{row["reserved_gib"]:.2f} | {estimate} | '
                     f'{100 * row["coarse_fraction"]:.1f}% |')
    return '\n'.join(lines)


def format_estimates(estimates: dict[int, MemoryEstimate]) -> str:
    parts = ('weights', 'images', 'patch_features', 'captures', 'kept_layers', 'block')
    lines = ['| frames | ' + ' | '.join(parts) + ' | total GiB |',
             '|' + '---|' * (len(parts) + 2)]
    for frames, estimate in estimates.items():
        cells = [f'{getattr(estimate, part) / GIB:.3f}' for part in parts]
        lines.append(f'| {frames} | ' + ' | '.join(cells) + f' | {estimate.total / GIB:.2f} |')
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    config = VGGTConfig.tiny() if args.tiny else VGGTConfig.full()
    wide = 4 if args.weights == 'autocast' else 2
    activation = 2 if args.weights == 'cast' and torch.device(args.device).type == 'cuda' \
        else 4
    estimates = {frames: estimate_memory(config, frames, args.height, args.width, activation,
                                         wide) for frames in args.frames}
    print(f'analytic pass-1 peak, {"tiny" if args.tiny else "full"} model, '
          f'{args.height}x{args.width}, weights {args.weights} (GiB)')
    print(format_estimates(estimates), flush=True)
    if args.estimate_only:
        return
    pipe = build_pipeline(args)
    device = pipe.device
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    with attention_backends(args.sdpa):
        if args.warmup_frames:
            run_window(pipe, args.warmup_frames, args)
        rows = {frames: run_window(pipe, frames, args) for frames in args.frames}
    print(f'VGGT4D long window, {"tiny" if args.tiny else "full"} model, '
          f'{args.height}x{args.width}, weights {args.weights}, chunk_frames='
          f'{args.chunk_frames}, refine={args.refine_mode}, sdpa={args.sdpa}, '
          f'torch {torch.__version__}, {name}')
    print(format_rows(rows, estimates), flush=True)


if __name__ == '__main__':
    main()
