# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The replay reads a bag's TF through the node's TF tree: chains resolve as in the node.

The synthetic bag with ``SensorConfig(chained_tf=True)`` writes the robot tree
``odom -> base_footprint -> base_link -> camera_link -> camera_optical_frame`` for the same
poses the one-edge bag writes as ``odom -> base_link`` and ``base_link -> camera_optical_frame``.
"""

from __future__ import annotations

import numpy as np
import pytest

from vggt4d_ros.geometry.rigid import pose_from_translation_quaternion
from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay.bag import BagWriter
from vggt4d_ros.replay.bag_tf import BagTf
from vggt4d_ros.replay.rig_runner import _bag_extrinsics
from vggt4d_ros.replay.scale_run import BagScaleFeed
from vggt4d_ros.replay.scale_inputs import odometry_samples
from vggt4d_ros.replay.scale_inputs import read_static_transform
from vggt4d_ros.replay.synthetic import BASE_FRAME
from vggt4d_ros.replay.synthetic import base_from_camera
from vggt4d_ros.replay.synthetic import CAMERA_FRAME
from vggt4d_ros.replay.synthetic import METRIC_TOPICS
from vggt4d_ros.replay.synthetic import ODOM_FRAME
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SensorConfig
from vggt4d_ros.replay.synthetic import write_synthetic_bag
from vggt4d_ros.runtime.scale.config import ScaleConfig
from vggt4d_ros.runtime.scale.runtime import MetricScale

CONFIG = SceneConfig(num_frames=6, width=48, height=36, supersample=1)
UNIT = (0.0, 0.0, 0.0, 1.0)


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('bag_tf')
    return {chained: write_synthetic_bag(root / f'chained_{chained}', CONFIG,
                                         sensors=SensorConfig(chained_tf=chained))
            for chained in (False, True)}


def test_the_chained_bag_has_no_direct_edges(bags):
    with BagReader(bags[True]) as reader:
        dynamic = {(t.header.frame_id, t.child_frame_id)
                   for _, msg in reader.messages(METRIC_TOPICS['tf']) for t in msg.transforms}
        static = {(t.header.frame_id, t.child_frame_id)
                  for _, msg in reader.messages(METRIC_TOPICS['tf_static'])
                  for t in msg.transforms}
    assert dynamic == {(ODOM_FRAME, 'base_footprint')}
    assert static == {('base_footprint', BASE_FRAME), (BASE_FRAME, 'camera_link'),
                      ('camera_link', CAMERA_FRAME)}


def test_static_chain_resolves_to_the_one_edge_mount(bags):
    for bag in bags.values():
        with BagReader(bag) as reader:
            mount = read_static_transform(reader, BASE_FRAME, CAMERA_FRAME)
            assert read_static_transform(reader, 'map', ODOM_FRAME) is None
        np.testing.assert_allclose(mount, base_from_camera(), rtol=0, atol=1e-9)


def test_chained_odometry_gives_the_one_edge_poses(bags):
    found = {}
    for chained, bag in bags.items():
        with BagReader(bag) as reader:
            found[chained] = odometry_samples(reader, METRIC_TOPICS['tf'], ODOM_FRAME,
                                              BASE_FRAME)
    assert len(found[False]) == len(found[True]) == 5 * CONFIG.num_frames
    for (stamp, pose), (chained_stamp, chained_pose) in zip(found[False], found[True]):
        assert stamp == chained_stamp
        np.testing.assert_allclose(chained_pose, pose, rtol=0, atol=1e-9)


def test_bag_tf_interpolates_a_chain_between_samples(bags):
    """Between two odometry samples the lookup interpolates, as tf2 does, and waits beyond."""
    with BagReader(bags[False]) as reader:
        samples = odometry_samples(reader, METRIC_TOPICS['tf'], ODOM_FRAME, BASE_FRAME)
    (first, pose_a), (second, pose_b) = samples[0], samples[1]
    middle = (first + second) // 2
    found = {}
    for chained, bag in bags.items():
        with BagReader(bag) as reader:
            tf = BagTf(reader)
        tf.advance(second)
        found[chained] = tf.lookup(ODOM_FRAME, CAMERA_FRAME, middle)
        assert tf.find(ODOM_FRAME, BASE_FRAME, samples[2][0]) is None  # not fed yet
        tf.advance(samples[2][0])
        assert tf.find(ODOM_FRAME, BASE_FRAME, samples[2][0]) is not None
    # One edge: base_link's translation is the mean of its two samples.
    base = found[False] @ np.linalg.inv(base_from_camera())
    np.testing.assert_allclose(base[:3, 3], 0.5 * (pose_a[:3, 3] + pose_b[:3, 3]), atol=1e-9)
    # Chained: tf2 interpolates odom -> base_footprint, so base_link 0.1 m above it moves on
    # the rotated arc: the same pose within the small rotation between the samples.
    np.testing.assert_allclose(found[True], found[False], atol=1e-4)


def test_stamp_lookup_gives_the_pose_or_the_failure_kind(bags):
    """The form the node's pending-stamp rule takes (runtime/scale/tf_stamps.py)."""
    with BagReader(bags[True]) as reader:
        tf = BagTf(reader)
        samples = odometry_samples(reader, METRIC_TOPICS['tf'], ODOM_FRAME, BASE_FRAME)
    lookup = tf.stamp_lookup(ODOM_FRAME, BASE_FRAME)
    assert lookup(samples[0][0]) == (None, 'unknown_frame')  # no /tf fed yet
    tf.advance(samples[1][0])
    pose, kind = lookup(samples[1][0])
    assert kind == ''
    np.testing.assert_allclose(pose, samples[1][1], rtol=0, atol=1e-9)
    assert lookup(samples[2][0]) == (None, 'future')
    assert tf.stamp_lookup('map', BASE_FRAME)(samples[1][0]) == (None, 'unknown_frame')


