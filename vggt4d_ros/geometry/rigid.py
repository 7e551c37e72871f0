# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Rigid transforms: inverse, camera-from-world <-> world-from-camera, translation + quaternion.

Poses are 4x4 ``T_a_b`` matrices mapping points in frame b to frame a. The inverse of a rigid
transform is ``[R^T | -R^T t]``: exact, cheaper than a general inverse, and it keeps R^T
orthonormal. NumPy helpers are float64; the torch one keeps the input's dtype and device.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vggt4d_ros.geometry.rotation import quaternion_xyzw_from_rotation
from vggt4d_ros.geometry.rotation import rotation_from_quaternion_xyzw


def invert_rigid(pose: np.ndarray) -> np.ndarray:
    """Inverse [4,4] float64 of a rigid transform [4,4] (rotation transposed)."""
    rotation = pose[:3, :3]
    out = np.eye(4)
    out[:3, :3] = rotation.T
    out[:3, 3] = -rotation.T @ pose[:3, 3]
    return out


def cam_to_world_from_extrinsics(extrinsics: torch.Tensor) -> torch.Tensor:
    """Camera-from-world ``[R | t]`` [S,3,4] -> world-from-camera [S,4,4] (rigid inverse).

    Same dtype and device as ``extrinsics``.
    """
    rot, trans = extrinsics[:, :, :3], extrinsics[:, :, 3:]
    pose = torch.eye(4, dtype=extrinsics.dtype, device=extrinsics.device)
    pose = pose.repeat(extrinsics.shape[0], 1, 1)
    pose[:, :3, :3] = rot.transpose(1, 2)
    pose[:, :3, 3:] = -rot.transpose(1, 2) @ trans
    return pose


def translation_quaternion_from_pose(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a rigid [4,4] into translation [3] and canonical XYZW quaternion [4] (float64)."""
    pose = np.asarray(pose, dtype=np.float64)
    return pose[:3, 3].copy(), quaternion_xyzw_from_rotation(pose[:3, :3])


def pose_from_translation_quaternion(translation: Sequence[float] | np.ndarray,
                                     quat_xyzw: Sequence[float] | np.ndarray) -> np.ndarray:
    """Rigid [4,4] float64 from a translation [3] and an XYZW quaternion [4] (any norm > 0)."""
    pose = np.eye(4)
    pose[:3, :3] = rotation_from_quaternion_xyzw(quat_xyzw)
    pose[:3, 3] = np.asarray(translation, dtype=np.float64)
    return pose
