# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""FP8 (e4m3) linear layers for the fast mode (``PipelineConfig.precision='fast'``).

A :class:`Fp8Linear` holds its weight quantised once (when the model is prepared: the
"calibration" is the weight scales, computed from the weights themselves) and quantises its
input on every call with a scale computed from that input (dynamic, no calibration data):

    scale_w = amax(|W|) / 448      per output channel ('row') or per tensor ('tensor')
    scale_x = amax(|x|) / 448      per token ('row') or per tensor ('tensor')
    y = (x / scale_x → e4m3) @ (W / scale_w → e4m3)^T * scale_x * scale_w^T + b

On CUDA GPUs with FP8 tensor cores (compute capability 8.9 and newer) the product is
``torch._scaled_mm`` (fp32 accumulation, output in the input's dtype); elsewhere an fp32
emulation computes the same quantised product (dequantised operands, fp32 GEMM), so the CPU
runs the fast path's arithmetic for tests and deviation tables. Under ``torch.compile`` the
input's amax, scaling and cast are plain element-wise/reduction ops that inductor fuses into
the kernel producing the input (LayerNorm, GELU).

Quantisation changes the results: how much must be checked on the real checkpoint
(``tools/bench_fast_mode.py`` measures it on random weights only).
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import nn
import torch.nn.functional as F

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0
Scaling = Literal['row', 'tensor']
SCALINGS: tuple[str, ...] = ('row', 'tensor')
_TINY = 1e-12


def scaled_mm_supported(device: torch.device) -> bool:
    """Whether ``torch._scaled_mm`` runs FP8 on ``device`` (CUDA, compute capability >= 8.9)."""
    return device.type == 'cuda' and torch.cuda.get_device_capability(device) >= (8, 9)


def quantise(x: torch.Tensor, scaling: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_e4m3, scale)`` with ``x ≈ x_e4m3 * scale``; ``x[M,K]``.

    Returns ``scale`` as fp32 ``[M,1]`` for 'row' (one per row), ``[]`` for 'tensor'.
    """
    if scaling == 'row':
        amax = x.abs().amax(dim=-1, keepdim=True)
    elif scaling == 'tensor':
        amax = x.abs().amax()
    else:
        raise ValueError(f'unknown FP8 scaling {scaling!r}; one of {", ".join(SCALINGS)}')
    scale = (amax.float() / E4M3_MAX).clamp(min=_TINY)
    quantised = (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
    return quantised, scale


def fp8_matmul(x8: torch.Tensor, x_scale: torch.Tensor, w8: torch.Tensor,
               w_scale: torch.Tensor, out_dtype: torch.dtype,
               emulate: Optional[bool] = None) -> torch.Tensor:
    """``(x8 * x_scale) @ (w8 * w_scale)^T`` in ``out_dtype``, fp32 accumulation.

    Args:
        x8: ``e4m3[M,K]``; x_scale: fp32 ``[M,1]`` or ``[]``.
        w8: ``e4m3[N,K]``; w_scale: fp32 ``[N,1]`` or ``[]``.
        out_dtype: result dtype.
        emulate: force (True) or forbid (False) the fp32 emulation; None = emulate where
            :func:`scaled_mm_supported` says no.

    Returns:
        ``[M,N]``.
    """
    if emulate is None:
        emulate = not scaled_mm_supported(x8.device)
    if emulate:
        a = x8.float() * x_scale
        b = w8.float() * w_scale
        return (a @ b.t()).to(out_dtype)
    # Row-wise scales: scale_a [M,1], scale_b [1,N]; the weight operand is column-major.
    # cuBLAS's row-wise FP8 GEMM writes bf16 only; an fp32 caller (autocast) gets it cast.
    mm_dtype = torch.bfloat16 if x_scale.dim() and out_dtype == torch.float32 else out_dtype
    out = torch._scaled_mm(x8, w8.t(), scale_a=x_scale, scale_b=w_scale.t(),
                           out_dtype=mm_dtype)
    return out.to(out_dtype)


class Fp8Linear(nn.Module):
    """``nn.Linear`` with an e4m3 weight and a per-call e4m3 input (see the module docstring).

    Buffers: ``weight_fp8`` ``e4m3[N,K]``, ``weight_scale`` fp32 ``[N,1]`` or ``[]``; ``bias``
    ``[N]`` in the original dtype (added after the product).
    """

    def __init__(self, linear: nn.Linear, scaling: str = 'row') -> None:
        super().__init__()
        if scaling not in SCALINGS:
            raise ValueError(f'unknown FP8 scaling {scaling!r}; one of {", ".join(SCALINGS)}')
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.scaling = scaling
        with torch.no_grad():
            weight_fp8, weight_scale = quantise(linear.weight.detach(), scaling)
        self.register_buffer('weight_fp8', weight_fp8)
        self.register_buffer('weight_scale', weight_scale)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        self.register_buffer('bias', bias)
        # None = emulate where torch._scaled_mm cannot run FP8 (decided per device, on moves,
        # so that a compiled forward reads a flag instead of querying the driver).
        self.emulate: Optional[bool] = None
        self._emulate_here = not scaled_mm_supported(self.weight_fp8.device)

    def _apply(self, fn, *args, **kwargs) -> 'Fp8Linear':
        # model.to(bfloat16) must not turn the e4m3 weight into bf16 (every e4m3 value is a
        # bf16 value, so casting back is exact) nor round the fp32 scales.
        super()._apply(fn, *args, **kwargs)
        self.weight_fp8 = self.weight_fp8.to(E4M3)
        self.weight_scale = self.weight_scale.float()
        self._emulate_here = not scaled_mm_supported(self.weight_fp8.device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x[..., K]`` to ``[..., N]`` in ``x``'s dtype."""
        return self._forward(x, self.weight_fp8, self.weight_scale, self.bias)

    def forward_rows(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Output channels ``start:stop`` only: ``forward(x)[..., start:stop]``."""
        scale = self.weight_scale[start:stop] if self.weight_scale.dim() else self.weight_scale
        bias = None if self.bias is None else self.bias[start:stop]
        return self._forward(x, self.weight_fp8[start:stop], scale, bias)

    def _forward(self, x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor,
                 bias: Optional[torch.Tensor]) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        x8, x_scale = quantise(flat, self.scaling)
        emulate = self._emulate_here if self.emulate is None else self.emulate
        out = fp8_matmul(x8, x_scale, weight, scale, x.dtype, emulate)
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def extra_repr(self) -> str:
        """Sizes and scaling, as ``nn.Linear`` prints them."""
        return (f'in_features={self.in_features}, out_features={self.out_features}, '
                f'bias={self.bias is not None}, scaling={self.scaling}')


def linear_rows(linear: nn.Module, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Output channels ``start:stop`` of ``linear(x)`` (an ``nn.Linear`` or :class:`Fp8Linear`)."""
    if isinstance(linear, Fp8Linear):
        return linear.forward_rows(x, start, stop)
    bias = None if linear.bias is None else linear.bias[start:stop]
    return F.linear(x, linear.weight[start:stop], bias)


def quantise_linears(module: nn.Module, scaling: str = 'row',
                     emulate: Optional[bool] = None) -> int:
    """Replace every ``nn.Linear`` under ``module`` with an :class:`Fp8Linear`, in place.

    Weight scales are computed here, once. Layers whose sizes ``torch._scaled_mm`` cannot take
    (in or out features not a multiple of 16) stay as they are. Returns the number replaced.
    """
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear:
                continue
            if child.in_features % 16 or child.out_features % 16:
                continue
            layer = Fp8Linear(child, scaling)
            layer.emulate = emulate
            setattr(parent, name, layer)
            count += 1
    return count