def test_rig_extrinsics_resolve_chains_from_tf_static_and_tf(tmp_path):
    """base_link -> camera_link -> left/right optical (static), plus one link on /tf."""
    rotated = (0.0, 0.0, np.sin(0.25), np.cos(0.25))
    with BagWriter(tmp_path / 'rig', 'mcap') as bag:
        bag.write('/tf_static', m.TF_MESSAGE, m.tf_message([
            _transform('base_link', 'camera_link', 5, (0.2, 0.0, 1.0), rotated),
            _transform('camera_link', 'left_optical', 5, (0.0, 0.05, 0.0), UNIT)]), 5)
        for stamp in (10, 20):
            bag.write('/tf', m.TF_MESSAGE, m.tf_message([
                _transform('camera_link', 'right_optical', stamp, (0.0, -0.05, 0.0), UNIT)]),
                stamp)
    with BagReader(tmp_path / 'rig') as reader:
        found = _bag_extrinsics(reader, 'base_link', ['left_optical', 'right_optical'], 20)
        assert _bag_extrinsics(reader, 'base_link', ['left_optical', 'right_optical'],
                               5) is None  # /tf's link not there yet
        assert _bag_extrinsics(reader, 'base_link', ['left_optical', 'absent'], 20) is None
    angle = 0.5
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0],
                         [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    for pose, offset in zip(found, (0.05, -0.05)):
        np.testing.assert_allclose(pose[:3, :3], rotation, atol=1e-12)
        np.testing.assert_allclose(pose[:3, 3], [0.2, 0.0, 1.0] + rotation @ [0.0, offset, 0.0],
                                   atol=1e-12)


def _transform(parent: str, child: str, stamp: int, translation, rotation):
    pose = pose_from_translation_quaternion(list(translation), list(rotation))
    return m.transform_stamped_msg(pose, stamp, parent, child)


def test_scale_feed_waits_for_a_mount_with_a_dynamic_link(tmp_path):
    """As the node: the extrinsic is looked up again at each image until TF has it."""
    second = 10**9
    with BagWriter(tmp_path / 'pan', 'mcap') as bag:
        bag.write('/tf_static', m.TF_MESSAGE, m.tf_message([
            _transform('camera_link', 'optical', 0, (0.0, 0.0, 0.1), UNIT)]), 0)
        bag.write('/tf', m.TF_MESSAGE, m.tf_message([  # the pan unit, first seen at 2 s
            _transform('base_link', 'camera_link', 2 * second, (0.0, 0.0, 1.2), UNIT)]),
            2 * second)
    metric = MetricScale(ScaleConfig(source='camera_height'))
    with BagReader(tmp_path / 'pan') as reader:
        feed = BagScaleFeed(reader, metric, {})
    feed.before_image(second, 'optical')  # TF fed up to 1.5 s: no link yet
    assert feed.extrinsic_from == 'none' and metric._base_from_camera is None
    feed.before_image(2 * second, 'optical')
    assert feed.extrinsic_from == 'tf base_link -> optical'
    np.testing.assert_allclose(metric._base_from_camera[:3, 3], [0.0, 0.0, 1.3], atol=1e-12)
    with BagReader(tmp_path / 'pan') as reader:  # a parameter is taken when TF has nothing
        feed = BagScaleFeed(reader, MetricScale(ScaleConfig(source='camera_height')),
                            {'base_to_camera': [0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 1.0]})
    feed.before_image(second, 'optical')
    assert feed.extrinsic_from == 'parameter base_to_camera'
