# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Metric scale in the node over real DDS: depth / odometry topics make the outputs metres.

The node runs the synthetic scene's oracle (test/ros/scale_backends.py: real geometry, a random
scale per window); this process publishes the same scene's images with its simulated sensors
(16UC1 depth with noise and holes, a noisy odom -> base_link TF, the camera mount on
/tf_static) from a bag written by ``replay/synthetic.py``, and checks the node's outputs against
the scene's ground truth in metres.
"""

from __future__ import annotations

import importlib.util
from typing import Callable

import numpy as np
import pytest

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from scale_backends import SCENE  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from vggt4d_ros.replay import messages as m  # noqa: E402
from vggt4d_ros.replay.bag import BagReader  # noqa: E402
from vggt4d_ros.replay.synthetic import METRIC_TOPICS  # noqa: E402
from vggt4d_ros.replay.synthetic import SensorConfig  # noqa: E402
from vggt4d_ros.replay.synthetic import SyntheticScene  # noqa: E402
from vggt4d_ros.replay.synthetic import TOPICS  # noqa: E402
from vggt4d_ros.replay.synthetic import write_synthetic_bag  # noqa: E402
from vggt4d_ros.ros.conversions import cloud_to_numpy  # noqa: E402
from vggt4d_ros.ros.conversions import stamp_to_ns  # noqa: E402
from vggt4d_ros.ros.conversions import transform_stamped  # noqa: E402
from vggt4d_ros.geometry.rigid import invert_rigid  # noqa: E402
from vggt4d_ros.ros.frames import homogeneous  # noqa: E402
from vggt4d_ros.ros.frames import R_BODY_FROM_OPTICAL  # noqa: E402
from vggt4d_ros.ros.outputs import header_at  # noqa: E402

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
DEPTH_TOPIC = METRIC_TOPICS['depth']
#: Windows of 4 frames advancing by 2, every frame a keyframe; a map dense enough to find the
#: walls (every 2nd pixel, 10 cm voxels: metres once the scale is known).
PARAMS = {
    'backend_factory': 'scale_backends:make_synthetic_oracle', 'mode': 'replay',
    'warmup': False, 'window.window_size': 4, 'window.stride': 2,
    'window.min_parallax_px': 0.0, 'window.max_keyframe_interval_s': 0.0,
    'mapper.min_align_points': 20, 'mapper.pixel_stride': 2,
    'mapper.voxel.voxel_size': 0.1, 'map_period_s': 0.0, 'depth_topic': DEPTH_TOPIC,
}


@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
    """The scene's images and depth images as ROS messages, and its ground-truth poses."""
    bag = write_synthetic_bag(tmp_path_factory.mktemp('scale') / 'bag', SCENE,
                              sensors=SensorConfig())
    with BagReader(bag) as reader:
        images = [Image(header=header_at(f.stamp_ns, f.frame_id), height=f.rgb.shape[0],
                        width=f.rgb.shape[1], encoding='rgb8', step=f.rgb.shape[1] * 3,
                        data=f.rgb.tobytes()) for f in reader.images(TOPICS['image'])]
        depths = [Image(header=header_at(m.stamp_ns_of(d.header), d.header.frame_id),
                        height=d.height, width=d.width, encoding=d.encoding,
                        is_bigendian=bool(d.is_bigendian), step=d.step, data=bytes(d.data))
                  for _, d in reader.messages(DEPTH_TOPIC)]
    scene = SyntheticScene(SCENE)
    truth = np.stack([scene.world_from_camera(i) for i in range(SCENE.num_frames)])
    return images, depths, truth


def _values(diagnostics: list) -> dict[str, str]:
    return {kv.key: kv.value for kv in diagnostics[-1].status[0].values} if diagnostics else {}


