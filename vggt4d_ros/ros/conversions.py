# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Message <-> numpy conversions for images, masks, point clouds and poses.

Where a ROS install provides ``cv_bridge`` or ``sensor_msgs_py`` they are used for the output
messages; otherwise small numpy paths build the same messages field for field (tested).
"""

from __future__ import annotations

import array

from geometry_msgs.msg import Pose
from geometry_msgs.msg import Transform
from geometry_msgs.msg import TransformStamped
import numpy as np
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from sensor_msgs.msg import PointField
from std_msgs.msg import Header

from vggt4d_ros.geometry.packed_rgb import pack_rgb
from vggt4d_ros.geometry.packed_rgb import unpack_rgb
from vggt4d_ros.geometry.rotation import quaternion_xyzw_from_rotation
from vggt4d_ros.ros.frames import pose_from_xyz_quat
from vggt4d_ros.runtime import image_decode
from vggt4d_ros.runtime.image_decode import DEFAULT_LIMITS
from vggt4d_ros.runtime.image_decode import ImageDecodeError  # noqa: F401 (re-exported)
from vggt4d_ros.runtime.image_decode import ImageLimitError  # noqa: F401 (re-exported)
from vggt4d_ros.runtime.image_decode import ImageLimits
from vggt4d_ros.runtime.image_decode import UnsupportedEncodingError  # noqa: F401

try:  # Present on a ROS install; the pip wheels do not ship it.
    from cv_bridge import CvBridge
except ImportError:  # pragma: no cover - depends on the machine
    CvBridge = None
try:
    from sensor_msgs_py import point_cloud2 as _point_cloud2
except ImportError:  # pragma: no cover - depends on the machine
    _point_cloud2 = None

#: Input encodings the node accepts (the runtime decoder's, shared with offline replay).
SUPPORTED_ENCODINGS = tuple(image_decode.RAW_ENCODINGS)

#: x, y, z, rgb as four float32 (point_step 16); rgb holds 0x00RRGGBB bit-cast to float32,
#: the layout RViz's RGB8 colour transformer reads.
CLOUD_FIELDS = [
    PointField(name='x', offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name='y', offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name='z', offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name='rgb', offset=12, datatype=PointField.FLOAT32, count=1),
]
CLOUD_DTYPE = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('rgb', '<f4')])


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def image_msg_to_rgb(msg: Image, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Convert a sensor_msgs/Image to RGB pixels [H,W,3] uint8 (a new, contiguous array).

    Raises:
        UnsupportedEncodingError: the encoding is not in ``SUPPORTED_ENCODINGS``.
        ImageLimitError: above the pixel or aspect-ratio limit (checked before decoding).
        ImageDecodeError: step or data size do not match height x width.

    """
    return image_decode.raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step,
                                   msg.is_bigendian, msg.data, limits)


