# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Publishers of the planner outputs (issue 15): dynamic cloud, grids, detections, obstacles.

The engine runs :class:`~vggt4d_ros.perception.perception_tracker.PerceptionTracker` after
the mapper (``EngineOutput.perception``); the node's sink hands that output here on the
output stage's thread (or the worker's, with ``output_stage.run_async`` off), after the
window's masks went out. Topics (all in the node's world frame,
``map`` or ``odom``, unless ``obstacle_frame`` names another frame for the object outputs):

* ``~/dynamic_cloud``: sensor_msgs/PointCloud2 (x y z rgb object_id), per processed frame
  (a multi-camera rig: per step, one cloud with every camera's points);
* ``~/static_grid``: nav_msgs/OccupancyGrid, latched (reliable, transient local, depth 1);
* ``~/dynamic_grid``, ``~/combined_grid``: nav_msgs/OccupancyGrid, with the static grid;
* ``~/detections``: vision_msgs/Detection3DArray (id = track id), per window;
* ``~/obstacles``: nav2_dynamic_msgs/ObstacleArray, per window;
* ``~/track_markers``: visualization_msgs/MarkerArray, per window.

The track messages (detections, obstacles, markers) go out as CDR bytes written by
``track_cdr`` where the running ROS has the Jazzy layouts (``raw_kinds``), else as
``perception_msgs``' message objects: the same messages on the wire.

The others are reliable, volatile, depth 10. Every message carries an image stamp: a cloud its
frame's, the others the window's newest processed frame's (a rig: the step's stamp, i.e. its
reference camera's; the world frame is the reference camera's convention). Only the latched
static grid is published without a subscriber (the others are built only while someone
listens, as ``~/window_cloud``). Detections, obstacles and markers go out every window, empty
when there is no track (a planner learns that the obstacles are gone; the markers' DELETEALL clears
RViz). Grids go out at most every ``grid_period_s`` and always after a map reset (the core starts a
new segment with empty grids and no tracks, so the cleared state reaches subscribers).

The output frame of the core (``PerceptionConfig.output_from_world``) must be the node's
world frame: the sink calls :func:`align_output_frame` with the frame convention right before
the engine runs the window's perception (``before_perception``, on the thread that runs
it). ``map_to_camera`` / ``none`` keep the core's default (the first camera levelled);
``odom_to_base`` gets the base_link -> camera extrinsic; with ``extrinsic_source=tf`` that
is known only once TF has it: until then nothing is published, then the tracker restarts in
the right frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import time

from nav_msgs.msg import OccupancyGrid
import numpy as np
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.perception.perception_tracker import DynamicCloud
from vggt4d_ros.perception.perception_tracker import PerceptionOutput
from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.ros.frames import FrameConvention
from vggt4d_ros.ros.outputs import FRAME_QOS
from vggt4d_ros.ros.outputs import header_at
from vggt4d_ros.ros.outputs import MAP_QOS
from vggt4d_ros.ros.outputs import PublisherGroup
from vggt4d_ros.ros import perception_msgs as pm
from vggt4d_ros.ros.perception_params import PerceptionTopicParams
from vggt4d_ros.ros.tf_buffer import NodeTf
from vggt4d_ros.ros.tf_buffer import TfLookupError
from vggt4d_ros.ros import track_cdr

#: Message kinds timed in ``PerceptionPublisher.last_seconds``.
PUBLISH_KINDS = ('dynamic_cloud', 'grids', 'detections', 'obstacles', 'markers')

#: Grid topics and their QoS: the static grid is latched (a late RViz or planner gets it).
GRID_TOPICS = {'static': ('~/static_grid', MAP_QOS), 'dynamic': ('~/dynamic_grid', FRAME_QOS),
               'combined': ('~/combined_grid', FRAME_QOS)}


def align_output_frame(tracker: PerceptionTracker | None,
                       convention: FrameConvention | None) -> bool:
    """Make the tracker output in the convention's world frame; True when it had to change.

    A change resets tracks and grids (they were built in another frame).
    """
    if tracker is None or convention is None:
        return False
    wanted = convention.world_from_vggt
    if np.allclose(tracker.config.output_from_world, wanted, atol=1e-9):
        return False
    # A copy: the engine config the tracker was built from stays as the parameters gave it.
    tracker.config = replace(tracker.config, output_from_world=np.array(wanted, np.float64))
    tracker.reset()
    return True


@dataclass
class PerceptionCounters:
    """What the planner-output publishers did (diagnostics)."""

    clouds: int = 0
    grids: int = 0
    track_messages: int = 0
    tf_failures: int = 0


