# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""ros/perception_publishers.py in one process: grid period, reset, empty tracks, frames.

The publishers live on the test peer's rclpy node and its own subscriptions receive the
messages (real rclpy and DDS, one process); the node-level DDS tests are in
test_ros_perception_node.py.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('vision_msgs.msg')
pytest.importorskip('nav2_dynamic_msgs.msg')

from nav2_dynamic_msgs.msg import ObstacleArray  # noqa: E402
from nav_msgs.msg import OccupancyGrid  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from vggt4d_ros.perception.config import PerceptionConfig  # noqa: E402
from vggt4d_ros.perception.occupancy import OccupancyGrids  # noqa: E402
from vggt4d_ros.perception.perception_tracker import DynamicCloud  # noqa: E402
from vggt4d_ros.perception.perception_tracker import PerceptionOutput  # noqa: E402
from vggt4d_ros.perception.perception_tracker import PerceptionTracker  # noqa: E402
from vggt4d_ros.perception.tracker import Track  # noqa: E402
from vggt4d_ros.ros.conversions import stamp_to_ns  # noqa: E402
from vggt4d_ros.ros.frames import make_convention  # noqa: E402
from vggt4d_ros.ros.frames import pose_from_xyz_quat  # noqa: E402
from vggt4d_ros.ros.perception_params import PerceptionTopicParams  # noqa: E402
from vggt4d_ros.ros import perception_publishers as pp  # noqa: E402

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
MAP = make_convention('map_to_camera', 'map', 'odom', 'base_link', 'cam', None)


def output(stamp_ns: int, tracks: list[Track] | None = None, points: int = 3) -> PerceptionOutput:
    grid = np.full((4, 5), -1, np.int8)
    grid[1, 2] = 100
    grids = OccupancyGrids(stamp_ns, 0.1, (-0.2, -0.3), -1.0, grid, grid, grid)
    cloud = DynamicCloud(stamp_ns, np.arange(points * 3, dtype=np.float32).reshape(points, 3),
                         np.zeros((points, 3), np.uint8), np.full(points, 7, np.int32))
    return PerceptionOutput(clouds=[cloud], tracks=tracks or [], stamp_ns=stamp_ns,
                            grids=grids)


def track(track_id: int) -> Track:
    return Track(track_id, np.array([1.0, 2.0, 0.5]), np.array([0.5, 0.0, 0.0]),
                 np.array([0.4, 0.2, 0.6]), 0, 1.0, 5, 0.0, 0.9, 0.01, 0.04)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_grid_period_reset_and_empty_tracks(peer):
    clock = Clock()
    publisher = pp.PerceptionPublisher(peer.node, PerceptionTopicParams(grid_period_s=0.5),
                                       PerceptionConfig(), monotonic=clock)
    name = peer.node.get_fully_qualified_name()
    grids = peer.collect(OccupancyGrid, f'{name}/combined_grid', RELIABLE)
    peer.collect(OccupancyGrid, f'{name}/dynamic_grid', RELIABLE)
    static = peer.collect(OccupancyGrid, f'{name}/static_grid', LATCHED)
    clouds = peer.collect(PointCloud2, f'{name}/dynamic_cloud', RELIABLE)
    obstacles = peer.collect(ObstacleArray, f'{name}/obstacles', RELIABLE)
    markers = peer.collect(MarkerArray, f'{name}/track_markers', RELIABLE)
    assert peer.spin_until(lambda: all(pub.get_subscription_count() for pub in (
        publisher.cloud_pub, publisher.markers_pub, publisher.obstacles_pub,
        *publisher.grid_pubs.values())), 30)
    # No detections subscriber: the array is not built, the obstacles still go out.
    steps = [(0.0, 1, False, [track(1)]), (0.1, 2, False, []), (0.2, 3, True, []),
             (0.3, 4, False, []), (0.8, 5, False, [track(2)])]
    for now, stamp, reset, tracks in steps:
        clock.now = now
        publisher.publish(output(stamp, tracks), MAP, reset=reset)
    assert peer.spin_until(lambda: len(markers) == 5 and len(grids) == 3, 30)
    # Grids: the first, the reset one (inside the period), then one period after it.
    assert [stamp_to_ns(g.header.stamp) for g in grids] == [1, 3, 5]
    assert [stamp_to_ns(c.header.stamp) for c in clouds] == [1, 2, 3, 4, 5]
    assert {g.header.frame_id for g in grids + clouds} == {'map'}
    assert grids[0].info.origin.position.z == -1.0 and list(grids[0].data)[7] == 100
    # Tracks: a message every window, empty ones too; markers start with DELETEALL.
    assert [len(o.obstacles) for o in obstacles] == [1, 0, 0, 0, 1]
    assert [[m.action for m in msg.markers][0] for msg in markers] == [Marker.DELETEALL] * 5
    assert [len(msg.markers) for msg in markers] == [4, 1, 1, 1, 4]
    assert len(static) >= 1 and stamp_to_ns(static[-1].header.stamp) == 5
    assert publisher.counters.grids == 3 and publisher.counters.track_messages == 5
    publisher.destroy()


