# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Attention kernels at VGGT's own shapes: time, throughput and error of each backend.

The aggregator's attention comes in three shapes (8 frames at 392x518, 1,041 tokens a frame):
a frame block (``8 x 16 heads x 1,041 x 64``), a global block (``1 x 16 x 8,328 x 64``) and the
kept-key global blocks of pass 2 (the same queries over the static keys only). Each available
backend runs on the same bf16 inputs laid out as the model lays them out (``[B,T,H,D]`` memory,
the qkv projection's order; SDPA sees ``[B,H,T,D]`` views of it), and is compared with an fp32
reference of the same inputs. "Exact to bf16 rounding" means an error of the order of cuDNN's,
which the model uses today.

Backends: SDPA cuDNN / flash / memory-efficient, FlexAttention (compiled, no score mod),
FlashAttention-4 (``flash_attn.cute``, the CuTe-DSL wheel; skipped when not importable), each
through the same functions the model calls (``vggt4d_ros.model.attention``). The ``key-mask``
shape is pass 2's masked global block (``--kept`` of the keys kept) on every path the model
can take: boolean mask on SDPA, gathered keys (``nonzero``) on SDPA / FlashAttention-4, kept-first
keys with ``seqused_k`` on FlashAttention-4, a score modification on FlexAttention. TFLOP/s of
the masked rows count all keys.

Usage (GPU machine): ``python3 -m vggt4d_ros.tools.bench_attention --frames 8 16``.
"""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend

from vggt4d_ros.model import attention
from vggt4d_ros.tools.timing import time_ms

HEADS = 16
HEAD_DIM = 64
PATCH = 14
SPECIAL_TOKENS = 5  # camera + 4 registers
SDPA_BACKENDS = {'cudnn': SDPBackend.CUDNN_ATTENTION, 'flash2': SDPBackend.FLASH_ATTENTION,
                 'efficient': SDPBackend.EFFICIENT_ATTENTION}
#: Attention takes ``[B,T,H,D]`` q, k, v and returns ``[B,T,H,D]``.
Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, nargs='+', default=[8])
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--kept', type=float, default=0.85,
                        help='fraction of keys kept in the pass-2 shape')
    parser.add_argument('--repeats', type=int, default=30)
    return parser.parse_args(argv)


def sdpa(backend: SDPBackend) -> Attention:
    """SDPA restricted to one backend, on ``[B,H,T,D]`` views of ``[B,T,H,D]`` tensors."""
    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with sdpa_kernel([backend]):
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                 v.transpose(1, 2))
        return out.transpose(1, 2)
    return run


def _bhtd(run: Callable[..., torch.Tensor]) -> Attention:
    """Adapt a ``[B,H,T,D]`` attention to the ``[B,T,H,D]`` tensors of this benchmark."""
    def adapted(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return run(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    return adapted


def flex() -> Attention:
    """Run the model's FlexAttention path (compiled, no score modification)."""
    return _bhtd(attention.flex_attention)


def flash4() -> Attention | None:
    """Run the model's FlashAttention-4 path (``flash_attn.cute``); None when it cannot run."""
    probe = torch.empty(1, HEADS, 1, HEAD_DIM, device='cuda', dtype=torch.bfloat16)
    reason = attention.unavailable_reason('flash4', probe)
    if reason is not None:
        print(f'flash4 unavailable: {reason}')
        return None
    return _bhtd(attention.flash4_attention)


def backends() -> dict[str, Attention]:
    table: dict[str, Attention] = {name: sdpa(b) for name, b in SDPA_BACKENDS.items()}
    table['flex'] = flex()
    fa4 = flash4()
    if fa4 is not None:
        table['flash4'] = fa4
    return table


def masked_backends(keep: torch.Tensor, with_flash4: bool) -> dict[str, Attention]:
    """Pass 2's masked global block (keys ``keep``, ``Bool[T]``) as each path runs it.

    ``sdpa-mask``: a boolean mask on SDPA (cuDNN); ``<kernel>-index``: the keys gathered with
    ``nonzero`` (a host read; the model's eager path); ``flash4-seqused``: keys reordered
    kept-first with ``seqused_k`` (no host read); ``flex-mask``: a score modification.
    """
    mask = keep[None, None, None, :]
    keep_rows = keep[None, :]

    def index_path(kernel: str) -> Attention:
        return _bhtd(lambda q, k, v: attention.attend_kept_keys(
            q, k, v, keep.nonzero().squeeze(1), kernel))

    table: dict[str, Attention] = {
        'sdpa-mask': _bhtd(lambda q, k, v: F.scaled_dot_product_attention(q, k, v,
                                                                          attn_mask=mask)),
        'sdpa-index': index_path('sdpa'),
        'flex-mask': _bhtd(lambda q, k, v: attention.flex_attention(q, k, v, keep_rows)),
    }
    if with_flash4:
        table['flash4-index'] = index_path('flash4')
        table['flash4-seqused'] = _bhtd(lambda q, k, v: attention.flash4_key_masked_attention(
            q, k, v, keep_rows))
    return table


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              keep: torch.Tensor | None = None) -> torch.Tensor:
    """fp32 attention of the bf16 inputs (over the keys ``keep``), chunked over heads."""
    if keep is not None:
        k, v = k[:, keep], v[:, keep]
    outs = []
    for h in range(q.shape[2]):
        qh, kh, vh = (t[:, :, h].float() for t in (q, k, v))  # [B,T,D]
        with sdpa_kernel([SDPBackend.MATH]):
            outs.append(F.scaled_dot_product_attention(qh, kh, vh))
    return torch.stack(outs, dim=2)


