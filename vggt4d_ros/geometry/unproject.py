# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Depth maps + cameras -> world points, on any torch device.

Pixel ``(u, v)`` of column ``u`` and row ``v`` is unprojected at ``(u + pixel_offset,
v + pixel_offset)``; the default offset 0 uses integer pixel indices like VGGT's reference
(``unproject_depth_map_to_point_map``); use 0.5 for the pixel-centre convention.
"""

import torch


def unproject_depth(
    depth: torch.Tensor,
    extrinsics: torch.Tensor,
    intrinsics: torch.Tensor,
    pixel_offset: float = 0.0,
) -> torch.Tensor:
    """World points of every pixel.

    Args:
        depth: ``[S,h,w]`` (or ``[S,h,w,1]``) z-depth along the optical axis.
        extrinsics: ``[S,3,4]`` camera-from-world ``[R | t]`` (``x_cam = R x_world + t``).
        intrinsics: ``[S,3,3]`` pinhole intrinsics in the same pixels as ``depth``.
        pixel_offset: added to the integer pixel indices before unprojecting.

    Returns:
        ``[S,h,w,3]`` world points ``R^T (x_cam - t)`` (fp32, or fp64 for fp64 input).
    """
    if depth.dim() == 4 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    frames, height, width = depth.shape
    dtype = torch.promote_types(depth.dtype, torch.float32)
    depth = depth.to(dtype)
    extrinsics = extrinsics.to(dtype)
    intrinsics = intrinsics.to(dtype)
    cols = torch.arange(width, device=depth.device, dtype=dtype) + pixel_offset
    rows = torch.arange(height, device=depth.device, dtype=dtype) + pixel_offset
    fx = intrinsics[:, 0, 0].view(frames, 1, 1)
    fy = intrinsics[:, 1, 1].view(frames, 1, 1)
    cx = intrinsics[:, 0, 2].view(frames, 1, 1)
    cy = intrinsics[:, 1, 2].view(frames, 1, 1)
    x_cam = (cols.view(1, 1, width) - cx) / fx * depth
    y_cam = (rows.view(1, height, 1) - cy) / fy * depth
    points_cam = torch.stack([x_cam, y_cam, depth], dim=-1)
    rotation = extrinsics[:, :3, :3]
    translation = extrinsics[:, :3, 3]
    # R^T (x - t) for row vectors: (x - t) @ R.
    centred = points_cam - translation.view(frames, 1, 1, 3)
    return torch.einsum('shwi,sij->shwj', centred, rotation)
