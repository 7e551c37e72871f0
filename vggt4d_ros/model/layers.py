# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Transformer building blocks shared by DINOv2, the aggregator and the heads.

Parameter names (``fc1``, ``qkv``, ``q_norm``, ``ls1.gamma``, ...) are chosen so that a module tree
made of these layers produces exactly the key names of the released VGGT checkpoints.

Shapes: ``B`` batch (frames for frame attention), ``T`` tokens, ``C`` channels, ``H`` heads,
``D = C / H`` head dimension.
"""

from typing import Callable, Optional, Tuple, Union

import torch
from torch import nn
import torch.nn.functional as F

from vggt4d_ros.model.attention import attend, attend_kept_keys, BACKENDS, prime
from vggt4d_ros.model.fp8 import linear_rows
from vggt4d_ros.model.rope import RopeTable, RotaryPositionEmbedding2D

# (output [B,T,C], q [B,H,T,D], k [B,H,T,D]) when a block is asked for its queries and keys.
AttentionWithQK = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def attention_over_kept_keys(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                             index: torch.Tensor, backend: str = 'sdpa') -> torch.Tensor:
    """Attention of ``q[B,H,T,D]`` over the keys/values ``index`` (``Long[K]``) only.

    ``backend`` picks the kernel (:func:`vggt4d_ros.model.attention.attend_kept_keys`).
    """
    return attend_kept_keys(q, k, v, index, backend)


@torch.library.custom_op('vggt4d::kept_key_attention', mutates_args=())
def kept_key_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor, backend: str = 'sdpa'
) -> torch.Tensor:
    """Attention over the keys/values where ``keep`` (``Bool[T_kv]``) is True; ``[B,H,T,D]``.

    The same attention as a boolean key mask, computed on the kept keys only so that SDPA keeps
    its fused no-mask kernels (on an H200 a masked global block took 1.10 ms, unmasked 0.68).
    Dropping keys gives a data-dependent shape, which ``torch.compile`` cannot trace; as an
    opaque operator whose output has the query's shape it compiles without a graph break.
    """
    return attention_over_kept_keys(q, k, v, keep.nonzero().squeeze(1), backend).contiguous()


@kept_key_attention.register_fake
def _kept_key_attention_shape(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor, backend: str = 'sdpa'
) -> torch.Tensor:
    return torch.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)


@torch.library.custom_op('vggt4d::linear_gelu', mutates_args=())
def linear_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``gelu_tanh(x @ weight.T + bias)``: ``x[M,K]``, ``weight[N,K]``, ``bias[N]`` -> ``[M,N]``.

    On CUDA one cuBLASLt GEMM with a bias + GELU epilogue (tanh form), instead of a GEMM and a
    separate GELU kernel that writes and re-reads the ``[M,N]`` hidden layer (on an H200, VGGT's
    fc1 for 8 frames: 0.125 ms against 0.161 ms). As an opaque operator so that
    ``torch.compile`` does not decompose it back into the two kernels.
    """
    if x.is_cuda:
        return torch._addmm_activation(bias, x, weight.t(), use_gelu=True)
    return F.gelu(F.linear(x, weight, bias), approximate='tanh')


@linear_gelu.register_fake
def _linear_gelu_shape(x: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor) -> torch.Tensor:
    return x.new_empty((x.shape[0], weight.shape[0]))


