# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Sine/cosine embeddings used by the DPT and tracking heads.

The frequencies and layouts reproduce the released VGGT heads so that checkpoint weights see the
inputs they were trained with:

* DPT: a UV grid normalised by the image diagonal, embedded with base ``omega_0 = 100``.
* Tracker: integer feature-map positions embedded with base 10000 (sin block then cos block),
  and flow vectors embedded with interleaved sin/cos pairs.

Angles are computed in float64 (as the reference does) and returned as float32 unless a dtype is
given.
"""

from typing import Optional

import torch


def sincos_embedding_1d(positions: torch.Tensor, dim: int, base: float) -> torch.Tensor:
    """Embed scalar positions with ``dim/2`` sines followed by ``dim/2`` cosines.

    Frequency ``k`` is ``base ** (-k / (dim/2))``, ``k = 0..dim/2-1``.

    Args:
        positions: ``[M]`` any float dtype.
        dim: even embedding size.
        base: frequency base.

    Returns:
        ``[M, dim]`` float32.
    """
    if dim % 2 != 0:
        raise ValueError(f'embedding size must be even, got {dim}')
    half = dim // 2
    exponents = torch.arange(half, dtype=torch.float64, device=positions.device) / half
    frequencies = 1.0 / base**exponents
    angles = positions.reshape(-1, 1).to(torch.float64) * frequencies
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()


def uv_grid(
    height: int, width: int, aspect_ratio: float, device: Optional[torch.device] = None
) -> torch.Tensor:
    """Pixel-centre UV coordinates of an ``height x width`` grid, normalised by its diagonal.

    The full grid spans ``[-a, a] x [-b, b]`` with ``a = r / sqrt(r^2+1)``, ``b = 1 / sqrt(r^2+1)``
    and ``r = aspect_ratio`` (width / height); samples sit at the cell centres.

    Returns:
        ``[height, width, 2]`` float32, last axis ``(u, v)``.
    """
    diagonal = (aspect_ratio**2 + 1.0) ** 0.5
    span_u = aspect_ratio / diagonal * (width - 1) / width
    span_v = 1.0 / diagonal * (height - 1) / height
    u = torch.linspace(-span_u, span_u, steps=width, dtype=torch.float32, device=device)
    v = torch.linspace(-span_v, span_v, steps=height, dtype=torch.float32, device=device)
    grid_v, grid_u = torch.meshgrid(v, u, indexing='ij')
    return torch.stack((grid_u, grid_v), dim=-1)


def uv_position_embedding(
    height: int,
    width: int,
    channels: int,
    aspect_ratio: float,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
    omega_0: float = 100.0,
) -> torch.Tensor:
    """DPT positional embedding of a feature map (not yet scaled by the head's 0.1 ratio).

    The first ``channels/2`` channels embed ``u``, the rest embed ``v``.

    Returns:
        ``[channels, height, width]`` in ``dtype``.
    """
    grid = uv_grid(height, width, aspect_ratio, device=device).reshape(-1, 2)
    embedding = torch.cat(
        [
            sincos_embedding_1d(grid[:, 0], channels // 2, omega_0),
            sincos_embedding_1d(grid[:, 1], channels // 2, omega_0),
        ],
        dim=-1,
    )
    return embedding.reshape(height, width, channels).permute(2, 0, 1).to(dtype)


def flow_embedding(flows: torch.Tensor, channels: int) -> torch.Tensor:
    """Embed 2D displacements with interleaved ``(sin, cos)`` pairs per axis.

    Frequency ``k`` is ``2k * 1000 / channels`` (the tracker's training-time convention).

    Args:
        flows: ``[..., 2]`` displacements ``(dx, dy)``, float32.
        channels: even number of channels per axis.

    Returns:
        ``[..., 2 * channels]`` float32: ``channels`` for x, then ``channels`` for y.
    """
    frequencies = torch.arange(0, channels, 2, device=flows.device, dtype=torch.float32) * (
        1000.0 / channels
    )
    parts = []
    for axis in range(2):
        angles = flows[..., axis : axis + 1].float() * frequencies
        parts.append(torch.stack((torch.sin(angles), torch.cos(angles)), dim=-1).flatten(-2))
    return torch.cat(parts, dim=-1)
