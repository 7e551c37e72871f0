# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""2D rotary position embedding (RoPE) as used by the VGGT aggregator.

Each head's ``D`` channels are split in two halves: the first half is rotated by the token's
row coordinate, the second by its column coordinate. Within a half of ``D/2`` channels there are
``D/4`` frequencies ``base ** (-2k / (D/2))`` and the "rotate-half" convention is used:
``out = x * cos + rot(x) * sin`` with ``rot([x1, x2]) = [-x2, x1]``.

Positions: the special tokens of a frame (camera + registers) sit at (0, 0); patch ``(r, c)`` of
the ``hp x wp`` grid sits at ``(r + 1, c + 1)``. Every frame uses the same positions.

Unlike the reference code, the cos/sin tables are built from Python integers (grid size) and not
from ``positions.max()``, so building them needs no device-to-host sync and does not break a
``torch.compile`` graph. Angles and cos/sin are computed in fp32 and cast to the tokens' dtype.
The reference rounds the angles to the tokens' dtype *before* cos/sin; that only differs when q/k
are bf16 (bf16 weights, or CPU autocast), where rounding angles up to ~38 rad to bf16 would
perturb the rotation by up to ~0.1 rad. On CUDA autocast q/k are fp32 and both agree exactly.
"""

from typing import Dict, Tuple

import torch
from torch import nn

# (cos, sin), each [T, D]: per-token tables broadcastable against q/k [B, H, T, D].
RopeTable = Tuple[torch.Tensor, torch.Tensor]


def grid_positions(
    grid_hw: Tuple[int, int], num_special: int, device: torch.device
) -> torch.Tensor:
    """Return the (row, col) RoPE position of each token of one frame.

    Args:
        grid_hw: patch grid ``(hp, wp)``.
        num_special: number of special tokens placed before the patches (at position 0).
        device: output device.

    Returns:
        ``Long[num_special + hp*wp, 2]``; specials at (0, 0), patches row-major at (r+1, c+1).
    """
    rows = torch.arange(grid_hw[0], device=device)
    cols = torch.arange(grid_hw[1], device=device)
    patch_pos = torch.cartesian_prod(rows, cols) + 1
    special_pos = torch.zeros(num_special, 2, dtype=patch_pos.dtype, device=device)
    return torch.cat([special_pos, patch_pos], dim=0)


def rotate_halves(x: torch.Tensor) -> torch.Tensor:
    """Apply ``[x1, x2] -> [-x2, x1]`` separately inside the row half and the column half.

    Args:
        x: ``[..., D]`` with ``D`` divisible by 4.

    Returns:
        ``[..., D]``.
    """
    quarters = x.unflatten(-1, (2, 2, x.shape[-1] // 4))
    rotated = torch.stack((-quarters[..., 1, :], quarters[..., 0, :]), dim=-2)
    return rotated.flatten(-3)


class RotaryPositionEmbedding2D(nn.Module):
    """2D RoPE with tables cached per (grid, specials, head_dim, device, dtype).

    Holds no parameters (no checkpoint keys), like the reference module.
    """

    def __init__(self, frequency: float = 100.0) -> None:
        super().__init__()
        self.frequency = frequency
        self._cache: Dict[tuple, RopeTable] = {}

    def build_table(
        self,
        grid_hw: Tuple[int, int],
        num_special: int,
        head_dim: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> RopeTable:
        """Cos/sin tables for one frame's tokens.

        Args:
            grid_hw: patch grid ``(hp, wp)``.
            num_special: special tokens in front of the patches.
            head_dim: ``D``, divisible by 4.
            device: device of the tokens.
            dtype: dtype of the tokens (the tables are computed in fp32 and cast).

        Returns:
            ``(cos[P, D], sin[P, D])`` with ``P = num_special + hp*wp``.
        """
        if head_dim % 4 != 0:
            raise ValueError(f'RoPE 2D needs a head dim divisible by 4, got {head_dim}')
        key = (tuple(grid_hw), num_special, head_dim, str(device), dtype)
        compiling = torch.compiler.is_compiling()
        if not compiling and key in self._cache:
            return self._cache[key]
        half = head_dim // 2
        exponents = torch.arange(0, half, 2, device=device, dtype=torch.float32) / half
        inv_freq = 1.0 / (self.frequency ** exponents)
        positions = grid_positions(grid_hw, num_special, device).to(torch.float32)
        cos_parts, sin_parts = [], []
        for axis in range(2):
            angles = positions[:, axis, None] * inv_freq[None, :]
            angles = torch.cat((angles, angles), dim=-1)
            cos_parts.append(angles.cos())
            sin_parts.append(angles.sin())
        table = (torch.cat(cos_parts, dim=-1).to(dtype), torch.cat(sin_parts, dim=-1).to(dtype))
        if not compiling:
            self._cache[key] = table
        return table

    def forward(self, x: torch.Tensor, table: RopeTable) -> torch.Tensor:
        """Rotate ``x[B, H, T, D]`` by the per-token tables ``(cos[T, D], sin[T, D])``."""
        # No-op casts when the table was built in the tokens' dtype (the usual case).
        cos, sin = table[0].to(x.dtype), table[1].to(x.dtype)
        return x * cos + rotate_halves(x) * sin
