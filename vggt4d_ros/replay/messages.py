# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""numpy <-> ROS 2 message objects of the pure-Python ``rosbags`` typestore (no rclpy).

Poses are 4x4 float64 ``parent_from_child`` matrices; quaternions in messages are XYZW.
Colour images are HxWx3 uint8 RGB, masks HxW uint8, depth HxW float32.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores

from vggt4d_ros.geometry.packed_rgb import pack_rgb
from vggt4d_ros.geometry.packed_rgb import unpack_rgb
from vggt4d_ros.geometry.rigid import pose_from_translation_quaternion
from vggt4d_ros.geometry.rigid import translation_quaternion_from_pose

from vggt4d_ros.runtime import image_decode

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
_T = TYPESTORE.types

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
POINT_CLOUD2 = 'sensor_msgs/msg/PointCloud2'
POSE_STAMPED = 'geometry_msgs/msg/PoseStamped'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'
PATH = 'nav_msgs/msg/Path'
ODOMETRY = 'nav_msgs/msg/Odometry'


def time_msg(stamp_ns: int) -> Any:
    """builtin_interfaces/Time from integer nanoseconds."""
    return _T['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 1_000_000_000),
                                             nanosec=int(stamp_ns % 1_000_000_000))


def stamp_ns_of(header: Any) -> int:
    """Integer nanoseconds of a std_msgs/Header stamp."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def header_msg(stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header with the given stamp and frame."""
    return _T['std_msgs/msg/Header'](stamp=time_msg(stamp_ns), frame_id=frame_id)


def image_msg(array: np.ndarray, stamp_ns: int, frame_id: str, encoding: str) -> Any:
    """sensor_msgs/Image from an array.

    Args:
        array: HxWx3 uint8 for 'rgb8'/'bgr8', HxW uint8 for 'mono8', HxW float32 for '32FC1'.
        stamp_ns: header stamp.
        frame_id: header frame (the camera optical frame).
        encoding: ROS image encoding.

    """
    channels, dtype = image_decode.RAW_ENCODINGS[encoding]
    data = np.ascontiguousarray(array, dtype=dtype)
    if data.shape[:2] != array.shape[:2] or (data.ndim == 3 and data.shape[2] != channels):
        raise ValueError(f'array {array.shape} does not fit encoding {encoding}')
    height, width = data.shape[:2]
    return _T[IMAGE](header=header_msg(stamp_ns, frame_id), height=height, width=width,
                     encoding=encoding, is_bigendian=0, step=width * channels * dtype.itemsize,
                     data=data.reshape(-1).view(np.uint8))


def image_to_array(msg: Any) -> np.ndarray:
    """Raw pixel array of a sensor_msgs/Image ([H,W] or [H,W,C]), honouring ``step``.

    For masks and depth this package wrote itself: no input limits.
    """
    return image_decode.raw_to_array(msg.encoding, msg.height, msg.width, msg.step,
                                     msg.is_bigendian, msg.data, limits=None)


def image_to_rgb(msg: Any,
                 limits: image_decode.ImageLimits = image_decode.DEFAULT_LIMITS) -> np.ndarray:
    """HxWx3 uint8 RGB of a sensor_msgs/Image (the runtime decoder, as in the node)."""
    return image_decode.raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step,
                                   msg.is_bigendian, msg.data, limits)


def compressed_to_rgb(msg: Any,
                      limits: image_decode.ImageLimits = image_decode.DEFAULT_LIMITS
                      ) -> np.ndarray:
    """HxWx3 uint8 RGB of a sensor_msgs/CompressedImage (jpeg/png; header size checked)."""
    return image_decode.compressed_to_rgb(msg.data, msg.format, limits)


def camera_info_msg(k_matrix: np.ndarray, image_hw: tuple[int, int], stamp_ns: int,
                    frame_id: str) -> Any:
    """sensor_msgs/CameraInfo of an undistorted pinhole camera with intrinsics K [3,3]."""
    k = np.asarray(k_matrix, dtype=np.float64).reshape(3, 3)
    projection = np.zeros((3, 4))
    projection[:, :3] = k
    roi = _T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0,
                                                 do_rectify=False)
    return _T[CAMERA_INFO](header=header_msg(stamp_ns, frame_id), height=int(image_hw[0]),
                           width=int(image_hw[1]), distortion_model='plumb_bob',
                           d=np.zeros(5), k=k.reshape(-1), r=np.eye(3).reshape(-1),
                           p=projection.reshape(-1), binning_x=0, binning_y=0, roi=roi)


def pose_msg(pose: np.ndarray) -> Any:
    """geometry_msgs/Pose of a 4x4 transform."""
    translation, quat = translation_quaternion_from_pose(pose)
    return _T['geometry_msgs/msg/Pose'](
        position=_T['geometry_msgs/msg/Point'](x=float(translation[0]), y=float(translation[1]),
                                               z=float(translation[2])),
        orientation=_T['geometry_msgs/msg/Quaternion'](x=float(quat[0]), y=float(quat[1]),
                                                       z=float(quat[2]), w=float(quat[3])))


