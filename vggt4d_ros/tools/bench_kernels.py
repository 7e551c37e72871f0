# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What the network's kernels can do: the library floor of one aggregator pass.

Times, on the aggregator's own shapes, the operations no implementation of VGGT can skip: the
four linear layers of a block (bf16 through cuBLAS, and FP8 with row-wise scales through
``torch._scaled_mm`` for comparison) and the attention of a frame and a global block through
each SDPA backend. The sum over 24 frame + 24 global blocks is the time an aggregator needs with
these kernels and nothing else (no LayerNorm, RoPE, residuals): the floor for our code on this
torch, as opposed to the datasheet floor in ``measurements.md``.

Usage (GPU machine): ``python3 -m vggt4d_ros.tools.bench_kernels --frames 8 16``.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend

from vggt4d_ros.tools.timing import time_ms

DIM = 1024
HEADS = 16
PATCH = 14
SPECIAL_TOKENS = 5  # camera + 4 registers
LINEARS = {'qkv': (DIM, 3 * DIM), 'proj': (DIM, DIM), 'fc1': (DIM, 4 * DIM),
           'fc2': (4 * DIM, DIM)}
BACKENDS = {'cudnn': SDPBackend.CUDNN_ATTENTION, 'flash': SDPBackend.FLASH_ATTENTION,
            'efficient': SDPBackend.EFFICIENT_ATTENTION}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, nargs='+', default=[8])
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--depth', type=int, default=24, help='frame/global block pairs')
    return parser.parse_args(argv)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """bf16 [M,K] -> (float8_e4m3fn [M,K], fp32 scale [M,1]) with per-row amax scaling."""
    scale = x.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / 448.0
    return (x.float() / scale).to(torch.float8_e4m3fn), scale


def linear_rows(tokens: int, repeats: int) -> dict[str, tuple[float, float, float]]:
    """Per linear layer: (bf16 ms, fp8 GEMM ms, fp8 GEMM + activation quantisation ms)."""
    rows = {}
    quantize = torch.compile(quantize_rows)
    for name, (k, n) in LINEARS.items():
        x = torch.randn(tokens, k, device='cuda', dtype=torch.bfloat16)
        w = torch.randn(n, k, device='cuda', dtype=torch.bfloat16) * k ** -0.5
        b = torch.randn(n, device='cuda', dtype=torch.bfloat16)
        bf16 = time_ms(lambda: F.linear(x, w, b), 'cuda', repeats, warmup=5)
        xq, xs = quantize(x)
        wq, ws = quantize_rows(w)
        try:
            def fp8() -> torch.Tensor:
                return torch._scaled_mm(xq, wq.t(), scale_a=xs, scale_b=ws.t(), bias=b,
                                        out_dtype=torch.bfloat16)

            gemm = time_ms(fp8, 'cuda', repeats, warmup=5)

            def fp8_quantized() -> torch.Tensor:
                xq_now, xs_now = quantize(x)
                return torch._scaled_mm(xq_now, wq.t(), scale_a=xs_now, scale_b=ws.t(),
                                        bias=b, out_dtype=torch.bfloat16)

            both = time_ms(fp8_quantized, 'cuda', repeats, warmup=5)
            error = ((fp8().float() - F.linear(x, w, b).float()).norm()
                     / F.linear(x, w, b).float().norm()).item()
            print(f'  {name}: fp8 rel. error vs bf16 {error:.2e}')
        except (RuntimeError, TypeError) as exc:  # not every build has row-wise FP8
            print(f'  {name}: fp8 unavailable ({str(exc).splitlines()[0][:100]})')
            gemm = both = float('nan')
        rows[name] = (bf16, gemm, both)
    return rows


def attention_rows(batch: int, tokens: int, repeats: int,
                   masked: bool) -> dict[str, float]:
    """Attention ms per SDPA backend for [batch, 16, tokens, 64] (optionally a key mask)."""
    q, k, v = (torch.randn(batch, HEADS, tokens, DIM // HEADS, device='cuda',
                           dtype=torch.bfloat16) for _ in range(3))
    mask = None
    if masked:  # a third of the keys removed, as a boolean key mask
        mask = (torch.rand(batch, 1, 1, tokens, device='cuda') > 0.33)
    rows = {}

    def attend() -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    for name, backend in BACKENDS.items():
        try:
            with sdpa_kernel([backend]):
                rows[name] = time_ms(attend, 'cuda', repeats, warmup=5)
        except RuntimeError:
            rows[name] = float('nan')
    rows['default'] = time_ms(attend, 'cuda', repeats, warmup=5)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print('bench_kernels needs a CUDA device')
        return 1
    per_frame = (args.height // PATCH) * (args.width // PATCH) + SPECIAL_TOKENS
    print(f'# kernels of one aggregator, {args.height}x{args.width}, {torch.__version__}, '
          f'{torch.cuda.get_device_name()}')
    for frames in args.frames:
        tokens = frames * per_frame
        linears = linear_rows(tokens, args.repeats)
        frame_attn = attention_rows(frames, per_frame, args.repeats, masked=False)
        global_attn = attention_rows(1, tokens, args.repeats, masked=False)
        global_masked = attention_rows(1, tokens, args.repeats, masked=True)
        print(f'\n## {frames} frames, {tokens} tokens')
        print('| linear | bf16 ms | bf16 TFLOP/s | fp8 GEMM ms | fp8 + quantise ms |')
        print('|---|---|---|---|---|')
        for name, (bf16, gemm, both) in linears.items():
            k, n = LINEARS[name]
            rate = 2 * tokens * k * n / bf16 / 1e9
            print(f'| {name} | {bf16:.3f} | {rate:.0f} | {gemm:.3f} | {both:.3f} |')
        print('| attention | ' + ' | '.join(frame_attn) + ' |')
        print('|---|' + '---|' * len(frame_attn))
        for label, row in (('frame', frame_attn), ('global', global_attn),
                           ('global, key mask', global_masked)):
            print(f'| {label} | ' + ' | '.join(f'{v:.3f}' for v in row.values()) + ' |')
        flops = 4 * tokens * tokens * DIM
        best_global = min(v for v in global_attn.values() if v == v)
        best_frame = min(v for v in frame_attn.values() if v == v)
        print(f'global attention best {best_global:.3f} ms = {flops / best_global / 1e9:.0f} '
              f'TFLOP/s')
        dense = sum(v[0] for v in linears.values())
        dense_fp8 = sum(v[2] for v in linears.values())
        block_pair = 2 * dense + best_frame + best_global
        print(f'aggregator library floor ({args.depth} frame + {args.depth} global blocks): '
              f'bf16 {args.depth * block_pair:.1f} ms (dense {2 * args.depth * dense:.1f}, '
              f'attention {args.depth * (best_frame + best_global):.1f}); with fp8 dense '
              f'{args.depth * (2 * dense_fp8 + best_frame + best_global):.1f} ms')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
