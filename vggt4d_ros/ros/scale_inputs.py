# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node's metric-scale inputs: depth, odometry and the camera extrinsic into ``engine.metric``.

What the engine's :class:`~vggt4d_ros.runtime.scale.runtime.MetricScale` needs (docs/scale.md),
taken from ROS topics on the executor thread (the facade is lock-protected; the worker reads it
once per window):

* ``scale.source=depth``: ``depth_topic`` (``sensor_msgs/Image`` 16UC1/mono16 mm or 32FC1 m),
  decoded by the one raw decoder (``runtime/image_decode.py``) with the node's input limits.
  Pairing with the colour images happens ONCE: with ``message_filters``'
  ``ApproximateTimeSynchronizer`` when it is importable (a ROS install: the images reach it
  through a ``SimpleFilter`` fed by the node's own image callback, so the image topic is not
  subscribed twice), else in the facade (``runtime/sync.py``, the same policy). Depth of another
  encoding or undecodable depth is counted and handed on empty, so the source counts the frame
  as ``wrong_encoding`` / ``wrong_shape`` exactly as in the replay tool.
* ``scale.source=odometry``: ``odom_frame -> base_frame`` from TF (``odometry_source=tf``)
  or ``nav_msgs/Odometry`` on ``odometry_topic``. From TF, every accepted image's stamp is
  looked up in the node's one TF buffer (``ros/tf_buffer.py``: tf2_ros, or the pip-only
  fallback that behaves the same): chains such as odom -> base_footprint -> base_link
  resolve and tf2 interpolates at the stamp. A stamp TF has not reached yet stays pending
  and is tried again at the next image and before the window's estimate (the replay tool's
  rule too: ``runtime/scale/tf_stamps.py``, at most ``PENDING_STAMPS``; one TF will never
  have, or one pushed out, counts as ``scale.odometry_unresolved``); the samples at image
  stamps go to the facade's buffer (jump detection), where a frame without one is the
  source's counted ``no_tf`` outcome.
* the extrinsic ``base_frame -> camera`` (odometry and camera_height): ``base_to_camera``
  (``extrinsic_source=parameter``) or one lookup (latest) in the node's TF buffer
  (``extrinsic_source=tf``; a chain base_link -> camera_link -> camera_optical_frame
  resolves). The camera height is ``scale.camera_height.camera_height_m`` or that
  extrinsic's z.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image

from vggt4d_ros.ros.conversions import stamp_to_ns
from vggt4d_ros.ros.frames import pose_from_xyz_quat
from vggt4d_ros.ros.params import NodeParams
from vggt4d_ros.ros.tf_buffer import NodeTf
from vggt4d_ros.ros.tf_buffer import TfLookupError
from vggt4d_ros.runtime import image_decode
from vggt4d_ros.runtime.scale.config import ScaleConfig
from vggt4d_ros.runtime.scale.depth import DEPTH_UNITS_M
from vggt4d_ros.runtime.scale.depth import DepthImage
from vggt4d_ros.runtime.scale.runtime import MetricScale
from vggt4d_ros.runtime.scale.tf_stamps import PendingStamps

try:
    import message_filters
except ImportError:  # pip-only machines: the facade pairs (runtime/sync.py, same policy)
    message_filters = None
try:
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the machine
    TFMessage = None


def check_scale_parameters(params: NodeParams, scale: ScaleConfig) -> None:
    """Refuse combinations that cannot give metres (configure fails with this reason).

    Raises:
        ValueError: odometry scale with ``tf_mode=odom_to_base`` (the node would measure its
            own output), odometry from TF or an extrinsic from TF without tf2_msgs, or
            camera_height without any height.

    """
    if scale.source == 'odometry' and params.tf_mode == 'odom_to_base':
        raise ValueError(
            "scale.source=odometry needs the robot's own odom -> base_link, but "
            'tf_mode=odom_to_base makes this node publish it: the scale would be measured on '
            "the node's own output. Use tf_mode:=map_to_camera (or another scale source).")
    needs_tf = (scale.source == 'odometry' and params.odometry_source == 'tf') or (
        scale.source in ('odometry', 'camera_height') and params.extrinsic_source == 'tf')
    if needs_tf and TFMessage is None:
        raise ValueError('reading /tf for the scale source needs tf2_msgs (install ROS or '
                         'build it with scripts/build_tf2_msgs.sh)')
    if scale.source == 'camera_height' and not scale.camera_height.camera_height_m > 0 \
            and params.extrinsic_source == 'parameter' and not params.base_to_camera[2] > 0:
        raise ValueError(
            'scale.source=camera_height needs the camera height: set '
            'scale.camera_height.camera_height_m, or base_to_camera with the camera above '
            f'base_link (z = {params.base_to_camera[2]}), or extrinsic_source:=tf')


