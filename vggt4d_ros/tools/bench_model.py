# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
r"""Benchmark one VGGT forward (random weights) per window size and print a markdown table.

Examples::

    # GPU (full model): fp32 weights + bf16 autocast vs bf16 weights, with/without point head
    python -m vggt4d_ros.tools.bench_model --frames 1 8 16 32 --height 392 --width 518 \
        --dtype bf16 --weights-dtype fp32 bf16 --heads camera,depth,point camera,depth
    # add torch.compile'd aggregator variants, and the VGGT4D two-pass pattern
    python -m vggt4d_ros.tools.bench_model --frames 8 --weights-dtype bf16 --compile --vggt4d
    # CPU smoke test
    python -m vggt4d_ros.tools.bench_model --config tiny --device cpu --frames 2 4 \
        --height 56 --width 70

Timing: warm-up runs, then the median of ``--repeats`` runs, each bracketed by
``torch.cuda.synchronize()`` (wall clock on CPU). Peak memory is
``torch.cuda.max_memory_allocated`` over the timed runs, weights included.
"""

import argparse
import dataclasses
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.hooks import CaptureRequest, KeyValueMask
from vggt4d_ros.model.vggt import VGGT

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}
# VGGT4D pass 1 captures these global blocks (see the method reference, section 3).
VGGT4D_Q_BLOCKS = (0, 3, 4, 5, 6, 7, 17, 18, 19, 20, 21)
VGGT4D_K_BLOCKS = (0,)