class PerceptionPublisher:
    """Owns the planner-output publishers; called from one thread (the engine's output stage).

    Args:
        node: the node (publishers, logger, clock of the grid period).
        params: which topics, grid period, obstacle frame.
        config: the engine's perception settings (outputs it does not compute get no topic).
        monotonic: clock of the grid period (``time.monotonic``; tests pass their own).
        tf: the node's TF buffer (needed with ``obstacle_frame``).

    Raises:
        ValueError: ``obstacle_frame`` without a TF buffer or on a machine without TF.

    """

    def __init__(self, node, params: PerceptionTopicParams, config: PerceptionConfig,
                 monotonic=None, tf: NodeTf | None = None) -> None:
        self._node = node
        self._params = params
        # The track messages' objects, reused window after window (publish serialises).
        self._pool = pm.MessagePool()
        # First: without TF this raises before any publisher exists.
        self._tf = _ObstacleFrame(node, tf, params.obstacle_frame) \
            if params.obstacle_frame else None
        self._monotonic = monotonic or time.monotonic
        self._publishers = PublisherGroup(node)
        self._create = self._publishers.create
        self._last_grid_s = -np.inf
        self.counters = PerceptionCounters()
        #: Seconds per message kind of the last :meth:`publish` (:data:`PUBLISH_KINDS`).
        self.last_seconds: dict[str, float] = {}
        on = config.enabled
        self.cloud_pub = self._create(on and config.points.enabled
                                      and params.publish_dynamic_cloud,
                                      PointCloud2, '~/dynamic_cloud', FRAME_QOS)
        self.grid_pubs = {name: self._create(on and config.grid.enabled and params.publish_grids,
                                             OccupancyGrid, topic, qos)
                          for name, (topic, qos) in GRID_TOPICS.items()}
        tracks = on and config.tracker.enabled
        self.detections_pub = self._create_optional(tracks and params.publish_detections,
                                                    pm.detection_array_type, '~/detections')
        self.obstacles_pub = self._create_optional(tracks and params.publish_detections,
                                                   pm.obstacle_array_type, '~/obstacles')
        self.markers_pub = self._create(tracks and params.publish_track_markers,
                                        MarkerArray, '~/track_markers', FRAME_QOS)
        #: Track message kinds published as bytes written by ``track_cdr``; the others (a
        #: layout that differs from Jazzy's) as ``perception_msgs``' messages.
        self.raw_kinds = self._raw_kinds()

    def _track_publishers(self) -> tuple[tuple[str, object], ...]:
        """(kind, publisher or None) of the three track messages, in publishing order."""
        return (('detections', self.detections_pub), ('obstacles', self.obstacles_pub),
                ('markers', self.markers_pub))

    def _raw_kinds(self) -> frozenset[str]:
        raw = set()
        for kind, publisher in self._track_publishers():
            if publisher is None:
                continue
            problem = track_cdr.raw_publishing_problem(publisher.msg_type)
            if problem:
                self._node.get_logger().info(
                    f'{publisher.topic_name}: built as messages, not bytes ({problem})')
            else:
                raw.add(kind)
        return frozenset(raw)

    def _create_optional(self, enabled: bool, type_of, topic: str):
        """Create a publisher of a generated message package (a warning when it is missing)."""
        if not enabled:
            return None
        try:
            msg_type = type_of()
        except ImportError as error:
            self._node.get_logger().warning(f'{topic} is not published: {error}')
            return None
        return self._create(True, msg_type, topic, FRAME_QOS)

    def destroy(self) -> None:
        """Destroy every publisher (lifecycle cleanup)."""
        self._publishers.destroy()

    def publish(self, output: PerceptionOutput | None, convention: FrameConvention,
                reset: bool = False) -> None:
        """Publish one window's planner outputs (``reset``: the map restarted)."""
        self.last_seconds = {}
        if output is None or output.stamp_ns is None:
            return
        world = convention.world_frame
        tic = time.perf_counter()
        for cloud in output.clouds:
            self._publish_cloud(cloud, world)
        self._lap('dynamic_cloud', tic)
        if output.grids is not None:
            tic = time.perf_counter()
            self._publish_grids(output, world, reset)
            self._lap('grids', tic)
        self._publish_tracks(output.tracks, output.stamp_ns, world)

    def _lap(self, kind: str, tic: float) -> None:
        self.last_seconds[kind] = self.last_seconds.get(kind, 0.0) + time.perf_counter() - tic

    def _publish_cloud(self, cloud: DynamicCloud, world: str) -> None:
        if not _subscribed(self.cloud_pub):
            return
        frame, moved = self._in_obstacle_frame(world, cloud.stamp_ns)
        if moved is None:
            return
        if frame != world:
            cloud = replace(cloud, points=_apply(moved, cloud.points).astype(np.float32))
        self.cloud_pub.publish(pm.dynamic_cloud_msg(header_at(cloud.stamp_ns, frame), cloud))
        self.counters.clouds += 1

    def _publish_grids(self, output: PerceptionOutput, world: str, reset: bool) -> None:
        if all(pub is None for pub in self.grid_pubs.values()):
            return
        now = self._monotonic()
        if not reset and now - self._last_grid_s < self._params.grid_period_s:
            return
        self._last_grid_s = now
        header = header_at(output.stamp_ns, world)
        grids = output.grids
        for name, publisher in self.grid_pubs.items():
            # The static grid is latched; the others are built only while someone listens.
            if publisher is not None and (name == 'static' or _subscribed(publisher)):
                publisher.publish(pm.occupancy_grid_msg(
                    header, getattr(grids, name), grids.resolution, grids.origin_xy,
                    grids.ground_z))
        self.counters.grids += 1

    def _publish_tracks(self, tracks: list[Track], stamp_ns: int, world: str) -> None:
        if not any(_subscribed(pub) for _, pub in self._track_publishers()):
            return
        frame, moved = self._in_obstacle_frame(world, stamp_ns)
        if moved is None:
            return
        if frame != world:
            tracks = [_moved_track(track, moved) for track in tracks]
        header = header_at(stamp_ns, frame)
        for kind, publisher in self._track_publishers():
            if _subscribed(publisher):
                tic = time.perf_counter()
                if not (kind in self.raw_kinds
                        and self._published_raw(kind, publisher, stamp_ns, frame, tracks)):
                    publisher.publish(_TRACK_MSGS[kind](header, tracks, pool=self._pool))
                self._lap(kind, tic)
        self.counters.track_messages += 1

    def _published_raw(self, kind: str, publisher, stamp_ns: int, frame: str,
                       tracks: list[Track]) -> bool:
        """Publish ``track_cdr``'s bytes; False (and messages from now on) if refused."""
        try:
            publisher.publish(_TRACK_CDR[kind](stamp_ns, frame, tracks))
        except TypeError as error:  # an rclpy whose publish takes message objects only
            self.raw_kinds = self.raw_kinds - {kind}
            self._node.get_logger().warning(
                f'{publisher.topic_name}: publishing bytes failed ({error}); built as '
                'messages from now on')
            return False
        return True

    def _in_obstacle_frame(self, world: str, stamp_ns: int) -> tuple[str, np.ndarray | None]:
        """(frame of the object outputs, [4,4] frame <- world), or a None transform (no TF yet)."""
        if self._tf is None or self._tf.frame == world:
            return world, np.eye(4)
        transform = self._tf.lookup(world, stamp_ns)
        if transform is None:
            self.counters.tf_failures += 1
        return self._tf.frame, transform