def _run(peer, node, images: list, depths: list | None, wanted_windows: int,
         before_image: Callable[[Image], None] = lambda image: None):
    """Publish depth (if any) then image per frame; wait for every pose and the diagnostics."""
    odometry = peer.collect(Odometry, '/vggt4d/odometry', RELIABLE)
    maps = peer.collect(PointCloud2, '/vggt4d/static_map', LATCHED)
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics', QoSProfile(depth=10))
    image_pub = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    depth_pub = peer.node.create_publisher(Image, DEPTH_TOPIC, RELIABLE)
    assert peer.wait_for_subscriber(image_pub), node.log()
    if depths is not None:
        assert peer.spin_until(lambda: depth_pub.get_subscription_count() > 0, 60), node.log()
    for index, image in enumerate(images):
        if depths is not None:
            depth_pub.publish(depths[index])
        before_image(image)
        image_pub.publish(image)
    last = stamp_to_ns(images[-1].header.stamp)

    def done() -> bool:
        return (len(odometry) >= len(images)
                and int(_values(diagnostics).get('windows', 0)) >= wanted_windows
                and bool(maps) and stamp_to_ns(maps[-1].header.stamp) == last)

    assert peer.spin_until(done, 120), node.log()
    return odometry, maps, _values(diagnostics)


def test_depth_topic_puts_the_wall_at_its_true_distance_in_metres(peer, start_node,
                                                                  recorded):
    images, depths, truth = recorded
    node = start_node({**PARAMS, 'scale.source': 'depth'})
    odometry, maps, values = _run(peer, node, images, depths, wanted_windows=7)
    assert values['units'] == 'metres', values
    # message_filters pairs on a ROS install (the node sees this process's PYTHONPATH).
    pairing = 'runtime.sync' if importlib.util.find_spec('message_filters') is None \
        else 'message_filters'
    assert values['scale.source'] == 'depth' and values['scale.pairing'] == pairing
    assert values['scale.unpaired_images'] == '0' and values['scale.outcome.used'] == '7'

    _assert_walls_where_they_are(maps[-1], truth)
    _assert_metric_travel(odometry, images, truth)
    node.stop()
    assert 'Traceback' not in node.log()


def _assert_walls_where_they_are(cloud: PointCloud2, truth: np.ndarray) -> None:
    """Static map (map_to_camera) back in the scene's world through the first true pose.

    The walls of the 8 x 8 m room (x or y = +-4 m, away from floor and ceiling) must be where
    they are, and the first camera must see them at their true distance.
    """
    points, _ = cloud_to_numpy(cloud)
    optical = points.astype(np.float64) @ R_BODY_FROM_OPTICAL  # body -> optical axes
    world = optical @ truth[0, :3, :3].T + truth[0, :3, 3]
    reach = np.abs(world[:, :2]).max(axis=1)
    wall = (reach > 3.3) & (world[:, 2] > 0.2) & (world[:, 2] < 2.8)
    assert wall.sum() > 200, wall.sum()
    assert abs(np.median(reach[wall]) - 4.0) < 0.05 * 4.0, np.median(reach[wall])
    # ... and the first camera sees them at their true distance.
    ranges = np.linalg.norm(optical[wall], axis=1)
    true_ranges = np.linalg.norm(world[wall] - truth[0, :3, 3], axis=1)
    assert np.allclose(np.median(ranges), np.median(true_ranges), rtol=0.01)


def _assert_metric_travel(odometry: list, images: list, truth: np.ndarray) -> None:
    """Odometry (TF comes from the same poses) in metres: the camera travels what it truly does."""
    assert [stamp_to_ns(o.header.stamp) for o in odometry] == \
        [stamp_to_ns(i.header.stamp) for i in images]
    positions = np.array([[o.pose.pose.position.x, o.pose.pose.position.y,
                           o.pose.pose.position.z] for o in odometry])
    travelled = np.linalg.norm(positions - positions[0], axis=1)[1:]
    true_travel = np.linalg.norm(truth[:, :3, 3] - truth[0, :3, 3], axis=1)[1:]
    assert np.allclose(travelled, true_travel, rtol=0.05), (travelled, true_travel)


