# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
r"""Time the VGGT heads on random tokens (GPU: full size; CPU: ``--tiny``).

Examples::

    python -m vggt4d_ros.model.heads.benchmark --frames 16 --height 392 --width 518 \\
        --dtype bf16 --heads camera depth point
    python -m vggt4d_ros.model.heads.benchmark --tiny --device cpu --dtype fp32

Weights are random (timing does not depend on them). The heads are cast to ``--dtype`` and fed
tokens of that dtype, which is how a model cast to bf16 runs them. Prints one line per head with
the median wall time over ``--repeats`` runs and the peak CUDA memory. ``--check`` also runs
each head in float32 on the same inputs and prints the relative L2 error of the main output
(the precision cost of ``--dtype``).
"""

import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from vggt4d_ros.model.heads import CameraHead, DPTHead, TrackHead

_DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
_PATCH = 14
_SPECIAL_TOKENS = 5
_LAYERS = (4, 11, 17, 23)


def _build_heads(dim_in: int, tiny: bool) -> Dict[str, nn.Module]:
    """Full-size heads, or small ones with the same structure for CPU smoke runs."""
    dpt_size = dict(features=32, out_channels=(16, 16, 32, 32)) if tiny else {}
    return {
        'camera': CameraHead(dim_in=dim_in, **(dict(trunk_depth=1, num_heads=4) if tiny else {})),
        'depth': DPTHead(dim_in=dim_in, output_dim=2, activation='exp', conf_activation='expp1',
                         **dpt_size),
        'point': DPTHead(dim_in=dim_in, output_dim=4, activation='inv_log',
                         conf_activation='expp1', **dpt_size),
        'track': TrackHead(dim_in=dim_in, **(dict(features=16, hidden_size=32, tracker_depth=1,
                                                  num_heads=4, num_virtual_tracks=4,
                                                  out_channels=(16, 16, 32, 32))
                                             if tiny else {})),
    }


def _time(run: Callable[[], object], device: torch.device, repeats: int) -> List[float]:
    """Wall seconds of ``run`` per repeat, after one warm-up, synchronising only around it."""
    run()
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def _main_output(output: object) -> torch.Tensor:
    """Pick the tensor to compare: final pose, dense values, or final track coordinates."""
    if isinstance(output, torch.Tensor):
        return output
    first = output[0]  # type: ignore[index]
    return first[-1] if isinstance(first, list) else first


def _error_vs_fp32(head: nn.Module, call: Callable[[], object]) -> float:
    """Relative L2 error of ``call()`` against the same head and inputs in float32.

    Only the head is cast: the tokens stay in the benchmark dtype (the heads cast them to their
    parameter dtype), so the error is that of running the head itself in low precision.
    """
    with torch.inference_mode():
        low = _main_output(call()).double()
        original_dtype = next(head.parameters()).dtype
        head.float()
        try:
            high = _main_output(call()).double()
        finally:
            head.to(original_dtype)
    return ((low - high).norm() / high.norm().clamp_min(1e-30)).item()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', choices=sorted(_DTYPES), default='bf16')
    parser.add_argument('--frames', type=int, default=16)
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--chunk', type=int, default=8, help='DPT frames_chunk_size')
    parser.add_argument('--queries', type=int, default=256, help='track head query points')
    parser.add_argument('--heads', nargs='+', default=['camera', 'depth', 'point', 'track'])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--tiny', action='store_true', help='small heads (CPU smoke run)')
    parser.add_argument('--check', action='store_true', help='relative error vs float32')
    args = parser.parse_args(argv)

    device, dtype = torch.device(args.device), _DTYPES[args.dtype]
    dim_in = 64 if args.tiny else 2048
    grid_h, grid_w = args.height // _PATCH, args.width // _PATCH
    tokens: List[Optional[torch.Tensor]] = [None] * 24
    for idx in _LAYERS:
        tokens[idx] = torch.randn(1, args.frames, _SPECIAL_TOKENS + grid_h * grid_w, dim_in,
                                  device=device, dtype=dtype)
    images = torch.rand(1, args.frames, 3, grid_h * _PATCH, grid_w * _PATCH, device=device)
    queries = torch.rand(1, args.queries, 2, device=device) * torch.tensor(
        [grid_w * _PATCH - 1.0, grid_h * _PATCH - 1.0], device=device)

    heads = _build_heads(dim_in, args.tiny)
    print(f'device={device} dtype={args.dtype} frames={args.frames} '
          f'image={grid_h * _PATCH}x{grid_w * _PATCH} chunk={args.chunk}')
    for name in args.heads:
        head = heads[name].to(device=device, dtype=dtype).eval()
        calls: Dict[str, Callable[[], object]] = {
            'camera': lambda: head(tokens),
            'depth': lambda: head(tokens, images, _SPECIAL_TOKENS, frames_chunk_size=args.chunk),
            'point': lambda: head(tokens, images, _SPECIAL_TOKENS, frames_chunk_size=args.chunk),
            'track': lambda: head(tokens, images, _SPECIAL_TOKENS, query_points=queries,
                                  frames_chunk_size=args.chunk),
        }
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode():
            times = _time(calls[name], device, args.repeats)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == 'cuda' else 0.0
        print(f'{name:7s} median {1e3 * statistics.median(times):8.2f} ms  '
              f'min {1e3 * min(times):8.2f} ms  peak {peak:6.2f} GiB')
        if args.check:
            print(f'{name:7s} relative L2 error vs fp32: {_error_vs_fp32(head, calls[name]):.3e}')
        head.to('cpu')


if __name__ == '__main__':
    main()
