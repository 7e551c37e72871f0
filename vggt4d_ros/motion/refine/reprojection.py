# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Projection of candidate points into the other frames and their per-view errors (step 4).

Also the per-cluster sums of those errors that step 5 scores clusters with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vggt4d_ros.motion.refine.config import RefineConfig


@dataclass
class Views:
    """Per (reference frame i, other frame j, pixel of i) projection results for a chunk."""

    keep: torch.Tensor  # [c,S,M] bool
    depth_error: torch.Tensor  # [c,S,M] |z - d_j| (0 where not kept)
    rgb_error: torch.Tensor  # [c,S,M] sum_rgb |I_i - I_j| (0 where not kept)
    gradient_norm: torch.Tensor | None  # [c,S,M] ||dr_j/dX|| (gradient mode only)


def sample_pixels(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                  mode: str) -> torch.Tensor:
    """Sample [S,C,h,w] at pixel-index coordinates x, y [S,P] (align_corners=True) -> [S,C,P]."""
    height, width = image.shape[-2:]
    grid = torch.stack([x / max(width - 1, 1) * 2 - 1, y / max(height - 1, 1) * 2 - 1], -1)
    grid = torch.nan_to_num(grid, nan=-2.0, posinf=-2.0, neginf=-2.0)  # outside -> zeros
    out = F.grid_sample(image, grid.unsqueeze(1), mode=mode, align_corners=True)
    return out.squeeze(2)


def project_chunk(ref_frames: torch.Tensor, points: torch.Tensor, colours: torch.Tensor,
                  depth: torch.Tensor, coarse: torch.Tensor, images: torch.Tensor,
                  intrinsics: torch.Tensor, world_to_cam: torch.Tensor,
                  config: RefineConfig, with_gradient: bool,
                  view_range: tuple[int, int] | None = None,
                  pairs: torch.Tensor | None = None) -> Views:
    """Project the pixels of reference frames ``ref_frames`` into every frame (or a range).

    Args:
        ref_frames: [c] int64 frame indices.
        points: [S,M,3] world points; colours: [S,M,3].
        depth: [S,h,w]; coarse: [S,h,w] bool; images: [S,3,h,w].
        intrinsics: [S,3,3]; world_to_cam: [S,4,4].
        view_range: ``(start, stop)``: project into the frames ``start..stop-1`` only (the
            returned view axis has ``stop - start`` entries); None = every frame. A long window
            projects its candidates one range of views at a time, so memory stays bounded
            however many frames it has.
        pairs: [S,S] bool, (i, j) True when frame j may test frame i; None: every j != i.

    """
    view_start = 0
    if view_range is not None:
        view_start, view_stop = view_range
        depth, coarse, images = (depth[view_start:view_stop], coarse[view_start:view_stop],
                                 images[view_start:view_stop])
        intrinsics = intrinsics[view_start:view_stop]
        world_to_cam = world_to_cam[view_start:view_stop]
    frames, height, width = depth.shape
    chunk = ref_frames.shape[0]
    count = points.shape[1]
    ref_points = points[ref_frames]  # [c,M,3]
    rot, trans = world_to_cam[:, :3, :3], world_to_cam[:, :3, 3]
    # cam[j, i, m] = R_j X_i(m) + t_j, laid out [S_j, c*M, 3] for one grid_sample per frame.
    flat = ref_points.reshape(1, chunk * count, 3)
    cam = torch.einsum('jab,jpb->jpa', rot, flat.expand(frames, -1, -1)) + trans.unsqueeze(1)
    proj = torch.einsum('jab,jpb->jpa', intrinsics, cam)
    z = proj[..., 2]
    x, y = proj[..., 0] / z, proj[..., 1] / z
    inside = (x > 0) & (x < width) & (y > 0) & (y < height) & (z > 0)
    shift = 0.5 if config.consistent_pixel_centres else 0.0
    xs, ys = x - shift, y - shift
    sampled_depth = sample_pixels(depth.unsqueeze(1), xs, ys, 'nearest')[:, 0]  # [S,P]
    stacked = torch.cat([coarse.float().unsqueeze(1), images], dim=1)
    bilinear = sample_pixels(stacked, xs, ys, 'bilinear')  # [S,4,P]
    lands_dynamic = bilinear[:, 0] > 0.5
    view_index = torch.arange(view_start, view_start + frames, device=depth.device)
    if pairs is None:
        other = view_index.view(-1, 1) != ref_frames.repeat_interleave(count).view(1, -1)
    else:  # [V, c*M]: column (i, m) allows the frames j (of the range) that may test i
        other = pairs[ref_frames][:, view_start:view_start + frames].t() \
            .repeat_interleave(count, dim=1)
    visible = z - config.occlusion_margin < sampled_depth
    keep = inside & visible & ~lands_dynamic & other & torch.isfinite(sampled_depth)
    depth_error = torch.where(keep, (z - sampled_depth).abs(), torch.zeros_like(z))
    ref_colours = colours[ref_frames].reshape(1, chunk * count, 3).transpose(1, 2)
    rgb_error = (ref_colours - bilinear[:, 1:]).abs().sum(1)
    rgb_error = torch.where(keep, rgb_error, torch.zeros_like(rgb_error))
    gradient = None
    if with_gradient:
        gradient = residual_gradient_norm(depth, intrinsics, cam, xs, ys)

    def per_ref(x: torch.Tensor) -> torch.Tensor:  # [S_j, c*M] -> [c, S_j, M]
        return x.view(frames, chunk, count).transpose(0, 1)

    views = Views(per_ref(keep), per_ref(depth_error), per_ref(rgb_error),
                  None if gradient is None else per_ref(gradient))
    return views