def _bad_depth(msg: Image, kind: str) -> Image:
    """A copy of ``msg`` broken as ``kind`` says (same stamp)."""
    header, height, width = msg.header, msg.height, msg.width
    if kind == 'wrong_size':
        half = np.zeros((height // 2, width // 2), np.uint16) + 2000
        return Image(header=header, height=height // 2, width=width // 2, encoding='16UC1',
                     step=width, data=half.tobytes())
    if kind == 'wrong_encoding':
        return Image(header=header, height=height, width=width, encoding='rgb8',
                     step=width * 3, data=bytes(height * width * 3))
    if kind == 'all_invalid':
        return Image(header=header, height=height, width=width, encoding='16UC1',
                     step=width * 2, data=bytes(height * width * 2))
    assert kind == 'truncated'
    return Image(header=header, height=height, width=width, encoding='16UC1',
                 step=width * 2, data=bytes(10))


def test_bad_depth_is_counted_and_the_node_keeps_publishing(peer, start_node, recorded):
    images, depths, _ = recorded
    kinds = ['wrong_size', 'wrong_encoding', 'all_invalid', 'truncated']
    # Frames 0-7 get broken depth (two of each kind), the rest good depth.
    broken = [_bad_depth(d, kinds[i // 2]) if i < 8 else d for i, d in enumerate(depths)]
    node = start_node({**PARAMS, 'scale.source': 'depth'})
    odometry, _, values = _run(peer, node, images, broken, wanted_windows=7)
    assert len(odometry) == len(images)  # every frame still published
    assert values['scale.depth_received'] == str(len(images))
    assert values['scale.depth_wrong_encoding'] == '2'
    assert values['scale.depth_decode_error'] == '2'
    frames = {k.rsplit('.', 1)[1]: int(v) for k, v in values.items()
              if k.startswith('scale.frame_outcome.')}
    # Per frame of each window (overlap frames count twice): every bad kind was seen.
    for reason in ('wrong_size', 'wrong_encoding', 'all_invalid', 'wrong_shape', 'used'):
        assert frames.get(reason, 0) > 0, values
    assert int(values['scale.windows_without_estimate']) >= 3, values
    assert values['units'] == 'metres'  # the good frames made it metric
    log = node.log()
    assert 'not usable (wrong_encoding' in log and 'Traceback' not in log
    node.stop()


def _tf_messages(bag_messages) -> list[tuple[int, TFMessage]]:
    """(stamp, rclpy TFMessage) of a bag's TF messages."""
    converted = []
    for _, msg in bag_messages:
        transforms = [transform_stamped(m.transform_to_matrix(t.transform),
                                        header_at(m.stamp_ns_of(t.header), t.header.frame_id),
                                        t.child_frame_id) for t in msg.transforms]
        converted.append((stamp_to_ns(transforms[0].header.stamp),
                          TFMessage(transforms=transforms)))
    return converted


def _odometry_msg(msg: TFMessage) -> Odometry:
    """The odom -> base_link transform of ``msg`` as nav_msgs/Odometry."""
    transform = msg.transforms[0]
    t, q = transform.transform.translation, transform.transform.rotation
    odometry = Odometry(header=transform.header, child_frame_id=transform.child_frame_id)
    position = odometry.pose.pose.position
    position.x, position.y, position.z = t.x, t.y, t.z
    odometry.pose.pose.orientation = q
    return odometry


def _chained_mount(mount: TFMessage) -> TFMessage:
    """The one-edge base_link -> optical mount as base_link -> camera_link -> optical frame."""
    edge = mount.transforms[0]
    base_from_optical = m.transform_to_matrix(edge.transform)
    link_from_optical = homogeneous(R_BODY_FROM_OPTICAL, np.array([0.0, 0.03, 0.0]))
    header = header_at(stamp_to_ns(edge.header.stamp), edge.header.frame_id)
    return TFMessage(transforms=[
        transform_stamped(base_from_optical @ invert_rigid(link_from_optical), header,
                          'camera_link'),
        transform_stamped(link_from_optical, header_at(stamp_to_ns(edge.header.stamp),
                                                       'camera_link'), edge.child_frame_id)])


#: (odometry source, the mount as one TF edge or a chain, the node's TF back end): CI has
#: the pip-only fallback; a ROS install runs the chain through the real tf2_ros too.
ODOMETRY_CASES = [
    ('tf', 'chained', 'fallback'), ('topic', 'one_edge', 'fallback'),
    pytest.param('tf', 'chained', 'tf2_ros', marks=pytest.mark.skipif(
        importlib.util.find_spec('tf2_ros') is None, reason='tf2_ros is not installed'))]


@pytest.mark.parametrize(('odometry_source', 'mount_edges', 'tf_backend'), ODOMETRY_CASES)
def test_odometry_and_mount_on_tf_make_the_outputs_metric(peer, start_node, recorded,
                                                          tmp_path, odometry_source,
                                                          mount_edges, tf_backend):
    """odom -> base_link at the image stamps and the camera mount from TF give metres.

    ``chained``: the mount is base_link -> camera_link -> camera_optical_frame (two static
    edges); the node resolves the chain and interpolates odom -> base_link at each stamp.
    """
    images, _, truth = recorded
    bag = write_synthetic_bag(tmp_path / 'bag', SCENE, sensors=SensorConfig())
    with BagReader(bag) as reader:
        odom = _tf_messages(reader.messages(METRIC_TOPICS['tf']))
        mount = _tf_messages(reader.messages(METRIC_TOPICS['tf_static']))[0][1]
    static_pub = peer.node.create_publisher(TFMessage, '/tf_static', QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    static_pub.publish(_chained_mount(mount) if mount_edges == 'chained' else mount)
    tf_pub = peer.node.create_publisher(TFMessage, '/tf', QoSProfile(depth=100))
    odom_pub = peer.node.create_publisher(Odometry, '/wheel/odom', RELIABLE)
    node = start_node({**PARAMS, 'scale.source': 'odometry', 'extrinsic_source': 'tf',
                       'odometry_source': odometry_source, 'odometry_topic': '/wheel/odom'},
                      hide_modules=('tf2_ros',) if tf_backend == 'fallback' else ())
    publisher = tf_pub if odometry_source == 'tf' else odom_pub
    assert peer.spin_until(lambda: publisher.get_subscription_count() > 0, 60), node.log()
    period = int(1e9 / SCENE.fps)

    def publish_odometry(image: Image) -> None:
        # The frame's odometry samples (its stamp and the next 4/5 period) before the image.
        stamp = stamp_to_ns(image.header.stamp)
        for sample_stamp, msg in odom:
            if stamp <= sample_stamp < stamp + period:
                if odometry_source == 'tf':
                    tf_pub.publish(msg)
                else:
                    odom_pub.publish(_odometry_msg(msg))

    odometry, maps, values = _run(peer, node, images, None, wanted_windows=7,
                                  before_image=publish_odometry)
    assert values['units'] == 'metres', values
    assert values['tf.buffer'] == tf_backend, values
    assert values['scale.extrinsic'] == 'camera_optical_frame', values
    assert int(values['scale.outcome.used']) >= 5, values
    # From TF: one sample per image, looked up at its stamp; from the topic: every message.
    assert int(values['scale.odometry_samples']) == \
        (len(images) if odometry_source == 'tf' else len(odom)), values
    assert values['scale.odometry_unresolved'] == '0', values
    _assert_walls_where_they_are(maps[-1], truth)
    _assert_metric_travel(odometry, images, truth)
    node.stop()
    assert 'Traceback' not in node.log()


def test_odometry_stamps_without_tf_are_counted_and_the_node_keeps_publishing(
        peer, start_node, recorded):
    images = recorded[0]
    node = start_node({**PARAMS, 'scale.source': 'odometry'})
    odometry, _, values = _run(peer, node, images, None, wanted_windows=7)
    assert len(odometry) == len(images)
    assert values['units'] == 'vggt_units'  # no odometry ever came: VGGT units, said so
    assert values['scale.outcome.no_tf'] == '7' and values['scale.odometry_samples'] == '0'
    node.stop()
    assert 'Traceback' not in node.log()


def test_odometry_scale_with_the_node_publishing_odom_is_refused(peer, start_node):
    node = start_node({**PARAMS, 'scale.source': 'odometry', 'tf_mode': 'odom_to_base'})
    assert node.wait_for_log('configure failed', 60), node.log()
    assert "the node's own output" in node.log()
    assert node.alive()
    node.stop()
