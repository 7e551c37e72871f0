# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Small geometry, one home per concept (NumPy / torch, no ROS).

``rotation`` (quaternions with one canonical sign, slerp, axis-angle), ``rigid`` (rigid
inverse, extrinsics -> poses, translation + quaternion), ``unproject`` (depth -> points, both
pixel conventions named), ``packed_rgb`` (PointCloud2 colours), ``sim3`` (similarity
transforms and alignment), ``pose_encoding`` (VGGT's camera encoding) and
``image_transform`` (camera <-> network pixels). The common names are re-exported here.
"""

from vggt4d_ros.geometry.packed_rgb import pack_rgb
from vggt4d_ros.geometry.packed_rgb import unpack_rgb
from vggt4d_ros.geometry.rigid import cam_to_world_from_extrinsics
from vggt4d_ros.geometry.rigid import invert_rigid
from vggt4d_ros.geometry.rigid import pose_from_translation_quaternion
from vggt4d_ros.geometry.rigid import translation_quaternion_from_pose
from vggt4d_ros.geometry.rotation import quaternion_xyzw_from_rotation
from vggt4d_ros.geometry.rotation import rotation_from_quaternion_xyzw
from vggt4d_ros.geometry.sim3 import Sim3
from vggt4d_ros.geometry.unproject import PIXEL_CENTRE
from vggt4d_ros.geometry.unproject import PIXEL_INDEX

__all__ = [
    'cam_to_world_from_extrinsics',
    'invert_rigid',
    'pack_rgb',
    'PIXEL_CENTRE',
    'PIXEL_INDEX',
    'pose_from_translation_quaternion',
    'quaternion_xyzw_from_rotation',
    'rotation_from_quaternion_xyzw',
    'Sim3',
    'translation_quaternion_from_pose',
    'unpack_rgb',
]