def depth_from_msg(msg: Image, limits: image_decode.ImageLimits) -> tuple[DepthImage, str]:
    """Decode a depth image; on bad input an empty image and the counted reason.

    Returns:
        (depth, problem): ``problem`` is '' for a usable image, else ``wrong_encoding`` (not
        16UC1/mono16/32FC1) or ``decode_error`` (size limits, short data); the depth then has
        an empty [0,0] array, which the depth source counts per frame.

    """
    stamp_ns = stamp_to_ns(msg.header.stamp)
    if msg.encoding not in DEPTH_UNITS_M:
        return DepthImage(stamp_ns, np.zeros((0, 0), np.uint8), msg.encoding), 'wrong_encoding'
    try:
        data = image_decode.raw_to_array(msg.encoding, msg.height, msg.width, msg.step,
                                         msg.is_bigendian, msg.data, limits)
    except image_decode.ImageDecodeError:
        return DepthImage(stamp_ns, np.zeros((0, 0), np.uint8), msg.encoding), 'decode_error'
    return DepthImage(stamp_ns, data, msg.encoding), ''


class _Stamped:
    """What message_filters needs of an image: its header (the pixels stay in the node)."""

    def __init__(self, header: Any) -> None:
        self.header = header


class ScaleInputs:
    """Subscriptions that feed ``metric`` (see the module docstring).

    Args:
        node: the node (subscriptions, logger).
        params: node parameters (topics, frames, extrinsic source).
        metric: the engine's facade (``engine.metric``).
        limits: input limits of the depth images (the node's ``max_image_pixels``).
        qos: QoS of the depth subscription (the image subscription's).
        use_message_filters: pair with message_filters (default: when importable).
        tf: the node's TF buffer (odometry or extrinsic from TF; acquired here).

    Raises:
        ValueError: TF needed but no TF buffer, or no TF back end on this machine.

    """

    def __init__(self, node, params: NodeParams, metric: MetricScale,
                 limits: image_decode.ImageLimits, qos: QoSProfile,
                 use_message_filters: bool | None = None, tf: NodeTf | None = None) -> None:
        self._node = node
        self._params = params
        self._metric = metric
        self._limits = limits
        self._qos = qos
        self._source = metric.config.source
        if use_message_filters is None:
            use_message_filters = message_filters is not None
        self.pairing = 'message_filters' if use_message_filters else 'runtime.sync'
        self._image_filter = None
        self._sync = None
        self._extrinsic_frame = ''
        self._warned: set[str] = set()
        self.counts: Counter = Counter()
        self._odometry_tf = self._source == 'odometry' and params.odometry_source == 'tf'
        self._extrinsic_tf = self._source in ('odometry', 'camera_height') \
            and params.extrinsic_source == 'tf'
        #: image stamps whose odom -> base_link TF has not come yet, oldest first
        self._pending = PendingStamps(self._lookup_odometry, metric.add_odometry, self.counts)
        self._tf = tf
        if self._odometry_tf or self._extrinsic_tf:
            if tf is None:
                raise ValueError('the scale source reads TF: it needs the node TF buffer')
            tf.acquire()
        if self._odometry_tf:
            # The worker brings the samples up to date before each window's estimate.
            metric.before_estimate = self.resolve_odometry
        if params.extrinsic_source == 'parameter' and self._source != 'depth':
            metric.set_base_from_camera(pose_from_xyz_quat(params.base_to_camera))
            self._extrinsic_frame = 'base_to_camera'

    def subscribe(self, callback_group=None) -> list:
        """Create the subscriptions; return them (the node destroys them on deactivate)."""
        node, params, created = self._node, self._params, []
        if self._source == 'depth':
            if self.pairing == 'message_filters':
                depth = message_filters.Subscriber(node, Image, params.depth_topic,
                                                   qos_profile=self._qos,
                                                   callback_group=callback_group)
                self._image_filter = message_filters.SimpleFilter()
                self._sync = message_filters.ApproximateTimeSynchronizer(
                    [self._image_filter, depth], self._metric.config.sync_queue_size,
                    self._metric.config.sync_slop_s)
                self._sync.registerCallback(self._on_pair)
                created.append(depth.sub)
            else:
                created.append(node.create_subscription(
                    Image, params.depth_topic, self._on_depth, self._qos,
                    callback_group=callback_group))
        if self._source == 'odometry' and params.odometry_source == 'topic':
            from nav_msgs.msg import Odometry

            created.append(node.create_subscription(
                Odometry, params.odometry_topic, self._on_odometry, self._qos,
                callback_group=callback_group))
        return created

    # ------------------------------------------------------------------ callbacks
    def image(self, header: Any) -> None:
        """Register an accepted colour image: the image callback calls this after decoding."""
        if self._source == 'depth':
            if self._image_filter is not None:
                self._image_filter.signalMessage(_Stamped(header))
            else:
                self._metric.add_image(stamp_to_ns(header.stamp))
            return
        if self._extrinsic_tf and not self._extrinsic_frame:
            self._take_extrinsic(self._params.camera_frame or header.frame_id)
        if self._odometry_tf:
            self._pending.add(stamp_to_ns(header.stamp))

    def _decode(self, msg: Image) -> DepthImage:
        self.counts['depth_received'] += 1
        depth, problem = depth_from_msg(msg, self._limits)
        if problem:
            self.counts[f'depth_{problem}'] += 1
            self._warn_once(f'depth {problem} {msg.encoding}', (
                f'depth image on {self._params.depth_topic} not usable ({problem}, encoding '
                f'{msg.encoding!r}, {msg.width}x{msg.height}; need 16UC1/mono16 mm or 32FC1 m); '
                f'counted as scale.depth_{problem}, not repeated'))
        return depth

    def _on_depth(self, msg: Image) -> None:
        self._metric.add_depth(self._decode(msg))

    def _on_pair(self, image: _Stamped, depth: Image) -> None:
        self._metric.add_paired_depth(stamp_to_ns(image.header.stamp), self._decode(depth))

    def _on_odometry(self, msg) -> None:
        pose, q = msg.pose.pose.position, msg.pose.pose.orientation
        self.counts['odometry_samples'] += 1
        self._metric.add_odometry(stamp_to_ns(msg.header.stamp),
                                  pose_from_xyz_quat([pose.x, pose.y, pose.z,
                                                      q.x, q.y, q.z, q.w]))

    def resolve_odometry(self) -> None:
        """Look the pending image stamps up in TF (odom_frame <- base_frame), oldest first.

        Runs on the executor (image callback) and the worker (before a window's estimate).
        A stamp beyond the newest TF waits (TF lags the images); one older than TF's cache
        never resolves and is counted; a missing or unconnected frame waits too (TF may
        still come), bounded by ``PENDING_STAMPS`` (``runtime/scale/tf_stamps.py``).
        """
        self._pending.resolve()

    def _lookup_odometry(self, stamp_ns: int) -> tuple[np.ndarray | None, str]:
        try:
            return self._tf.lookup(self._params.odom_frame, self._params.base_frame,
                                   stamp_ns), ''
        except TfLookupError as error:
            return None, error.kind

    def _take_extrinsic(self, camera_frame: str) -> None:
        try:
            pose = self._tf.lookup(self._params.base_frame, camera_frame, 0, 'scale_extrinsic')
        except TfLookupError as error:
            self._node.get_logger().warning(
                f'scale: waiting for TF {self._params.base_frame} -> {camera_frame} '
                f'({error.kind}); windows meanwhile count as no_extrinsic',
                throttle_duration_sec=5.0)
            return
        self._metric.set_base_from_camera(pose)
        self._extrinsic_frame = camera_frame
        self._node.get_logger().info(
            f'scale: camera extrinsic {self._params.base_frame} -> {camera_frame} from TF '
            f'(camera {pose[2, 3]:.3f} m above base_link)')

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._node.get_logger().warning(text)

    # ------------------------------------------------------------------ diagnostics
    def diagnostics(self) -> dict[str, str]:
        """Return the facade's key/values plus this adapter's counters."""
        values = self._metric.diagnostics()
        values['scale.pairing'] = self.pairing if self._source == 'depth' else ''
        values['scale.extrinsic'] = self._extrinsic_frame
        for key in ('depth_received', 'depth_wrong_encoding', 'depth_decode_error',
                    'odometry_samples', 'odometry_unresolved'):
            values[f'scale.{key}'] = str(self.counts[key])
        return values


def scale_diagnostics(inputs: ScaleInputs | None,
                      config: ScaleConfig | None) -> dict[str, str]:
    """``/diagnostics`` key/values of the scale (no inputs yet, or no source: VGGT units)."""
    if inputs is None:
        return {'units': 'vggt_units', 'scale.source': config.source if config else 'none'}
    return inputs.diagnostics()