def test_switches_leave_topics_out(peer):
    off = pp.PerceptionPublisher(
        peer.node, PerceptionTopicParams(publish_grids=False, publish_track_markers=False),
        PerceptionConfig(tracker=PerceptionConfig().tracker.__class__(enabled=False)))
    assert off.cloud_pub is not None
    assert all(pub is None for pub in off.grid_pubs.values())
    assert (off.detections_pub, off.obstacles_pub, off.markers_pub) == (None, None, None)
    off.publish(output(1), MAP)  # nothing to publish for the disabled parts; no error
    off.destroy()
    none = pp.PerceptionPublisher(peer.node, PerceptionTopicParams(),
                                  PerceptionConfig(enabled=False))
    assert none.cloud_pub is None and none.markers_pub is None
    none.destroy()


def test_output_frame_follows_the_convention():
    config = PerceptionConfig()
    tracker = PerceptionTracker(config)
    assert not pp.align_output_frame(tracker, MAP)  # the core's default is map_to_camera's
    extrinsic = pose_from_xyz_quat([0.3, 0.0, 1.2, -0.5, 0.5, -0.5, 0.5])
    odom = make_convention('odom_to_base', 'map', 'odom', 'base_link', 'cam', extrinsic)
    resets = tracker.stats.resets
    assert pp.align_output_frame(tracker, odom)
    assert np.allclose(tracker.config.output_from_world, extrinsic)
    assert config == PerceptionConfig()  # the engine's config object is left alone
    assert tracker.stats.resets == resets + 1
    assert not pp.align_output_frame(tracker, odom)
    assert not pp.align_output_frame(None, odom) and not pp.align_output_frame(tracker, None)