class Mlp(nn.Module):
    """Two-layer perceptron ``fc2(act(fc1(x)))`` applied on the last dimension."""

    def __init__(
        self,
        in_features: int,
        hidden_features: Optional[int] = None,
        out_features: Optional[int] = None,
        act_layer: Callable[..., nn.Module] = nn.GELU,
        drop: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop = nn.Dropout(drop)
        # Set by :func:`use_fused_gelu`: fc1 + GELU as one GEMM with a GELU epilogue on CUDA.
        self.fused_gelu = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x[..., in_features]`` to ``[..., out_features]``."""
        if self._fuse(x):
            hidden = linear_gelu(x.reshape(-1, x.shape[-1]), self.fc1.weight, self.fc1.bias)
            x = self.drop(hidden.view(*x.shape[:-1], hidden.shape[-1]))
        else:
            x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))

    def _fuse(self, x: torch.Tensor) -> bool:
        # Half precision only: there the tanh form differs from the exact GELU far below the
        # rounding of the result (bf16: 4.7e-4 against a 4e-3 step); fp32 keeps the exact one.
        # Inference only: the operator has no backward.
        # Not for an FP8 fc1 (fast mode): that is no nn.Linear and has its own GEMM.
        return (self.fused_gelu and x.is_cuda and not torch.is_grad_enabled()
                and isinstance(self.fc1, nn.Linear)
                and x.dtype in (torch.bfloat16, torch.float16)
                and x.dtype == self.fc1.weight.dtype and self.fc1.bias is not None
                and type(self.act) is nn.GELU and self.act.approximate == 'none')


def use_fused_gelu(model: nn.Module, enabled: bool = True) -> int:
    """Turn the fused fc1 + GELU (:func:`linear_gelu`) on or off in every :class:`Mlp`.

    It only takes effect for half-precision inputs on CUDA. Returns the number of Mlps set.
    """
    mlps = [module for module in model.modules() if isinstance(module, Mlp)]
    for mlp in mlps:
        mlp.fused_gelu = enabled
    return len(mlps)


def use_attention_backend(model: nn.Module, backend: str = 'sdpa') -> int:
    """Set the attention backend of every :class:`Attention` in ``model``.

    ``backend`` is one of :data:`vggt4d_ros.model.attention.BACKENDS`; each call still falls
    back to SDPA where the kernel cannot run (:func:`vggt4d_ros.model.attention.select_kernel`).
    Returns the number of attention modules set.
    """
    if backend not in BACKENDS:
        raise ValueError(f'unknown attention backend {backend!r}; one of {", ".join(BACKENDS)}')
    first = next(model.parameters(), None)
    prime(backend, first.device if first is not None else torch.device('cpu'))
    modules = [module for module in model.modules() if isinstance(module, Attention)]
    for module in modules:
        module.backend = backend
    return len(modules)


class LayerScale(nn.Module):
    """Per-channel learned scale ``x * gamma``."""

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale ``x[..., dim]`` channel-wise."""
        return x * self.gamma


class Attention(nn.Module):
    """Multi-head self-attention with optional QK-LayerNorm and 2D RoPE, on SDPA.

    ``q_norm``/``k_norm`` normalise each head's ``D`` channels and run *before* RoPE, as in VGGT.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = False,
        norm_layer: Callable[..., nn.Module] = nn.LayerNorm,
        rope: Optional[RotaryPositionEmbedding2D] = None,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.rope = rope
        # Set by :func:`use_attention_backend` ('sdpa' = F.scaled_dot_product_attention as is).
        self.backend = 'sdpa'

    def forward(
        self,
        x: torch.Tensor,
        pos: Optional[RopeTable] = None,
        attn_mask: Optional[torch.Tensor] = None,
        return_qk: bool = False,
        kv_index: Optional[torch.Tensor] = None,
        kv_keep: Optional[torch.Tensor] = None,
    ) -> Union[torch.Tensor, AttentionWithQK]:
        """Attend over the tokens of ``x``.

        Args:
            x: tokens ``[B,T,C]``.
            pos: RoPE cos/sin tables broadcastable to ``[B,H,T,D]``; ignored without ``rope``.
            attn_mask: optional boolean mask broadcastable to ``[B,H,T,T]``, True = may attend.
                ``None`` keeps SDPA on its fused no-mask kernels.
            return_qk: also return the q and k (after QK-norm and RoPE, all tokens).
            kv_index: optional ``Long[T_kv]`` token indices whose keys/values are kept (same for
                every batch element); the others are dropped before SDPA, which keeps the
                fused kernels usable (an ``attn_mask`` may force a slower kernel).
            kv_keep: optional ``Bool[T]``, the same selection as a mask
                (:func:`kept_key_attention`; for compiled models).

        Returns:
            ``[B,T,C]``, or ``(out, q[B,H,T,D], k[B,H,T,D])`` when ``return_qk``.
        """
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q = self.q_norm(q)
        k = self.k_norm(k)
        if self.rope is not None and pos is not None:
            q = self.rope(q, pos)
            k = self.rope(k, pos)
        if kv_index is not None:
            out = attention_over_kept_keys(q, k, v, kv_index, self.backend)
        elif kv_keep is not None:
            out = kept_key_attention(q, k, v, kv_keep, self.backend)
        else:
            out = attend(q, k, v, self.backend, attn_mask)
        out = self.proj(out.transpose(1, 2).reshape(batch, tokens, channels))
        if return_qk:
            return out, q, k
        return out

    def forward_queries(
        self,
        x: torch.Tensor,
        query_index: torch.Tensor,
        pos: Optional[RopeTable] = None,
    ) -> torch.Tensor:
        """Attention output for the tokens ``query_index`` only; keys/values from all tokens.

        Equal to ``forward(x, pos)[:, query_index]`` without computing the other queries.

        Args:
            x: tokens ``[B,T,C]``.
            query_index: ``Long[Q]`` token indices.
            pos: RoPE tables for all ``T`` tokens, as in :meth:`forward`.

        Returns:
            ``[B,Q,C]``.
        """
        batch, tokens, channels = x.shape
        dim = self.num_heads * self.head_dim
        kv = linear_rows(self.qkv, x, dim, 3 * dim)
        k, v = kv.reshape(batch, tokens, 2, self.num_heads, self.head_dim).permute(
            2, 0, 3, 1, 4).unbind(0)
        q = linear_rows(self.qkv, x.index_select(1, query_index), 0, dim)
        q = q.reshape(batch, -1, self.num_heads, self.head_dim).transpose(1, 2)
        q = self.q_norm(q)
        k = self.k_norm(k)
        if self.rope is not None and pos is not None:
            q = self.rope(q, (pos[0].index_select(-2, query_index),
                              pos[1].index_select(-2, query_index)))
            k = self.rope(k, pos)
        out = attend(q, k, v, self.backend)
        return self.proj(out.transpose(1, 2).reshape(batch, -1, channels))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        init_values: Optional[float] = None,
        norm_layer: Callable[..., nn.Module] = nn.LayerNorm,
        qk_norm: bool = False,
        rope: Optional[RotaryPositionEmbedding2D] = None,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            proj_bias=proj_bias,
            qk_norm=qk_norm,
            norm_layer=norm_layer,
            rope=rope,
        )
        self.ls1 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), bias=ffn_bias)
        self.ls2 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        pos: Optional[RopeTable] = None,
        attn_mask: Optional[torch.Tensor] = None,
        return_qk: bool = False,
        kv_index: Optional[torch.Tensor] = None,
        kv_keep: Optional[torch.Tensor] = None,
    ) -> Union[torch.Tensor, AttentionWithQK]:
        """Run the block on ``x[B,T,C]``; see :meth:`Attention.forward` for the arguments."""
        attended = self.attn(
            self.norm1(x), pos=pos, attn_mask=attn_mask, return_qk=return_qk, kv_index=kv_index,
            kv_keep=kv_keep,
        )
        if return_qk:
            attended, q, k = attended
        x = x + self.ls1(attended)
        x = x + self.ls2(self.mlp(self.norm2(x)))
        if return_qk:
            return x, q, k
        return x

    def forward_queries(
        self, x: torch.Tensor, query_index: torch.Tensor, pos: Optional[RopeTable] = None
    ) -> torch.Tensor:
        """``forward(x, pos)[:, query_index]`` (``[B,Q,C]``) without the other tokens' outputs.

        Every token still serves as a key and value; only the queries, the projection and the
        MLP are restricted to ``query_index``. A last block whose output only a few tokens
        feed (VGGT's camera head reads the camera token alone) skips most of its work.
        """
        attended = self.attn.forward_queries(self.norm1(x), query_index, pos=pos)
        x = x.index_select(1, query_index) + self.ls1(attended)
        return x + self.ls2(self.mlp(self.norm2(x)))