def compressed_msg_to_rgb(msg: CompressedImage,
                          limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (jpeg, png, ...) to RGB [H,W,3] uint8.

    Raises:
        ImageLimitError: the header announces too many pixels (nothing decoded).
        ImageDecodeError: unreadable header or data.

    """
    return image_decode.compressed_to_rgb(msg.data, msg.format, limits)


def numpy_to_image_msg(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """Build a sensor_msgs/Image from uint8 pixels [H,W] (mono8) or [H,W,3] (rgb8).

    Uses cv_bridge when importable; the fallback fills the same fields the same way.
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if CvBridge is not None:
        return _CV_BRIDGE.cv2_to_imgmsg(pixels, encoding=encoding, header=header)
    return numpy_to_image_msg_fallback(pixels, encoding, header)


def numpy_to_image_msg_fallback(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """Numpy-only twin of ``cv_bridge.CvBridge.cv2_to_imgmsg`` for uint8 images."""
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.strides[0])
    data = array.array('B')
    data.frombytes(pixels.tobytes())
    msg.data = data
    return msg


def mask_overlay(rgb: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend dynamic pixels towards red: rgb [H,W,3] uint8, mask [H,W] uint8 0/255."""
    overlay = rgb.copy()
    dynamic = mask > 0
    red = np.array([255.0, 0.0, 0.0])
    overlay[dynamic] = ((1.0 - alpha) * rgb[dynamic] + alpha * red).astype(np.uint8)
    return overlay


def make_cloud(header: Header, points: np.ndarray, colors: np.ndarray):
    """Unorganised PointCloud2 (x, y, z, rgb float32) from points [N,3] and colours [N,3] uint8.

    Uses ``sensor_msgs_py.point_cloud2.create_cloud`` when importable, else an identical numpy
    path. ``is_dense`` is True when no coordinate is NaN or infinite.
    """
    structured = _structured_points(points, colors)
    cloud = None
    if _point_cloud2 is not None:
        try:
            cloud = _point_cloud2.create_cloud(header, CLOUD_FIELDS, structured)
        except (AssertionError, TypeError, ValueError):
            cloud = None  # early sensor_msgs_py versions take no structured arrays
        if cloud is not None and len(cloud.data) != CLOUD_DTYPE.itemsize * len(structured):
            cloud = None
    if cloud is None:
        cloud = make_cloud_fallback(header, structured)
    cloud.is_dense = bool(np.isfinite(points).all())
    return cloud


def make_cloud_fallback(header: Header, structured: np.ndarray):
    """Numpy-only twin of ``create_cloud(header, CLOUD_FIELDS, structured)`` (height 1)."""
    from sensor_msgs.msg import PointCloud2

    cloud = PointCloud2()
    cloud.header = header
    cloud.height = 1
    cloud.width = int(structured.shape[0])
    cloud.fields = list(CLOUD_FIELDS)
    cloud.is_bigendian = False
    cloud.point_step = CLOUD_DTYPE.itemsize
    cloud.row_step = CLOUD_DTYPE.itemsize * cloud.width
    cloud.is_dense = False
    data = array.array('B')
    data.frombytes(structured.tobytes())
    cloud.data = data
    return cloud


def cloud_to_numpy(cloud) -> tuple[np.ndarray, np.ndarray]:
    """Decode a cloud built by ``make_cloud``: points [N,3] float32 and colours [N,3] uint8."""
    if cloud.point_step != CLOUD_DTYPE.itemsize:
        raise ValueError(f'point_step {cloud.point_step}, expected {CLOUD_DTYPE.itemsize}')
    records = np.frombuffer(bytes(cloud.data), dtype=CLOUD_DTYPE)
    points = np.stack([records['x'], records['y'], records['z']], axis=1)
    return points, unpack_rgb(records['rgb'])


def _structured_points(points: np.ndarray, colors: np.ndarray) -> np.ndarray:
    if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape:
        raise ValueError(f'points {points.shape} and colours {colors.shape} must both be [N,3]')
    structured = np.empty(points.shape[0], dtype=CLOUD_DTYPE)
    structured['x'], structured['y'], structured['z'] = points.astype(np.float32).T
    structured['rgb'] = pack_rgb(colors)
    return structured


def pose_to_msg(pose: np.ndarray) -> Pose:
    """geometry_msgs/Pose of a 4x4 transform."""
    msg = Pose()
    msg.position.x, msg.position.y, msg.position.z = (float(v) for v in pose[:3, 3])
    quat = quaternion_xyzw_from_rotation(pose[:3, :3])
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (
        float(v) for v in quat)
    return msg


def transform_stamped(pose: np.ndarray, header: Header, child_frame: str) -> TransformStamped:
    """geometry_msgs/TransformStamped of a 4x4 transform (parent = ``header.frame_id``)."""
    msg = TransformStamped()
    msg.header = header
    msg.child_frame_id = child_frame
    transform = Transform()
    transform.translation.x, transform.translation.y, transform.translation.z = (
        float(v) for v in pose[:3, 3])
    quat = quaternion_xyzw_from_rotation(pose[:3, :3])
    transform.rotation.x, transform.rotation.y, transform.rotation.z, transform.rotation.w = (
        float(v) for v in quat)
    msg.transform = transform
    return msg


def pose_from_transform(transform: Transform) -> np.ndarray:
    """4x4 transform of a geometry_msgs/Transform (the inverse of :func:`transform_stamped`)."""
    t, q = transform.translation, transform.rotation
    return pose_from_xyz_quat([t.x, t.y, t.z, q.x, q.y, q.z, q.w])


_CV_BRIDGE = CvBridge() if CvBridge is not None else None
