# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""VGGT's ``absT_quaR_FoV`` camera encoding <-> extrinsics and intrinsics.

Encoding (9 values): ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` where ``[R | t]`` is the
camera-from-world extrinsic (OpenCV axes: x right, y down, z forward; ``x_cam = R x_world + t``),
the quaternion is scalar-last (XYZW) and the fields of view are in radians. Intrinsics are in
network pixels of an ``H x W`` image with the principal point at the image centre:
``fy = (H/2) / tan(fov_h/2)``, ``fx = (W/2) / tan(fov_w/2)``, ``cx = W/2``, ``cy = H/2``.
"""

from typing import Tuple

import torch

# Guards the quaternion norm: the camera head does not normalise its quaternion.
_QUAT_NORM_EPS = 1e-12


def quaternion_to_matrix(quat_xyzw: torch.Tensor) -> torch.Tensor:
    """Convert (not necessarily unit) XYZW quaternions to rotation matrices.

    Args:
        quat_xyzw: ``[..., 4]``.

    Returns:
        ``[..., 3, 3]``; the quaternion is normalised implicitly (divided by its squared norm).
    """
    x, y, z, w = quat_xyzw.unbind(-1)
    scale = 2.0 / (quat_xyzw * quat_xyzw).sum(-1).clamp_min(_QUAT_NORM_EPS)
    rows = (
        1 - scale * (y * y + z * z), scale * (x * y - z * w), scale * (x * z + y * w),
        scale * (x * y + z * w), 1 - scale * (x * x + z * z), scale * (y * z - x * w),
        scale * (x * z - y * w), scale * (y * z + x * w), 1 - scale * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(*quat_xyzw.shape[:-1], 3, 3)


def matrix_to_quaternion(rotation: torch.Tensor) -> torch.Tensor:
    """Convert rotation matrices to unit XYZW quaternions with a non-negative scalar part.

    Uses the numerically best-conditioned of the four closed forms (largest diagonal term).

    Args:
        rotation: ``[..., 3, 3]``.

    Returns:
        ``[..., 4]``.
    """
    m = rotation
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4*w^2, 4*x^2, 4*y^2, 4*z^2 (each candidate is best when its square is largest).
    squares = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22],
        dim=-1,
    )
    roots = squares.clamp_min(0).sqrt()
    d21 = m[..., 2, 1] - m[..., 1, 2]
    d02 = m[..., 0, 2] - m[..., 2, 0]
    d10 = m[..., 1, 0] - m[..., 0, 1]
    s10 = m[..., 1, 0] + m[..., 0, 1]
    s02 = m[..., 0, 2] + m[..., 2, 0]
    s21 = m[..., 2, 1] + m[..., 1, 2]
    # Candidate quaternions in (w, x, y, z) order, each scaled by 4 * (its pivot component).
    candidates = torch.stack(
        [
            torch.stack([squares[..., 0], d21, d02, d10], dim=-1),
            torch.stack([d21, squares[..., 1], s10, s02], dim=-1),
            torch.stack([d02, s10, squares[..., 2], s21], dim=-1),
            torch.stack([d10, s02, s21, squares[..., 3]], dim=-1),
        ],
        dim=-2,
    )
    candidates = candidates / (2.0 * roots.clamp_min(0.1)[..., None])
    best = roots.argmax(dim=-1)
    index = best[..., None, None].expand(*best.shape, 1, 4)
    wxyz = candidates.gather(-2, index).squeeze(-2)
    wxyz = wxyz / wxyz.norm(dim=-1, keepdim=True).clamp_min(_QUAT_NORM_EPS)
    wxyz = torch.where(wxyz[..., :1] < 0, -wxyz, wxyz)
    return torch.cat([wxyz[..., 1:], wxyz[..., :1]], dim=-1)


def pose_encoding_to_extri_intri(
    pose_enc: torch.Tensor, image_hw: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Decode ``pose_enc[..., 9]`` into ``(extrinsics[..., 3, 4], intrinsics[..., 3, 3])``.

    Args:
        pose_enc: ``[..., 9]`` absT_quaR_FoV encoding.
        image_hw: network image size ``(H, W)`` in pixels.

    Returns:
        Camera-from-world extrinsics ``[R | t]`` and pinhole intrinsics in network pixels.
    """
    height, width = image_hw
    translation = pose_enc[..., :3]
    rotation = quaternion_to_matrix(pose_enc[..., 3:7])
    extrinsics = torch.cat([rotation, translation[..., None]], dim=-1)
    fov_h, fov_w = pose_enc[..., 7], pose_enc[..., 8]
    intrinsics = torch.zeros(*pose_enc.shape[:-1], 3, 3, dtype=pose_enc.dtype,
                             device=pose_enc.device)
    intrinsics[..., 0, 0] = (width / 2.0) / torch.tan(fov_w / 2.0)
    intrinsics[..., 1, 1] = (height / 2.0) / torch.tan(fov_h / 2.0)
    intrinsics[..., 0, 2] = width / 2.0
    intrinsics[..., 1, 2] = height / 2.0
    intrinsics[..., 2, 2] = 1.0
    return extrinsics, intrinsics


def extri_intri_to_pose_encoding(
    extrinsics: torch.Tensor, intrinsics: torch.Tensor, image_hw: Tuple[int, int]
) -> torch.Tensor:
    """Encode camera-from-world ``[..., 3, 4]`` and intrinsics ``[..., 3, 3]`` as ``[..., 9]``.

    The principal point is not encoded (VGGT assumes the image centre).
    """
    height, width = image_hw
    quat = matrix_to_quaternion(extrinsics[..., :3, :3])
    fov_h = 2.0 * torch.atan((height / 2.0) / intrinsics[..., 1, 1])
    fov_w = 2.0 * torch.atan((width / 2.0) / intrinsics[..., 0, 0])
    return torch.cat([extrinsics[..., :3, 3], quat, fov_h[..., None], fov_w[..., None]], dim=-1)
