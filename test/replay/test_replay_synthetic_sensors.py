# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The synthetic bag's metric-scale topics: sensor depth, noisy odometry TF, camera mount."""

import numpy as np
import pytest

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay.synthetic import BASE_FRAME
from vggt4d_ros.replay.synthetic import base_from_camera
from vggt4d_ros.replay.synthetic import CAMERA_FRAME
from vggt4d_ros.replay.synthetic import CAMERA_HEIGHT_M
from vggt4d_ros.replay.synthetic import METRIC_TOPICS
from vggt4d_ros.replay.synthetic import ODOM_FRAME
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SensorConfig
from vggt4d_ros.replay.synthetic import SyntheticScene
from vggt4d_ros.replay.synthetic import TOPICS
from vggt4d_ros.replay.synthetic import write_synthetic_bag

CONFIG = SceneConfig(num_frames=12, width=80, height=60, supersample=1)


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    return write_synthetic_bag(tmp_path_factory.mktemp('metric') / 'bag', CONFIG,
                               sensors=SensorConfig())


def test_sensor_depth_is_millimetres_with_noise_holes_and_range(bag):
    rendered = list(SyntheticScene(CONFIG).frames())
    with BagReader(bag) as reader:
        assert reader.pick_image_topic() == TOPICS['image']  # depth is never the camera
        depths = list(reader.messages(METRIC_TOPICS['depth']))
    assert len(depths) == CONFIG.num_frames
    for (_, msg), truth in zip(depths, rendered):
        assert msg.encoding == '16UC1' and msg.header.frame_id == CAMERA_FRAME
        assert m.stamp_ns_of(msg.header) == truth.stamp_ns
        millimetres = m.image_to_array(msg)
        valid = millimetres > 0
        assert 0.05 < 1.0 - valid.mean() < 0.5  # random holes plus depth edges
        relative = millimetres[valid] / 1000.0 / truth.depth[valid] - 1.0
        assert abs(np.median(relative)) < 0.005  # unbiased
        assert 0.002 < np.std(relative) < 0.05  # noisy, more so far away
        assert millimetres.max() <= 6000


def test_odometry_tf_follows_the_camera_mount_with_drift(bag):
    scene = SyntheticScene(CONFIG)
    with BagReader(bag) as reader:
        static = [msg for _, msg in reader.messages(METRIC_TOPICS['tf_static'])]
        odometry = [msg.transforms[0] for _, msg in reader.messages(METRIC_TOPICS['tf'])]
    mount = static[0].transforms[0]
    assert (mount.header.frame_id, mount.child_frame_id) == (BASE_FRAME, CAMERA_FRAME)
    assert mount.transform.translation.z == pytest.approx(CAMERA_HEIGHT_M)
    assert all((t.header.frame_id, t.child_frame_id) == (ODOM_FRAME, BASE_FRAME)
               for t in odometry)
    assert len(odometry) == 5 * CONFIG.num_frames
    stamps = [m.stamp_ns_of(t.header) for t in odometry]
    assert np.all(np.diff(stamps) > 0)
    # Camera travel from odometry (through the mount) vs the true camera path.
    per_frame = odometry[::5]
    cameras = [m.transform_to_matrix(t.transform) @ base_from_camera() for t in per_frame]
    travel = sum(np.linalg.norm(b[:3, 3] - a[:3, 3]) for a, b in zip(cameras, cameras[1:]))
    truth = [scene.world_from_camera(i) for i in range(CONFIG.num_frames)]
    true_travel = sum(np.linalg.norm(b[:3, 3] - a[:3, 3]) for a, b in zip(truth, truth[1:]))
    assert travel == pytest.approx(true_travel, rel=0.05)
    assert np.allclose(cameras[0], truth[0], atol=1e-6)  # odometry starts at the true pose


def test_scale_inputs_read_back_from_the_bag(bag):
    from vggt4d_ros.replay.scale_inputs import read_depth_images
    from vggt4d_ros.replay.scale_inputs import read_odometry
    from vggt4d_ros.replay.scale_inputs import read_static_transform
    from vggt4d_ros.runtime.scale.depth import depth_in_metres

    scene = SyntheticScene(CONFIG)
    with BagReader(bag) as reader:
        depths = read_depth_images(reader, METRIC_TOPICS['depth'])
        odometry = read_odometry(reader, METRIC_TOPICS['tf'], ODOM_FRAME, BASE_FRAME)
        mount = read_static_transform(reader, BASE_FRAME, CAMERA_FRAME)
        assert read_static_transform(reader, 'map', 'odom') is None
    np.testing.assert_allclose(mount, base_from_camera(), atol=1e-9)
    assert [d.stamp_ns for d in depths] == [CONFIG.stamp_ns(i) for i in range(12)]
    assert np.nanmax(depth_in_metres(depths[0])) <= 6.0
    assert len(odometry) == 60 and odometry.stats['jump'] == 0
    pose, reason = odometry.lookup(CONFIG.stamp_ns(0))
    assert reason == ''
    np.testing.assert_allclose(pose @ mount, scene.world_from_camera(0), atol=1e-6)