def pose_to_matrix(pose: Any) -> np.ndarray:
    """4x4 transform of a geometry_msgs/Pose."""
    position, q = pose.position, pose.orientation
    return pose_from_translation_quaternion((position.x, position.y, position.z),
                                            (q.x, q.y, q.z, q.w))


def transform_to_matrix(transform: Any) -> np.ndarray:
    """4x4 transform of a geometry_msgs/Transform."""
    t, q = transform.translation, transform.rotation
    return pose_from_translation_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))


def pose_stamped_msg(pose: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """geometry_msgs/PoseStamped of a 4x4 ``frame_from_body`` transform."""
    return _T[POSE_STAMPED](header=header_msg(stamp_ns, frame_id), pose=pose_msg(pose))


def transform_stamped_msg(pose: np.ndarray, stamp_ns: int, parent: str, child: str) -> Any:
    """geometry_msgs/TransformStamped of a 4x4 ``parent_from_child`` transform."""
    translation, quat = translation_quaternion_from_pose(pose)
    transform = _T['geometry_msgs/msg/Transform'](
        translation=_T['geometry_msgs/msg/Vector3'](x=float(translation[0]),
                                                    y=float(translation[1]),
                                                    z=float(translation[2])),
        rotation=_T['geometry_msgs/msg/Quaternion'](x=float(quat[0]), y=float(quat[1]),
                                                    z=float(quat[2]), w=float(quat[3])))
    return _T['geometry_msgs/msg/TransformStamped'](header=header_msg(stamp_ns, parent),
                                                    child_frame_id=child, transform=transform)


def tf_message(transforms: Sequence[Any]) -> Any:
    """tf2_msgs/TFMessage holding TransformStamped messages."""
    return _T[TF_MESSAGE](transforms=list(transforms))


def path_msg(poses: Sequence[np.ndarray], stamps_ns: Sequence[int], frame_id: str) -> Any:
    """nav_msgs/Path; the header carries the newest stamp."""
    stamped = [pose_stamped_msg(p, s, frame_id) for p, s in zip(poses, stamps_ns)]
    newest = int(stamps_ns[-1]) if len(stamps_ns) else 0
    return _T[PATH](header=header_msg(newest, frame_id), poses=stamped)


def odometry_msg(pose: np.ndarray, stamp_ns: int, frame_id: str, child_frame_id: str) -> Any:
    """nav_msgs/Odometry with the pose and large (unknown) covariances, zero twist."""
    covariance = np.eye(6).reshape(-1) * 1e3
    pose_cov = _T['geometry_msgs/msg/PoseWithCovariance'](pose=pose_msg(pose),
                                                          covariance=covariance)
    zero = _T['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0)
    twist = _T['geometry_msgs/msg/Twist'](linear=zero, angular=zero)
    twist_cov = _T['geometry_msgs/msg/TwistWithCovariance'](twist=twist, covariance=covariance)
    return _T[ODOMETRY](header=header_msg(stamp_ns, frame_id), child_frame_id=child_frame_id,
                        pose=pose_cov, twist=twist_cov)


CLOUD_DTYPE = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('rgb', '<f4')])


def point_cloud_msg(points: np.ndarray, colors: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """Unorganised sensor_msgs/PointCloud2 with fields x, y, z, rgb (point_step 16).

    Args:
        points: [N,3] float positions; non-finite rows are dropped so ``is_dense`` holds.
        colors: [N,3] uint8 RGB.

    """
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    finite = np.isfinite(points).all(axis=1)
    points, colors = points[finite], colors[finite]
    cloud = np.zeros(len(points), dtype=CLOUD_DTYPE)
    cloud['x'], cloud['y'], cloud['z'] = points[:, 0], points[:, 1], points[:, 2]
    cloud['rgb'] = pack_rgb(colors)
    field = _T['sensor_msgs/msg/PointField']
    fields = [field(name=name, offset=4 * index, datatype=7, count=1)
              for index, name in enumerate(('x', 'y', 'z', 'rgb'))]
    return _T[POINT_CLOUD2](header=header_msg(stamp_ns, frame_id), height=1, width=len(cloud),
                            fields=fields, is_bigendian=False, point_step=CLOUD_DTYPE.itemsize,
                            row_step=CLOUD_DTYPE.itemsize * len(cloud),
                            data=cloud.view(np.uint8).reshape(-1), is_dense=True)


def point_cloud_to_arrays(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """[N,3] float32 points and [N,3] uint8 colours of an x,y,z,rgb PointCloud2."""
    offsets = {f.name: f.offset for f in msg.fields}
    dtype = np.dtype({'names': ['x', 'y', 'z', 'rgb'],
                      'formats': ['<f4'] * 4,
                      'offsets': [offsets['x'], offsets['y'], offsets['z'], offsets['rgb']],
                      'itemsize': msg.point_step})
    cloud = np.frombuffer(bytes(msg.data), dtype=dtype, count=msg.width * msg.height)
    points = np.stack([cloud['x'], cloud['y'], cloud['z']], axis=1)
    return points, unpack_rgb(cloud['rgb'])
