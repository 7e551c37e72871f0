# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node's planner outputs over real Fast DDS (issue 15).

The node runs in a subprocess with the oracle backend over the synthetic scene
(test/ros/oracle_backends.py: exact ground truth at scale 1, so map units are the scene's
metres); this process is the peer. Every new topic is checked for its type (and the type hash
of the generated packages on the wire), stamps (image stamps), frame ids, QoS (the latched
static grid reaches a late subscriber) and decoded content.
"""

from __future__ import annotations

from collections import Counter
import importlib.util
import uuid

import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('vision_msgs.msg')
pytest.importorskip('nav2_dynamic_msgs.msg')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav2_dynamic_msgs.msg import ObstacleArray  # noqa: E402
from nav_msgs.msg import OccupancyGrid  # noqa: E402
from oracle_backends import distance_to_objects  # noqa: E402
from oracle_backends import HEIGHT  # noqa: E402
from oracle_backends import objects_at  # noqa: E402
from oracle_backends import SCENE  # noqa: E402
from oracle_backends import WIDTH  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from test_ros_generated_msgs import EXPECTED as TYPE_HASHES  # noqa: E402
from vision_msgs.msg import Detection3DArray  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from vggt4d_ros.perception.message_content import track_uuid  # noqa: E402
from vggt4d_ros.ros.conversions import stamp_to_ns  # noqa: E402
from vggt4d_ros.ros.frames import pose_from_xyz_quat  # noqa: E402
from vggt4d_ros.ros.outputs import header_at  # noqa: E402
from vggt4d_ros.ros.perception_msgs import dynamic_cloud_to_numpy  # noqa: E402

RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: Every frame a keyframe, windows of 4 frames advancing by 2; grids after every window.
PARAMS = {
    'mode': 'replay', 'warmup': False,
    'window.window_size': 4, 'window.stride': 2, 'window.max_queued_frames': 4,
    'window.min_parallax_px': 0.0, 'window.max_keyframe_interval_s': 0.0,
    'mapper.min_align_points': 20, 'grid_period_s': 0.0,
    # The scene's floor is 1.45 m below the first camera (which looks 0.29 rad down: the
    # band is only roughly levelled, enough for the plumbing checks here).
    'perception.grid.ground_z': -1.45, 'perception.grid.min_height': 0.1,
    'perception.grid.max_height': 1.2,
}
FRAMES = 40


def image_msg(index: int, stamp_ns: int | None = None) -> Image:
    """A grey frame of the oracle's size (the oracle ignores pixels)."""
    stamp_ns = SCENE.stamp_ns(index) if stamp_ns is None else stamp_ns
    return Image(header=header_at(stamp_ns, 'camera_optical_frame'), height=HEIGHT,
                 width=WIDTH, encoding='rgb8', step=WIDTH * 3,
                 data=bytes(HEIGHT * WIDTH * 3))


def stamps_of(messages) -> list[int]:
    return [stamp_to_ns(msg.header.stamp) for msg in messages]


class Outputs:
    """The peer's subscriptions to every planner output (plus masks)."""

    def __init__(self, peer) -> None:
        self.masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
        self.clouds = peer.collect(PointCloud2, '/vggt4d/dynamic_cloud', RELIABLE)
        self.static = peer.collect(OccupancyGrid, '/vggt4d/static_grid', LATCHED)
        self.dynamic = peer.collect(OccupancyGrid, '/vggt4d/dynamic_grid', RELIABLE)
        self.combined = peer.collect(OccupancyGrid, '/vggt4d/combined_grid', RELIABLE)
        self.detections = peer.collect(Detection3DArray, '/vggt4d/detections', RELIABLE)
        self.obstacles = peer.collect(ObstacleArray, '/vggt4d/obstacles', RELIABLE)
        self.markers = peer.collect(MarkerArray, '/vggt4d/track_markers', RELIABLE)

    def windows(self) -> int:
        return min(len(self.detections), len(self.obstacles), len(self.markers),
                   len(self.combined))


def send(peer, node, frames) -> None:
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(publisher), node.log()
    for msg in frames:
        publisher.publish(msg)


def stop_cleanly(node) -> None:
    code = node.stop()
    log = node.log()
    assert code == 0, log
    assert 'Traceback' not in log, log