def shapes(frames: int, height: int, width: int, kept: float) -> dict[str, tuple[int, int, int]]:
    """Shape name -> (batch, query tokens, key tokens)."""
    per_frame = (height // PATCH) * (width // PATCH) + SPECIAL_TOKENS
    tokens = frames * per_frame
    return {'frame': (frames, per_frame, per_frame), 'global': (1, tokens, tokens),
            'kept-key': (1, tokens, int(tokens * kept)), 'key-mask': (1, tokens, tokens)}


def measure(name: str, run: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            truth: torch.Tensor, repeats: int) -> tuple[float, float, float] | str:
    """(ms, TFLOP/s, max relative error) or the reason the backend failed."""
    try:
        out = run(q, k, v)
        torch.cuda.synchronize()
        ms = time_ms(lambda: run(q, k, v), 'cuda', repeats, warmup=3)
    except Exception as error:  # noqa: BLE001 - a backend that cannot run a shape says why
        return f'{type(error).__name__}: {str(error).splitlines()[0][:60]}'
    flop = 4.0 * q.shape[0] * q.shape[2] * q.shape[1] * k.shape[1] * q.shape[3]
    error = ((out.float() - truth).abs().max() / truth.abs().max()).item()
    return ms, flop / ms / 1e9, error


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    table = backends()
    print(f'# {torch.cuda.get_device_name()} torch {torch.__version__}')
    print('| frames | shape | backend | ms | TFLOP/s | max rel. error vs fp32 |')
    print('|---|---|---|---|---|---|')
    for frames in args.frames:
        for shape, (batch, queries, keys) in shapes(frames, args.height, args.width,
                                                    args.kept).items():
            def make(tokens: int) -> torch.Tensor:
                return torch.randn(batch, tokens, HEADS, HEAD_DIM, device='cuda',
                                   dtype=torch.bfloat16)
            q, k, v = make(queries), make(keys), make(keys)
            keep = None
            runs = table
            if shape == 'key-mask':
                keep = torch.rand(keys, device='cuda') < args.kept
                keep[:SPECIAL_TOKENS] = True
                runs = masked_backends(keep, 'flash4' in table)
            truth = reference(q, k, v, keep)
            for name, run in runs.items():
                row = measure(name, run, q, k, v, truth, args.repeats)
                cells = (f'{row[0]:.3f} | {row[1]:.0f} | {row[2]:.1e}'
                         if isinstance(row, tuple) else f'- | - | failed: {row}')
                print(f'| {frames} | {shape} {batch}x{queries}x{keys} | {name} | {cells} |',
                      flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