def residual_gradient_norm(depth: torch.Tensor, intrinsics: torch.Tensor, cam: torch.Tensor,
                           xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """||dr_j/dX|| with r_j(X) = d_j(pi(K_j(R_j X + t_j))) - [R_j X + t_j]_z.

    dr/dX = (grad d_j(u)^T J_pi(X_cam) - e_z^T) R_j; R_j is orthonormal, so the norm is that of
    the bracket. grad d_j is the central-difference depth gradient, sampled bilinearly.

    Args:
        depth: [S,h,w]; intrinsics: [S,3,3]; cam: [S,P,3] points in each camera j.
        xs, ys: [S,P] sampling coordinates.

    Returns:
        [S,P].

    """
    padded = F.pad(depth.unsqueeze(1), (1, 1, 1, 1), mode='replicate')
    grad_x = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    grad_y = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    grads = sample_pixels(torch.cat([grad_x, grad_y], dim=1), xs, ys, 'bilinear')  # [S,2,P]
    fx, fy = intrinsics[:, 0, 0].unsqueeze(1), intrinsics[:, 1, 1].unsqueeze(1)
    cx_, cy_, cz = cam[..., 0], cam[..., 1], cam[..., 2]
    inv_z = 1.0 / cz
    # J_pi = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]]; row = grad^T J_pi - e_z.
    gx, gy = grads[:, 0], grads[:, 1]
    row_x = gx * fx * inv_z
    row_y = gy * fy * inv_z
    row_z = -(gx * fx * cx_ + gy * fy * cy_) * inv_z * inv_z - 1.0
    norm = torch.sqrt(row_x ** 2 + row_y ** 2 + row_z ** 2)
    return torch.nan_to_num(norm, nan=1.0, posinf=1.0)


def cluster_sums(member: torch.Tensor, values: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Per-cluster sums [S,k,V] of ``values`` [S,C,V] with one-hot ``member`` [S,C,k].

    The candidate axis is cut into chunks that become extra batches before the final sum:
    one [S,k,C] x [S,C,V] product has a huge inner dimension and a tiny output, which cuBLAS
    runs on one tile per frame (milliseconds on an H200); chunked, it spreads over the GPU.
    Deterministic (no atomics).
    """
    frames, count, clusters = member.shape
    pad = (-count) % chunk
    if count <= chunk:
        return torch.bmm(member.transpose(1, 2), values)
    member = F.pad(member, (0, 0, 0, pad)).view(frames * ((count + pad) // chunk), chunk,
                                                clusters)
    values = F.pad(values, (0, 0, 0, pad)).view(member.shape[0], chunk, values.shape[-1])
    partial = torch.bmm(member.transpose(1, 2), values)
    return partial.view(frames, -1, clusters, values.shape[-1]).sum(1)