@dataclasses.dataclass
class Variant:
    """One benchmarked configuration."""

    weights: str
    heads: frozenset
    compiled: bool
    vggt4d: bool = False

    @property
    def name(self) -> str:
        heads = '+'.join(sorted(self.heads)) or 'aggregator only'
        parts = [f'{self.weights} weights', heads]
        if self.compiled:
            parts.append('compiled')
        if self.vggt4d:
            parts = [f'{self.weights} weights', 'VGGT4D 2 passes']
            parts += ['compiled'] if self.compiled else []
        return ', '.join(parts)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', choices=['full', 'tiny'], default='full')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--frames', type=int, nargs='+', default=[1, 8, 16, 32])
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--dtype', choices=list(DTYPES), default='bf16',
                        help='autocast dtype used with fp32 weights')
    parser.add_argument('--weights-dtype', choices=list(DTYPES), nargs='+', default=['bf16'])
    parser.add_argument('--heads', nargs='+', default=['camera,depth,point'],
                        help="comma-separated head sets, one per variant; 'none' = aggregator")
    parser.add_argument('--compile', action='store_true',
                        help="also run variants with a torch.compile'd aggregator")
    parser.add_argument('--compile-mode', default=None,
                        help="torch.compile mode, e.g. 'max-autotune-no-cudagraphs'")
    parser.add_argument('--vggt4d', action='store_true',
                        help='also time the VGGT4D pattern: capture pass + masked pass')
    parser.add_argument('--profile', action='store_true',
                        help='print a torch.profiler kernel table for each variant at the '
                             'largest window size')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=10)
    return parser.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time(
    fn: Callable[[], object], device: torch.device, warmup: int, repeats: int
) -> List[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _forward_fn(model: VGGT, variant: Variant, images: torch.Tensor,
                autocast_dtype: torch.dtype) -> Callable[[], object]:
    device = images.device
    use_autocast = variant.weights == 'fp32' and autocast_dtype != torch.float32
    frames = images.shape[0]
    patches = (images.shape[-2] // 14) * (images.shape[-1] // 14)
    generator = torch.Generator(device=device).manual_seed(0)
    dynamic = torch.rand(1, frames, patches, device=device, generator=generator) < 0.2

    def run() -> object:
        with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype,
                                             enabled=use_autocast):
            if not variant.vggt4d:
                return model(images, heads=variant.heads)
            request = CaptureRequest(VGGT4D_Q_BLOCKS, VGGT4D_K_BLOCKS, patch_features=True)
            first = model(images, capture=request, heads={'camera', 'depth'})
            mask = KeyValueMask(dynamic=dynamic)
            return model(images, kv_mask=mask, heads={'camera'},
                         patch_tokens=first['captures'].patch_features)
    return run


def _variants(args: argparse.Namespace) -> List[Variant]:
    variants = []
    for weights in args.weights_dtype:
        for compiled in ([False, True] if args.compile else [False]):
            for heads in args.heads:
                chosen = frozenset() if heads == 'none' else frozenset(heads.split(','))
                variants.append(Variant(weights, chosen, compiled))
            if args.vggt4d:
                variants.append(Variant(weights, frozenset(), compiled, vggt4d=True))
    return variants


def _build(args: argparse.Namespace, device: torch.device, weights: str,
           compiled: bool) -> VGGT:
    config = VGGTConfig.full() if args.config == 'full' else VGGTConfig.tiny()
    torch.manual_seed(0)
    with device:
        model = VGGT(config).eval()
    model = model.to(DTYPES[weights])
    if compiled:
        # In-place Module.compile keeps the state_dict keys (no '_orig_mod.' prefix).
        model.aggregator.compile(dynamic=False, mode=args.compile_mode)
    return model


def _profile(model: VGGT, variant: Variant, args: argparse.Namespace, device: torch.device,
             frames: int) -> None:
    """Print the most expensive operators of one forward."""
    images = torch.rand(frames, 3, args.height, args.width, device=device)
    fn = _forward_fn(model, variant, images, DTYPES[args.dtype])
    activities = [torch.profiler.ProfilerActivity.CPU]
    sort_by = 'cpu_time_total'
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        sort_by = 'cuda_time_total'
    fn()
    _sync(device)
    with torch.profiler.profile(activities=activities) as profiler:
        fn()
        _sync(device)
    print(f'\n## profile: {variant.name}, {frames} frames')
    print(profiler.key_averages().table(sort_by=sort_by, row_limit=25))


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or 'out of memory' in str(error)


def run_benchmark(args: argparse.Namespace) -> List[Dict[str, str]]:
    """Time every variant and window size; returns one row per (variant, frames)."""
    device = torch.device(args.device)
    rows = []
    for variant in _variants(args):
        model = _build(args, device, variant.weights, variant.compiled)
        for frames in args.frames:
            row = {'variant': variant.name, 'frames': str(frames)}
            try:
                images = torch.rand(frames, 3, args.height, args.width, device=device)
                fn = _forward_fn(model, variant, images, DTYPES[args.dtype])
                times = _time(fn, device, args.warmup, args.repeats)
                row['median_s'] = f'{statistics.median(times):.4f}'
                row['min_s'] = f'{min(times):.4f}'
                row['peak_gib'] = (f'{torch.cuda.max_memory_allocated(device) / 2**30:.2f}'
                                   if device.type == 'cuda' else 'n/a')
                row['status'] = 'ok'
            except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
                if not _is_oom(error):
                    raise
                row.update(median_s='-', min_s='-', peak_gib='-', status='OOM')
            finally:
                images = fn = None
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
            print(' | '.join(row.values()), flush=True)
            rows.append(row)
            if args.profile and frames == max(args.frames) and row['status'] == 'ok':
                _profile(model, variant, args, device, frames)
        del model
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return rows


def markdown_table(rows: List[Dict[str, str]]) -> str:
    """Format benchmark rows as a markdown table."""
    header = ['variant', 'frames', 'median_s', 'min_s', 'peak_gib', 'status']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row[key] for key in header) + ' |' for row in rows]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    print(f'# VGGT forward, {args.config} config, {args.height}x{args.width}, {name}, '
          f'torch {torch.__version__}, autocast {args.dtype} for fp32 weights')
    rows = run_benchmark(args)
    print()
    print(markdown_table(rows))


if __name__ == '__main__':
    main()
