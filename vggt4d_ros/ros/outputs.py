# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Publishers of the node's outputs: masks, overlay, clouds, TF, path, odometry.

Masks (and overlays) are published per window as soon as the backend returns, before the
mapper; poses, path and clouds after it (``publish_mask``/``publish_overlay`` vs
``publish_pose``/``publish_path``/``publish_clouds``). Every header carries the stamp of the
source image: per-frame outputs their own frame's stamp (masks also its frame_id),
window-level clouds the stamp of the window's newest frame.

Overlay, odometry, path and window cloud are built and published only while someone subscribes
(they run on the worker thread between windows: an overlay blend per frame, a Path of up to
``path_max_size`` poses, ~3.7 ms for 1024 poses on the 2-core CPU machine). Masks, TF and the
latched static map are always published.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path
import numpy as np
from rclpy.qos import DurabilityPolicy
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from vggt4d_ros.ros.compat import TfPublisher
from vggt4d_ros.ros.conversions import make_cloud
from vggt4d_ros.ros.conversions import mask_overlay
from vggt4d_ros.ros.conversions import numpy_to_image_msg
from vggt4d_ros.ros.conversions import pose_to_msg
from vggt4d_ros.ros.conversions import transform_stamped
from vggt4d_ros.ros.frames import FrameConvention
from vggt4d_ros.ros.params import NodeParams

if TYPE_CHECKING:
    from vggt4d_ros.ros.perception_publishers import PerceptionPublisher

#: Latched map (REP-2003 "maps"): late subscribers such as RViz get the last map at once.
MAP_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
#: Per-frame outputs: reliable and volatile (RViz's default), a short history.
FRAME_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)

#: Pose and twist covariance diagonal: VGGT gives no uncertainty and monocular scale is
#: arbitrary, so a loose constant tells fusion filters not to trust these values much.
UNKNOWN_VARIANCE = 1.0


@dataclass
class FrameMask:
    """Dynamic mask of one processed frame, ready to publish (before its pose is known).

    Attributes:
        header: source image header (stamp and frame_id).
        mask: [H,W] uint8 0/255 dynamic mask at camera resolution.
        rgb: [H,W,3] uint8 source image (for the overlay), or None.
        received_s: ``time.monotonic()`` when the image arrived, or None if unknown.
        camera: a rig camera's name (its masks go to ``~/<camera>/dynamic_mask``); '' for
            the single camera (``~/dynamic_mask``).

    """

    header: Header
    mask: np.ndarray
    rgb: np.ndarray | None
    received_s: float | None = None
    camera: str = ''


@dataclass
class FramePose:
    """Pose of one processed frame, ready to publish (after the mapper).

    Attributes:
        stamp_ns: source image stamp in nanoseconds.
        frame_id: source image frame_id.
        vggt_from_camera: [4,4] camera-optical-to-world pose in the engine's global frame.

    """

    stamp_ns: int
    frame_id: str
    vggt_from_camera: np.ndarray


def header_at(stamp_ns: int, frame_id: str) -> Header:
    """Header with the given stamp (ns) and frame."""
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return header


class PublisherGroup:
    """Publishers of one node created one by one and destroyed together (lifecycle cleanup)."""

    def __init__(self, node) -> None:
        self._node = node
        self._publishers: list = []

    def create(self, enabled: bool, msg_type, topic: str, qos: QoSProfile):
        """Create a publisher on the node, or return None when ``enabled`` is false."""
        if not enabled:
            return None
        publisher = self._node.create_publisher(msg_type, topic, qos)
        self._publishers.append(publisher)
        return publisher

    def destroy(self) -> None:
        """Destroy every publisher created here."""
        for publisher in self._publishers:
            self._node.destroy_publisher(publisher)
        self._publishers.clear()


