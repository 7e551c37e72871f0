# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Depth maps + cameras -> 3D points: the one home of unprojection.

Pixel ``(u, v)`` (column ``u``, row ``v``) is unprojected at ``(u + offset, v + offset)``. Two
conventions are in use, each for a reason, and every caller names the one it uses:

- :data:`PIXEL_INDEX` (offset 0): the pixel sits at its integer index, as in VGGT's own
  depth -> point map (``unproject_depth_map_to_point_map``). The static map
  (``mapping.mapper``, via :func:`unproject_grid`) uses it, so its points are VGGT's points.
- :data:`PIXEL_CENTRE` (offset 0.5): the pixel sits at its centre, the continuous-coordinate
  convention of ``geometry.image_transform``. The mask refinement (``motion.refine``, via
  :func:`camera_points`) back-projects with it because the VGGT4D release's stage 3 does,
  and the refined masks follow the release (docs/method.md, stage 3 step 1).

Two implementations share these conventions: the torch one (:func:`camera_points`,
``d K^-1 (u + offset, v + offset, 1)``, any device, the refinement's hot path) and the NumPy
one (:func:`unproject_grid`, ``(u + offset - cx) / fx * d``, strided grid samples, the
mapper's CPU path, explicit per-axis products instead of small batched matmuls). They agree up
to float rounding; each keeps the exact arithmetic its caller has always had.
"""

from __future__ import annotations

import numpy as np
import torch

from vggt4d_ros.geometry.rigid import cam_to_world_from_extrinsics

#: Pixel (u, v) unprojected at its integer index: VGGT's point maps; the static map.
PIXEL_INDEX = 0.0
#: Pixel (u, v) unprojected at its centre (u + 0.5, v + 0.5): the release's mask refinement.
PIXEL_CENTRE = 0.5


def camera_points(depth: torch.Tensor, intrinsics: torch.Tensor, *,
                  pixel_offset: float) -> torch.Tensor:
    """Points of every pixel in its own camera's frame, ``d K^-1 (u + o, v + o, 1)``.

    Args:
        depth: [S,h,w] z-depth along the optical axis.
        intrinsics: [S,3,3] pinhole intrinsics in the pixels of ``depth``.
        pixel_offset: :data:`PIXEL_INDEX` or :data:`PIXEL_CENTRE` (module docstring).

    Returns:
        [S,h,w,3] float32, or float64 for float64 input (non-finite where depth is).

    """
    dtype = torch.promote_types(depth.dtype, torch.float32)
    height, width = depth.shape[1:]
    ys, xs = torch.meshgrid(torch.arange(height, device=depth.device, dtype=dtype),
                            torch.arange(width, device=depth.device, dtype=dtype),
                            indexing='ij')
    pixels = torch.stack([xs + pixel_offset, ys + pixel_offset, torch.ones_like(xs)],
                         dim=-1)  # [h,w,3]
    # inv_ex: no singularity check, so no host synchronisation on CUDA.
    k_inv = torch.linalg.inv_ex(intrinsics.to(dtype)).inverse
    rays = torch.einsum('sij,hwj->shwi', k_inv, pixels)
    return rays * depth.to(dtype).unsqueeze(-1)


def points_to_world(points: torch.Tensor, cam_to_world: torch.Tensor) -> torch.Tensor:
    """Camera-frame points [S,...,3] -> world, with [S,4,4] world-from-camera poses.

    Computed in the points' dtype (float32 for the refinement).
    """
    frames = points.shape[0]
    rot = cam_to_world[:, :3, :3].to(points.dtype)
    trans = cam_to_world[:, :3, 3].to(points.dtype)
    flat = points.reshape(frames, -1, 3)
    world = torch.einsum('sij,spj->spi', rot, flat) + trans.unsqueeze(1)
    return world.view(points.shape)


def backproject(depth: torch.Tensor, intrinsics: torch.Tensor, cam_to_world: torch.Tensor, *,
                pixel_offset: float) -> torch.Tensor:
    """World points [S,h,w,3] of every pixel (:func:`camera_points` then the poses).

    Args:
        depth: [S,h,w]; intrinsics: [S,3,3]; cam_to_world: [S,4,4].
        pixel_offset: :data:`PIXEL_INDEX` or :data:`PIXEL_CENTRE`.

    """
    return points_to_world(camera_points(depth, intrinsics, pixel_offset=pixel_offset),
                           cam_to_world)


def unproject_depth(depth: torch.Tensor, extrinsics: torch.Tensor, intrinsics: torch.Tensor,
                    *, pixel_offset: float) -> torch.Tensor:
    """World points of every pixel from VGGT's camera-from-world extrinsics.

    Args:
        depth: ``[S,h,w]`` (or ``[S,h,w,1]``) z-depth along the optical axis.
        extrinsics: ``[S,3,4]`` camera-from-world ``[R | t]`` (``x_cam = R x_world + t``).
        intrinsics: ``[S,3,3]`` pinhole intrinsics in the same pixels as ``depth``.
        pixel_offset: :data:`PIXEL_INDEX` or :data:`PIXEL_CENTRE`.

    Returns:
        ``[S,h,w,3]`` world points ``R^T (x_cam - t)`` (fp32, or fp64 for fp64 input).

    """
    if depth.dim() == 4 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    dtype = torch.promote_types(depth.dtype, torch.float32)
    cam_to_world = cam_to_world_from_extrinsics(extrinsics.to(dtype))
    return backproject(depth, intrinsics, cam_to_world, pixel_offset=pixel_offset)


def unproject_grid(depth: np.ndarray, intrinsics: np.ndarray, cam_to_window: np.ndarray,
                   stride: int, *, pixel_offset: float) -> np.ndarray:
    """Points [S,hs,ws,3] float32 of strided grid samples, in the window frame.

    Sample (i, j) is pixel (u, v) = (j * stride, i * stride), unprojected at
    ``(u + pixel_offset, v + pixel_offset)``.

    Args:
        depth: [S,hs,ws] float32 depth of the samples.
        intrinsics: [S,3,3] in the pixels of the full-resolution depth.
        cam_to_window: [S,4,4] window-from-camera poses.
        stride: grid step in pixels.
        pixel_offset: :data:`PIXEL_INDEX` or :data:`PIXEL_CENTRE`.

    """
    frames, rows, cols = depth.shape
    u = (np.arange(cols, dtype=np.float32) * stride + np.float32(pixel_offset))[None, None, :]
    v = (np.arange(rows, dtype=np.float32) * stride + np.float32(pixel_offset))[None, :, None]
    k = intrinsics.astype(np.float32)
    x_cam = (u - k[:, 0, 2, None, None]) / k[:, 0, 0, None, None] * depth
    y_cam = (v - k[:, 1, 2, None, None]) / k[:, 1, 1, None, None] * depth
    rot = cam_to_window[:, :3, :3].astype(np.float32)
    trans = cam_to_window[:, :3, 3].astype(np.float32)
    world = np.empty((frames, rows, cols, 3), np.float32)
    # Explicit 3x3 products per frame: elementwise work, no batched small matmul.
    for axis in range(3):
        world[..., axis] = (
            rot[:, axis, 0, None, None] * x_cam
            + rot[:, axis, 1, None, None] * y_cam
            + rot[:, axis, 2, None, None] * depth
            + trans[:, axis, None, None]
        )
    return world