#: The track messages' two builders: bytes (``track_cdr``) and messages (``perception_msgs``).
_TRACK_CDR = {'detections': track_cdr.detections_cdr, 'obstacles': track_cdr.obstacles_cdr,
              'markers': track_cdr.markers_cdr}
_TRACK_MSGS = {'detections': pm.detections_msg, 'obstacles': pm.obstacles_msg,
               'markers': pm.markers_msg}


def _subscribed(publisher) -> bool:
    """Return whether the publisher exists (enabled) and has a matched subscription."""
    return publisher is not None and publisher.get_subscription_count() > 0


def _apply(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points [N,3] through a [4,4] rigid transform (float64)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return points @ transform[:3, :3].T + transform[:3, 3]


def _moved_track(track: Track, transform: np.ndarray) -> Track:
    """Move a track to another frame: centre moved, velocity rotated, box bounds rotated."""
    rotation = transform[:3, :3]
    return replace(track, position=_apply(transform, track.position)[0],
                   velocity=rotation @ np.asarray(track.velocity, dtype=np.float64),
                   size=np.abs(rotation) @ np.asarray(track.size, dtype=np.float64))


class _ObstacleFrame:
    """TF lookups ``obstacle_frame <- world`` at a stamp (the node's TF buffer; non-blocking)."""

    def __init__(self, node, tf: NodeTf | None, frame: str) -> None:
        if tf is None:
            raise ValueError('obstacle_frame needs the node TF buffer')
        tf.acquire()  # ValueError without any TF back end
        self._node = node
        self.frame = frame
        self._tf = tf

    def lookup(self, world: str, stamp_ns: int) -> np.ndarray | None:
        try:
            return self._tf.lookup(self.frame, world, stamp_ns, 'obstacle_frame')
        except TfLookupError as error:
            self._node.get_logger().warning(
                f'no TF {self.frame} <- {world} at the image stamp ({error.kind}): object '
                f'outputs of this window not published ({error})', throttle_duration_sec=5.0)
            return None


__all__ = ['align_output_frame', 'GRID_TOPICS', 'PUBLISH_KINDS', 'PerceptionCounters',
           'PerceptionPublisher']