class OutputPublisher:
    """Owns the output publishers; called from the worker thread only."""

    def __init__(self, node, params: NodeParams, camera_names: tuple[str, ...] = (),
                 perception: PerceptionPublisher | None = None) -> None:
        self._node = node
        self._params = params
        #: Planner-output publishers (ros/perception_publishers.py), or None.
        self.perception = perception
        self._publishers = PublisherGroup(node)
        self._create = self._publishers.create
        self.mask_pub = self._create(params.publish_masks and not camera_names, Image,
                                     '~/dynamic_mask', FRAME_QOS)
        self.overlay_pub = self._create(params.publish_overlay and not camera_names, Image,
                                        '~/mask_overlay', FRAME_QOS)
        # A rig: masks and overlays per camera, ~/<camera>/dynamic_mask.
        self.camera_mask_pubs = {name: self._create(params.publish_masks, Image,
                                                    f'~/{name}/dynamic_mask', FRAME_QOS)
                                 for name in camera_names}
        self.camera_overlay_pubs = {name: self._create(params.publish_overlay, Image,
                                                       f'~/{name}/mask_overlay', FRAME_QOS)
                                    for name in camera_names}
        self.map_pub = self._create(params.publish_static_map, PointCloud2, '~/static_map',
                                    MAP_QOS)
        self.window_pub = self._create(params.publish_window_cloud, PointCloud2,
                                       '~/window_cloud', FRAME_QOS)
        self.path_pub = self._create(params.publish_path, Path, '~/path', FRAME_QOS)
        self.odom_pub = self._create(params.publish_odometry, Odometry, '~/odometry', FRAME_QOS)
        wants_tf = params.publish_tf and params.tf_mode != 'none'
        self.tf = TfPublisher(node) if wants_tf else None
        self._path = collections.deque(maxlen=params.path_max_size)
        self._previous_pose: tuple[int, np.ndarray] | None = None
        self.frames_published = 0

    def destroy(self) -> None:
        """Destroy every publisher (lifecycle cleanup)."""
        self._publishers.destroy()
        if self.tf is not None:
            self.tf.destroy()
        if self.perception is not None:
            self.perception.destroy()

    def reset_trajectory(self) -> None:
        """Forget the path and the previous pose (after an engine reset)."""
        self._path.clear()
        self._previous_pose = None

    def publish_mask(self, frame: FrameMask) -> None:
        """Publish the dynamic mask of one frame (source header; a rig camera's own topic)."""
        publisher = self.camera_mask_pubs.get(frame.camera) if frame.camera else self.mask_pub
        if publisher is not None:
            publisher.publish(numpy_to_image_msg(frame.mask, 'mono8', frame.header))

    def publish_overlay(self, frame: FrameMask) -> None:
        """Publish the mask overlay of one frame (when subscribed and the image is known)."""
        publisher = self.camera_overlay_pubs.get(frame.camera) if frame.camera \
            else self.overlay_pub
        if _subscribed(publisher) and frame.rgb is not None:
            publisher.publish(numpy_to_image_msg(
                mask_overlay(frame.rgb, frame.mask), 'rgb8', frame.header))

    def publish_pose(self, frame: FramePose, convention: FrameConvention) -> None:
        """Publish TF and odometry of one frame; extend the path."""
        pose = convention.child_pose(frame.vggt_from_camera)
        world_header = header_at(frame.stamp_ns, convention.world_frame)
        if self.tf is not None:
            self.tf.send([transform_stamped(pose, world_header, convention.child_frame)])
        if self.path_pub is not None:
            self._path.append(PoseStamped(header=world_header, pose=pose_to_msg(pose)))
        if _subscribed(self.odom_pub):
            self.odom_pub.publish(self._odometry(frame.stamp_ns, pose, world_header,
                                                 convention.child_frame))
        self._previous_pose = (frame.stamp_ns, pose)
        self.frames_published += 1

    def _odometry(self, stamp_ns: int, pose: np.ndarray, header: Header,
                  child_frame: str) -> Odometry:
        odom = Odometry(header=header, child_frame_id=child_frame)
        odom.pose.pose = pose_to_msg(pose)
        odom.pose.covariance = np.diag([UNKNOWN_VARIANCE] * 6).ravel()
        odom.twist.covariance = np.diag([UNKNOWN_VARIANCE] * 6).ravel()
        if self._previous_pose is not None and stamp_ns > self._previous_pose[0]:
            linear, angular = body_twist(self._previous_pose[1], pose,
                                         (stamp_ns - self._previous_pose[0]) * 1e-9)
            twist = odom.twist.twist
            twist.linear.x, twist.linear.y, twist.linear.z = (float(v) for v in linear)
            twist.angular.x, twist.angular.y, twist.angular.z = (float(v) for v in angular)
        return odom

    def publish_path(self) -> None:
        """Publish the bounded path (once per window: it can hold path_max_size poses)."""
        if _subscribed(self.path_pub) and self._path:
            newest = self._path[-1].header
            self.path_pub.publish(Path(header=newest, poses=list(self._path)))

    def publish_clouds(self, stamp_ns: int, convention: FrameConvention,
                       window_cloud: tuple[np.ndarray, np.ndarray] | None,
                       static_map: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Publish the window's static points and/or the global static map (VGGT world)."""
        header = header_at(stamp_ns, convention.world_frame)
        if _subscribed(self.window_pub) and window_cloud is not None:
            points, colors = window_cloud
            self.window_pub.publish(make_cloud(header, convention.points_to_world(points),
                                               colors))
        if self.map_pub is not None and static_map is not None:
            points, colors = static_map
            self.map_pub.publish(make_cloud(header, convention.points_to_world(points), colors))


def _subscribed(publisher) -> bool:
    """Return whether the publisher exists (enabled) and has a matched subscription."""
    return publisher is not None and publisher.get_subscription_count() > 0


def body_twist(previous: np.ndarray, current: np.ndarray,
               dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Finite-difference twist between two 4x4 poses, in the current body frame.

    Returns:
        (linear [3], angular [3]) velocities, expressed in the child frame as nav_msgs/Odometry
        specifies for ``twist``.

    """
    rotation = current[:3, :3]
    linear = rotation.T @ (current[:3, 3] - previous[:3, 3]) / dt_s
    delta = previous[:3, :3].T @ rotation
    rotvec, _ = cv2.Rodrigues(delta)
    return linear, rotvec.reshape(3) / dt_s
