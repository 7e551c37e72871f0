# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Frame conventions: VGGT's OpenCV optical world to ROS frames (REP-103 / REP-105).

VGGT expresses everything in the optical frame of the first camera (x right, y down,
z forward). ROS body and world frames are x forward, y left, z up. Two TF modes exist:

- ``map_to_camera``: the published world is ``map``, the first camera's position with ROS
  axes (``world_from_vggt`` = the optical-to-body rotation). TF is map -> camera optical frame.
- ``odom_to_base``: the published world is ``odom``, the base_link pose at the first frame
  (``world_from_vggt`` = the base_link -> camera optical extrinsic). TF is odom -> base_link.

All poses here are 4x4 numpy float64 matrices ``T_a_b`` that map points in frame b to frame a.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vggt4d_ros.geometry.rigid import invert_rigid
from vggt4d_ros.geometry.rigid import pose_from_translation_quaternion

#: Rotation taking OpenCV optical axes (x right, y down, z forward) to ROS body axes
#: (x forward, y left, z up): body_x = optical_z, body_y = -optical_x, body_z = -optical_y.
#: It is the inverse of the optical frame's usual URDF rpy (-pi/2, 0, -pi/2).
R_BODY_FROM_OPTICAL = np.array(
    [[0.0, 0.0, 1.0],
     [-1.0, 0.0, 0.0],
     [0.0, -1.0, 0.0]])

TF_MODES = ('map_to_camera', 'odom_to_base', 'none')


def homogeneous(rotation: np.ndarray, translation: np.ndarray | None = None) -> np.ndarray:
    """Build a 4x4 transform from rotation [3,3] and translation [3]."""
    pose = np.eye(4)
    pose[:3, :3] = rotation
    if translation is not None:
        pose[:3, 3] = translation
    return pose


def pose_from_xyz_quat(values: list[float] | np.ndarray) -> np.ndarray:
    """4x4 transform from ``[x, y, z, qx, qy, qz, qw]``."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (7,):
        raise ValueError(f'expected [x, y, z, qx, qy, qz, qw], got {values.tolist()}')
    return pose_from_translation_quaternion(values[:3], values[3:])


@dataclass(frozen=True)
class FrameConvention:
    """How engine poses (camera optical in VGGT's world) become published ROS poses.

    Attributes:
        tf_mode: one of ``TF_MODES``.
        world_frame: frame of the map cloud, path and odometry (map or odom).
        child_frame: frame whose pose is published (camera optical frame or base_link).
        world_from_vggt: [4,4] VGGT world (first camera, optical axes) -> ``world_frame``.
        camera_from_child: [4,4] child frame -> camera optical frame (identity in map mode).

    """

    tf_mode: str
    world_frame: str
    child_frame: str
    world_from_vggt: np.ndarray
    camera_from_child: np.ndarray

    def child_pose(self, vggt_from_camera: np.ndarray) -> np.ndarray:
        """Pose [4,4] of ``child_frame`` in ``world_frame`` from a camera-to-world pose."""
        return self.world_from_vggt @ vggt_from_camera @ self.camera_from_child

    def points_to_world(self, points_vggt: np.ndarray) -> np.ndarray:
        """Map points [N,3] from VGGT's world to ``world_frame`` (float32).

        Computed in float32, the cloud's own precision (differences to a float64 product are
        at the last bit): a 500 k point static map takes ~3 ms instead of ~10-27 ms in float64
        on the worker thread, between two windows.
        """
        rotation = self.world_from_vggt[:3, :3].astype(np.float32)
        points = np.asarray(points_vggt, dtype=np.float32)
        moved = np.matmul(points, rotation.T)
        moved += self.world_from_vggt[:3, 3].astype(np.float32)
        return moved


def make_convention(tf_mode: str, map_frame: str, odom_frame: str, base_frame: str,
                    camera_frame: str, base_from_camera: np.ndarray | None) -> FrameConvention:
    """Frame convention for a TF mode.

    Args:
        tf_mode: ``map_to_camera``, ``odom_to_base`` or ``none`` (``none`` publishes like
            ``map_to_camera`` without the TF).
        map_frame, odom_frame, base_frame, camera_frame: frame ids.
        base_from_camera: [4,4] pose of the camera optical frame in base_link; required in
            ``odom_to_base`` mode.

    """
    if tf_mode not in TF_MODES:
        raise ValueError(f'tf_mode must be one of {TF_MODES}, got {tf_mode!r}')
    if tf_mode == 'odom_to_base':
        if base_from_camera is None:
            raise ValueError('odom_to_base needs the base_link -> camera optical extrinsic')
        return FrameConvention(tf_mode, odom_frame, base_frame, base_from_camera.copy(),
                               invert_rigid(base_from_camera))
    return FrameConvention(tf_mode, map_frame, camera_frame, homogeneous(R_BODY_FROM_OPTICAL),
                           np.eye(4))