def test_tracks_moved_into_another_frame():
    quarter = np.eye(4)
    quarter[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # +90 deg about z
    quarter[:3, 3] = [10.0, 0.0, 0.0]
    moved = pp._moved_track(track(3), quarter)
    assert np.allclose(moved.position, [8.0, 1.0, 0.5])
    assert np.allclose(moved.velocity, [0.0, 0.5, 0.0])
    assert np.allclose(moved.size, [0.2, 0.4, 0.6])
    assert moved.track_id == 3


@pytest.mark.parametrize('tf_backend', ['fallback', 'tf2_ros'])
def test_obstacle_frame_through_the_node_tf_buffer(peer, tf_backend):
    """The object outputs' frame is looked up at the stamp through a chain, both back ends."""
    if tf_backend == 'tf2_ros':
        pytest.importorskip('tf2_ros')
    tf2_msgs = pytest.importorskip('tf2_msgs.msg')
    from vggt4d_ros.ros.conversions import transform_stamped
    from vggt4d_ros.ros.outputs import header_at
    from vggt4d_ros.ros.tf_buffer import NodeTf

    with pytest.raises(ValueError, match='TF buffer'):
        pp.PerceptionPublisher(peer.node, PerceptionTopicParams(obstacle_frame='base_link'),
                               PerceptionConfig())
    tf = NodeTf(peer.node, force_fallback=tf_backend == 'fallback')
    publisher = pp.PerceptionPublisher(
        peer.node, PerceptionTopicParams(obstacle_frame='base_link'), PerceptionConfig(), tf=tf)
    assert tf.active and tf.kind == tf_backend
    t0 = 1_700_000_000_000_000_000
    # odom -> base_footprint moves 2 m along x in 1 s; base_footprint -> base_link is static.
    moving = [transform_stamped(pose_from_xyz_quat([2.0 * k, 0, 0, 0, 0, 0, 1]),
                                header_at(t0 + k * 1_000_000_000, 'odom'), 'base_footprint')
              for k in (0, 1)]
    mount = transform_stamped(pose_from_xyz_quat([0, 0, 0.5, 0, 0, 0, 1]),
                              header_at(t0, 'base_footprint'), 'base_link')
    peer.node.create_publisher(tf2_msgs.TFMessage, '/tf_static', LATCHED).publish(
        tf2_msgs.TFMessage(transforms=[mount]))
    dynamic = peer.node.create_publisher(tf2_msgs.TFMessage, '/tf', QoSProfile(depth=100))
    assert peer.spin_until(lambda: dynamic.get_subscription_count() > 0, 30)
    dynamic.publish(tf2_msgs.TFMessage(transforms=moving))
    half = t0 + 500_000_000

    def looked_up():
        return publisher._in_obstacle_frame('odom', half)[1] is not None

    assert peer.spin_until(looked_up, 30)
    frame, moved = publisher._in_obstacle_frame('odom', half)
    assert frame == 'base_link'
    assert np.allclose(moved[:3, 3], [-1.0, 0.0, -0.5])  # base_link <- odom at 0.5 s
    failures = publisher.counters.tf_failures
    assert publisher._in_obstacle_frame('odom', t0 + 3_000_000_000)[1] is None  # future
    assert publisher.counters.tf_failures == failures + 1
    assert tf.failures['obstacle_frame.future'] == 1
    tf.release()
    assert not tf.active and tf.diagnostics()['tf.buffer'] == ''
    publisher.destroy()


def test_track_messages_as_bytes_and_as_messages_arrive_alike(peer):
    """The bytes path (``track_cdr``) and the message path give subscribers the same messages."""
    from vision_msgs.msg import Detection3DArray
    publisher = pp.PerceptionPublisher(peer.node, PerceptionTopicParams(), PerceptionConfig())
    assert publisher.raw_kinds == {'detections', 'obstacles', 'markers'}
    name = peer.node.get_fully_qualified_name()
    received = {kind: peer.collect(msg_type, f'{name}/{topic}', RELIABLE)
                for kind, msg_type, topic in (('detections', Detection3DArray, 'detections'),
                                              ('obstacles', ObstacleArray, 'obstacles'),
                                              ('markers', MarkerArray, 'track_markers'))}
    assert peer.spin_until(lambda: all(pub.get_subscription_count() for pub in (
        publisher.detections_pub, publisher.obstacles_pub, publisher.markers_pub)), 30)
    tracks = [track(4), track(123456)]
    publisher.publish(output(10, tracks), MAP)
    publisher.raw_kinds = frozenset()  # as on a ROS whose layouts differ
    publisher.publish(output(10, tracks), MAP)
    assert peer.spin_until(lambda: all(len(msgs) == 2 for msgs in received.values()), 30)
    for kind, (as_bytes, as_message) in received.items():
        assert as_bytes == as_message, kind
    assert [d.id for d in received['detections'][0].detections] == ['4', '123456']
    assert len(received['markers'][0].markers) == 7
    publisher.destroy()


class _NoBytes:
    """A publisher whose ``publish`` refuses bytes (an rclpy without serialised publishing)."""

    def __init__(self, real) -> None:
        self.real = real
        self.topic_name = real.topic_name
        self.refused = 0

    def get_subscription_count(self) -> int:
        return self.real.get_subscription_count()

    def publish(self, msg) -> None:
        if isinstance(msg, bytes):
            self.refused += 1
            raise TypeError('Expected MarkerArray, got bytes')
        self.real.publish(msg)


def test_a_publisher_refusing_bytes_gets_messages_and_nothing_is_lost(peer):
    publisher = pp.PerceptionPublisher(peer.node, PerceptionTopicParams(), PerceptionConfig())
    name = peer.node.get_fully_qualified_name()
    markers = peer.collect(MarkerArray, f'{name}/track_markers', RELIABLE)
    obstacles = peer.collect(ObstacleArray, f'{name}/obstacles', RELIABLE)
    assert peer.spin_until(lambda: publisher.markers_pub.get_subscription_count()
                           and publisher.obstacles_pub.get_subscription_count(), 30)
    refusing = publisher.markers_pub = _NoBytes(publisher.markers_pub)
    for stamp in (1, 2):
        publisher.publish(output(stamp, [track(5)]), MAP)
    assert peer.spin_until(lambda: len(markers) == 2 and len(obstacles) == 2, 30)
    assert refusing.refused == 1  # tried once, then messages
    assert publisher.raw_kinds == {'detections', 'obstacles'}
    assert [[m.id for m in msg.markers] for msg in markers] == [[0, 15, 16, 17]] * 2
    publisher.destroy()
