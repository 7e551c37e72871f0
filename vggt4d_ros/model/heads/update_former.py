# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Transformer that updates point tracks (CoTracker-style, with virtual tracks).

Tokens are laid out ``[B, N tracks, T frames, C]``. Each layer attends along time per track, then
(optionally) across tracks per frame through a small set of learned *virtual* tracks: virtual
tokens read from the real tracks, attend among themselves, and the real tracks read back.

Parameter names follow the released VGGT checkpoint, including ``virual_tracks`` (sic) and the
``in_proj_weight``/``out_proj`` layout of ``torch.nn.MultiheadAttention``.
"""

from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F

from vggt4d_ros.model.layers import Mlp


class MultiheadAttention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameter layout, on SDPA.

    ``in_proj_weight`` stacks the q, k and v projections ``[3C, C]``; no masks, no dropout.
    """

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f'embed_dim {embed_dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B,L,C]`` -> ``[B,heads,L,C/heads]``."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def forward(self, query: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attend from ``query[B,L,C]`` to ``context[B,M,C]`` (itself when ``None``)."""
        if context is None:
            q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            w_q, w_kv = self.in_proj_weight.split((query.shape[-1], 2 * query.shape[-1]))
            b_q, b_kv = self.in_proj_bias.split((query.shape[-1], 2 * query.shape[-1]))
            q = F.linear(query, w_q, b_q)
            k, v = F.linear(context, w_kv, b_kv).chunk(2, dim=-1)
        attended = F.scaled_dot_product_attention(
            self._split_heads(q), self._split_heads(k), self._split_heads(v)
        )
        return self.out_proj(attended.transpose(1, 2).flatten(-2))


class AttnBlock(nn.Module):
    """Self-attention block whose residual stream starts *after* ``norm1``.

    ``y = norm1(x); y = y + attn(y); y = y + mlp(norm2(y))`` (the reference's layout).
    """

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.attn = MultiheadAttention(hidden_size, num_heads)
        self.mlp = Mlp(hidden_size, hidden_features=int(hidden_size * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x[B,L,C]`` to ``[B,L,C]``."""
        x = self.norm1(x)
        x = x + self.attn(x)
        return x + self.mlp(self.norm2(x))


class CrossAttnBlock(nn.Module):
    """Cross-attention block: ``y = norm1(x); y = y + attn(y, norm_context(c)); + mlp``."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size)
        self.norm_context = nn.LayerNorm(hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.cross_attn = MultiheadAttention(hidden_size, num_heads)
        self.mlp = Mlp(hidden_size, hidden_features=int(hidden_size * mlp_ratio))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Update ``x[B,L,C]`` from ``context[B,M,C]``."""
        x = self.norm1(x)
        x = x + self.cross_attn(x, self.norm_context(context))
        return x + self.mlp(self.norm2(x))


class EfficientUpdateFormer(nn.Module):
    """Predict per-track, per-frame updates ``[B,N,T,output_dim]`` from ``[B,N,T,input_dim]``.

    Args:
        space_depth: layers with cross-track (virtual track) attention.
        time_depth: layers with attention along time.
        input_dim: input token channels.
        hidden_size: transformer width.
        num_heads: attention heads.
        output_dim: output channels (2 coordinates + feature update).
        mlp_ratio: MLP hidden width relative to ``hidden_size``.
        add_space_attn: enable the cross-track attention.
        num_virtual_tracks: learned virtual tracks (64).
    """

    def __init__(
        self,
        space_depth: int = 6,
        time_depth: int = 6,
        input_dim: int = 320,
        hidden_size: int = 384,
        num_heads: int = 8,
        output_dim: int = 130,
        mlp_ratio: float = 4.0,
        add_space_attn: bool = True,
        num_virtual_tracks: int = 64,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.hidden_size = hidden_size
        self.add_space_attn = add_space_attn and space_depth > 0
        self.num_virtual_tracks = num_virtual_tracks
        self.input_norm = nn.LayerNorm(input_dim)
        self.input_transform = nn.Linear(input_dim, hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size)
        self.flow_head = nn.Linear(hidden_size, output_dim)
        self.time_blocks = nn.ModuleList(
            [AttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(time_depth)]
        )
        if self.add_space_attn:
            if space_depth > time_depth:
                raise ValueError('space_depth must not exceed time_depth')
            # Name kept verbatim (typo included) for checkpoint compatibility.
            self.virual_tracks = nn.Parameter(
                torch.randn(1, num_virtual_tracks, 1, hidden_size)
            )
            self.space_virtual_blocks = nn.ModuleList(
                [AttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)]
            )
            self.space_point2virtual_blocks = nn.ModuleList(
                [CrossAttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)]
            )
            self.space_virtual2point_blocks = nn.ModuleList(
                [CrossAttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)]
            )
        nn.init.trunc_normal_(self.flow_head.weight, std=0.001)
        nn.init.zeros_(self.flow_head.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map ``tokens[B,N,T,input_dim]`` to updates ``[B,N,T,output_dim]``."""
        tokens = self.input_transform(self.input_norm(tokens))
        initial = tokens
        batch, num_tracks, frames, channels = tokens.shape
        if self.add_space_attn:
            virtual = self.virual_tracks.to(tokens.dtype).expand(batch, -1, frames, -1)
            tokens = torch.cat([tokens, virtual], dim=1)
        all_tracks = tokens.shape[1]
        space_every = (
            len(self.time_blocks) // len(self.space_virtual_blocks) if self.add_space_attn else 0
        )
        space_index = 0
        for layer, time_block in enumerate(self.time_blocks):
            tokens = time_block(tokens.reshape(batch * all_tracks, frames, channels))
            tokens = tokens.view(batch, all_tracks, frames, channels)
            if space_every and layer % space_every == 0:
                tokens = self._space_attention(tokens, space_index)
                space_index += 1
        tokens = tokens[:, :num_tracks] + initial
        return self.flow_head(self.output_norm(tokens))

    def _space_attention(self, tokens: torch.Tensor, index: int) -> torch.Tensor:
        """Exchange information across tracks of each frame via the virtual tracks."""
        batch, all_tracks, frames, channels = tokens.shape
        per_frame = tokens.permute(0, 2, 1, 3).reshape(batch * frames, all_tracks, channels)
        real_count = all_tracks - self.num_virtual_tracks
        real, virtual = per_frame[:, :real_count], per_frame[:, real_count:]
        virtual = self.space_virtual2point_blocks[index](virtual, real)
        virtual = self.space_virtual_blocks[index](virtual)
        real = self.space_point2virtual_blocks[index](real, virtual)
        per_frame = torch.cat([real, virtual], dim=1)
        return per_frame.view(batch, frames, all_tracks, channels).permute(0, 2, 1, 3)