def test_planner_outputs_of_a_moving_scene(peer, start_node):
    node = start_node({'backend_factory': 'oracle_backends:make_moving', **PARAMS})
    out = Outputs(peer)
    sent = [image_msg(i) for i in range(FRAMES)]
    send(peer, node, sent)
    # Replay mode: every frame but the last window's pending ones is processed.
    processed = FRAMES - 2
    assert peer.spin_until(lambda: len(out.clouds) >= processed
                           and out.windows() >= processed // 2 - 1, 240), node.log()
    sent_stamps = stamps_of(sent)

    # Types on the wire: the generated packages' hashes are the published ones.
    for topic, name in (('/vggt4d/detections', 'vision_msgs/msg/Detection3DArray'),
                        ('/vggt4d/obstacles', 'nav2_dynamic_msgs/msg/ObstacleArray')):
        info = peer.node.get_publishers_info_by_topic(topic)
        assert [i.topic_type for i in info] == [name]
        if getattr(info[0], 'topic_type_hash', None) is not None:
            assert str(info[0].topic_type_hash) == TYPE_HASHES[name]
    # QoS: the static grid is latched, the rest volatile.
    durability = {topic: peer.node.get_publishers_info_by_topic(topic)[0].qos_profile.durability
                  for topic in ('/vggt4d/static_grid', '/vggt4d/combined_grid',
                                '/vggt4d/dynamic_cloud')}
    assert durability == {'/vggt4d/static_grid': DurabilityPolicy.TRANSIENT_LOCAL,
                          '/vggt4d/combined_grid': DurabilityPolicy.VOLATILE,
                          '/vggt4d/dynamic_cloud': DurabilityPolicy.VOLATILE}

    # Dynamic cloud: one per processed frame, its image's stamp, in the world frame; the
    # points lie on the moving objects; object ids are confirmed track ids.
    assert stamps_of(out.clouds) == stamps_of(out.masks)[:len(out.clouds)]
    assert stamps_of(out.clouds) == sent_stamps[:len(out.clouds)]
    near, total, cloud_ids = 0, 0, set()
    for msg in out.clouds:
        assert msg.header.frame_id == 'map'
        assert [f.name for f in msg.fields] == ['x', 'y', 'z', 'rgb', 'object_id']
        points, rgb, ids = dynamic_cloud_to_numpy(msg)
        assert len(points) > 20  # the ball or the crate is always in view
        near += int((distance_to_objects(points, stamp_to_ns(msg.header.stamp)) < 0.06).sum())
        total += len(points)
        cloud_ids |= set(ids.tolist())
    assert near >= 0.95 * total, near / total

    # Detections, obstacles, markers: one message per window at a processed frame's stamp.
    for messages in (out.detections, out.obstacles, out.markers):
        stamps = [stamp_to_ns(m.header.stamp) if hasattr(m, 'header')
                  else stamp_to_ns(m.markers[0].header.stamp) for m in messages]
        assert set(stamps) <= set(sent_stamps) and stamps == sorted(stamps)
    assert {m.header.frame_id for m in out.detections + out.obstacles} == {'map'}
    assert stamps_of(out.detections) == stamps_of(out.obstacles)
    # Ids: both objects tracked, few ids over the run (no id churn), the same ids in
    # detections, obstacles (uuid5 of the id), markers and the cloud.
    ids = Counter(d.id for m in out.detections for d in m.detections)
    assert 2 <= len(ids) <= 3, ids
    assert sum(count >= len(out.detections) // 2 for count in ids.values()) >= 2, ids
    assert {int(i) for i in ids} <= cloud_ids - {0}
    for detections, obstacles, markers in zip(out.detections, out.obstacles, out.markers):
        track_ids = [int(d.id) for d in detections.detections]
        assert [uuid.UUID(bytes=bytes(o.uuid.uuid)) for o in obstacles.obstacles] == [
            uuid.UUID(bytes=track_uuid(i)) for i in track_ids]
        assert markers.markers[0].action == Marker.DELETEALL
        texts = [m.text for m in markers.markers if m.type == Marker.TEXT_VIEW_FACING]
        assert texts == [str(i) for i in track_ids]
        assert all(d.bbox.size.x > 0 and d.results[0].hypothesis.class_id == 'dynamic'
                   for d in detections.detections)
    # Obstacles: each one near a moving object (both move at about 1 m/s); velocities are
    # not zero.
    late = out.obstacles[len(out.obstacles) // 2:]
    for msg in late:
        truth = objects_at(stamp_to_ns(msg.header.stamp))
        speeds = []
        for obstacle in msg.obstacles:
            position = np.array([obstacle.position.x, obstacle.position.y, obstacle.position.z])
            speeds.append(np.linalg.norm([obstacle.velocity.x, obstacle.velocity.y,
                                          obstacle.velocity.z]))
            nearest = min(truth, key=lambda o: np.linalg.norm(o.centre - position))
            assert np.linalg.norm(nearest.centre - position) < 0.5
            assert obstacle.size.x > 0 and obstacle.size.z > 0
        assert max(speeds, default=0.0) > 0.3, speeds

    # Grids: stamped with processed frames, in the world frame, consistent metadata.
    for grids in (out.static, out.dynamic, out.combined):
        assert set(stamps_of(grids)) <= set(sent_stamps)
        for grid in grids:
            assert grid.header.frame_id == 'map'
            assert (grid.info.width, grid.info.height) == (200, 200)
            assert grid.info.resolution == pytest.approx(0.05)
            assert grid.info.origin.position.z == pytest.approx(-1.45)
            cells = np.asarray(grid.data, np.int8)
            assert len(cells) == 200 * 200 and set(np.unique(cells)) <= {-1, 0, 100}
    last = {name: np.asarray(grids[-1].data, np.int8)
            for name, grids in (('static', out.static), ('dynamic', out.dynamic),
                                ('combined', out.combined))}
    assert (last['dynamic'] == 100).sum() > 0 and (last['static'] >= 0).sum() > 1000
    combined_occupied = (last['static'] == 100) | (last['dynamic'] == 100)
    assert np.array_equal(last['combined'] == 100, combined_occupied)

    # The latched static grid reaches a subscriber that joins late.
    late_static: list = []
    peer.node.create_subscription(OccupancyGrid, '/vggt4d/static_grid', late_static.append,
                                  LATCHED)
    assert peer.spin_until(lambda: len(late_static) >= 1, 30), node.log()
    assert stamps_of(late_static[-1:]) == stamps_of(out.static[-1:])
    stop_cleanly(node)


def test_static_scene_gives_empty_clouds_and_no_tracks(peer, start_node):
    # A list parameter through the command line: the grid's origin.
    node = start_node({'backend_factory': 'oracle_backends:make_static', **PARAMS,
                       'perception.grid.origin_xy': [-2.0, -6.0]})
    out = Outputs(peer)
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics', RELIABLE)
    sent = [image_msg(i) for i in range(12)]
    send(peer, node, sent)
    assert peer.spin_until(lambda: len(out.clouds) >= 10 and out.windows() >= 4, 180), \
        node.log()
    assert stamps_of(out.clouds) == stamps_of(sent)[:len(out.clouds)]
    assert all(msg.width == 0 and len(msg.data) == 0 for msg in out.clouds)
    assert all(not m.detections for m in out.detections)
    assert all(not m.obstacles for m in out.obstacles)
    assert all([mk.action for mk in m.markers] == [Marker.DELETEALL] for m in out.markers)
    assert all((np.asarray(g.data, np.int8) != 100).all() for g in out.dynamic)
    assert {(g.info.origin.position.x, g.info.origin.position.y) for g in out.static} == {
        (-2.0, -6.0)}
    assert (np.asarray(out.static[-1].data, np.int8) >= 0).sum() > 1000

    def counters() -> dict[str, str]:
        if not diagnostics:
            return {}
        return {kv.key: kv.value for kv in diagnostics[-1].status[0].values}

    # Counted in /diagnostics: every frame was empty, no track was confirmed.
    assert peer.spin_until(lambda: int(counters().get('perception_frames', 0)) >= 10, 30)
    values = counters()
    assert values['perception_empty_frames'] == values['perception_frames']
    assert values['tracks_confirmed'] == '0'
    assert values['perception_detections'] == '0' and values['tracks_box_skipped'] == '0'
    stop_cleanly(node)


def test_map_reset_publishes_a_cleared_state(peer, start_node):
    """Stamps going back (a bag loop) restart the map: grids and tracks start again."""
    node = start_node({'backend_factory': 'oracle_backends:make_moving', **PARAMS})
    out = Outputs(peer)
    first = [image_msg(i) for i in range(24)]
    send(peer, node, first)
    # 24 frames: windows of frames 0-3, then every 2 frames up to 20-23: 11 windows.
    assert peer.spin_until(lambda: len(out.clouds) >= 22 and out.windows() >= 11, 180), \
        node.log()
    before_ids = {int(d.id) for m in out.detections for d in m.detections}
    known_before = int((np.asarray(out.static[-1].data, np.int8) >= 0).sum())
    counts = {name: len(getattr(out, name)) for name in ('static', 'detections', 'clouds')}
    assert before_ids
    # The stream again from its start (a bag loop): three frames confirm the new time base.
    again = [image_msg(i) for i in range(12)]
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.spin_until(lambda: publisher.get_subscription_count() > 0, 30)
    for msg in again:
        publisher.publish(msg)
    assert peer.spin_until(lambda: len(out.static) > counts['static']
                           and len(out.detections) > counts['detections'] + 2, 180), node.log()
    assert 'new map segment' in node.log() or 'reset' in node.log()
    new_stamps = set(stamps_of(again))
    after_static = out.static[counts['static']:]
    assert set(stamps_of(after_static)) <= new_stamps
    # The first grid of the new segment was built from its first window only.
    assert int((np.asarray(after_static[0].data, np.int8) >= 0).sum()) < known_before
    after = out.detections[counts['detections']:]
    assert set(stamps_of(after)) <= new_stamps
    after_ids = {int(d.id) for m in after for d in m.detections}
    assert after_ids and min(after_ids) > max(before_ids)  # new tracks, ids never reused
    stop_cleanly(node)


def test_odom_to_base_outputs_are_in_the_odom_frame(peer, start_node):
    """With tf_mode odom_to_base the core outputs in odom (base_link at the first frame)."""
    # A camera 0.3 m ahead and 1.2 m above base_link, looking forward (the usual optical rpy).
    base_to_camera = [0.3, 0.0, 1.2, -0.5, 0.5, -0.5, 0.5]
    node = start_node({'backend_factory': 'oracle_backends:make_moving', **PARAMS,
                       'tf_mode': 'odom_to_base', 'base_to_camera': base_to_camera})
    out = Outputs(peer)
    sent = [image_msg(i) for i in range(12)]
    send(peer, node, sent)
    assert peer.spin_until(lambda: len(out.clouds) >= 10 and out.windows() >= 4, 180), \
        node.log()
    extrinsic = pose_from_xyz_quat(base_to_camera)
    near, total = 0, 0
    for msg in out.clouds:
        assert msg.header.frame_id == 'odom'
        points, _, _ = dynamic_cloud_to_numpy(msg)
        distance = distance_to_objects(points, stamp_to_ns(msg.header.stamp), extrinsic)
        near, total = near + int((distance < 0.06).sum()), total + len(points)
    assert total and near >= 0.95 * total, near / max(total, 1)
    assert {m.header.frame_id for m in out.detections + out.combined} == {'odom'}
    stop_cleanly(node)


#: The node's TF back ends: the pip-only fallback everywhere (tf2_ros hidden from the node),
#: the real tf2_ros where it is installed.
TF_BACKENDS = ['fallback', pytest.param('tf2_ros', marks=pytest.mark.skipif(
    importlib.util.find_spec('tf2_ros') is None, reason='tf2_ros is not installed'))]


@pytest.mark.parametrize('tf_backend', TF_BACKENDS)
def test_obstacle_frame_from_a_tf_chain(peer, start_node, tf_backend):
    """obstacle_frame:=base_link re-expresses the tracks through map -> odom -> base_link.

    map -> odom is static (turned and shifted), odom -> base_link moves every frame; the
    node looks base_link <- map up at each window's stamp, so every obstacle lies near a
    true object once that object is moved into base_link at the same stamp.
    """
    from tf2_msgs.msg import TFMessage

    from vggt4d_ros.ros.conversions import transform_stamped

    node = start_node({'backend_factory': 'oracle_backends:make_moving', **PARAMS,
                       'obstacle_frame': 'base_link'},
                      hide_modules=('tf2_ros',) if tf_backend == 'fallback' else ())
    out = Outputs(peer)
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics', RELIABLE)
    map_from_odom = pose_from_xyz_quat([2.0, 1.0, 0.0, 0.0, 0.0, np.sin(0.25), np.cos(0.25)])

    def odom_from_base(stamp_ns: int) -> np.ndarray:
        t = (stamp_ns - SCENE.start_ns) * 1e-9
        return pose_from_xyz_quat([0.5 * t, 0.1 * t, 0.0, 0.0, 0.0,
                                   np.sin(0.1 * t), np.cos(0.1 * t)])

    latched = peer.node.create_publisher(TFMessage, '/tf_static', LATCHED)
    latched.publish(TFMessage(transforms=[transform_stamped(
        map_from_odom, header_at(SCENE.start_ns, 'map'), 'odom')]))
    tf_pub = peer.node.create_publisher(TFMessage, '/tf', QoSProfile(depth=100))
    images = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(images), node.log()
    assert peer.spin_until(lambda: tf_pub.get_subscription_count() > 0
                           and latched.get_subscription_count() > 0, 60), node.log()
    frames = 20
    motion = TFMessage(transforms=[transform_stamped(
        odom_from_base(SCENE.stamp_ns(i)), header_at(SCENE.stamp_ns(i), 'odom'), 'base_link')
        for i in range(frames)])
    # All of the motion first, a few times: this side sees the node's /tf reader before the
    # node's side has matched this writer, and a volatile message sent in between is lost.
    for _ in range(5):
        tf_pub.publish(motion)
        peer.spin_for(0.4)
    for index in range(frames):
        images.publish(image_msg(index))

    def values() -> dict[str, str]:
        return {kv.key: kv.value for kv in diagnostics[-1].status[0].values} \
            if diagnostics else {}

    # Replay mode: windows of 4 frames advancing by 2 process all but the last 2 frames.
    assert peer.spin_until(lambda: int(values().get('windows', 0)) >= frames // 2 - 2
                           and len(out.obstacles) >= frames // 2 - 4, 240), \
        (values(), node.log())
    # The object outputs and the dynamic cloud are in base_link, the grids stay in the world.
    assert {m.header.frame_id for m in out.detections + out.obstacles + out.clouds} == \
        {'base_link'}
    assert {m.header.frame_id for m in out.combined} == {'map'}
    late = out.obstacles[len(out.obstacles) // 2:]
    assert sum(len(msg.obstacles) for msg in late) >= len(late)
    for msg in late:
        stamp = stamp_to_ns(msg.header.stamp)
        base_from_map = np.linalg.inv(map_from_odom @ odom_from_base(stamp))
        for obstacle in msg.obstacles:
            position = np.array([obstacle.position.x, obstacle.position.y, obstacle.position.z])
            centres = [base_from_map[:3, :3] @ o.centre + base_from_map[:3, 3]
                       for o in objects_at(stamp)]
            assert min(np.linalg.norm(c - position) for c in centres) < 0.5
    assert values()['tf.buffer'] == tf_backend
    stop_cleanly(node)


#: Run in the node before main(): window 1's planner outputs wait for a file the test writes
#: once it has the masks of window 2 (a perception stage held up, as a slow one would be).
HOLD_FIRST_PERCEPTION = """
import os, time
from vggt4d_ros.perception import perception_tracker as _pt
_update = _pt.PerceptionTracker.update
_calls = []
def _held(self, frames):
    if frames and not _calls:
        _calls.append(1)
        deadline = time.monotonic() + 600.0
        while not os.path.exists({release!r}) and time.monotonic() < deadline:
            time.sleep(0.01)
    return _update(self, frames)
_pt.PerceptionTracker.update = _held
"""


def test_masks_of_the_next_window_go_out_while_a_window_is_in_perception(
        peer, start_node, tmp_path):
    """The output stage: window 2's masks are published while window 1's perception runs.

    Behaviour, not timing: window 1's perception is held until the test saw window 2's masks
    (4 + 2 frames); with the planner outputs on the worker that never happens.
    """
    release = tmp_path / 'release'
    node = start_node({'backend_factory': 'oracle_backends:make_moving', **PARAMS},
                      inject=HOLD_FIRST_PERCEPTION.format(release=str(release)))
    out = Outputs(peer)
    send(peer, node, [image_msg(i) for i in range(12)])
    assert peer.spin_until(lambda: len(out.masks) >= 6, 120), node.log()
    peer.spin_for(0.5)
    assert not out.clouds and not out.detections  # window 1's outputs are still held
    release.write_text('go')
    # Then everything comes, in order: window 1's planner outputs first.
    assert peer.spin_until(lambda: len(out.clouds) >= 10 and out.windows() >= 4, 120), \
        node.log()
    assert stamps_of(out.clouds) == stamps_of(out.masks)[:len(out.clouds)]
    stop_cleanly(node)
