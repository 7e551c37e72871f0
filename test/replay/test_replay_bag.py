# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Bags written by the synthetic scene read back exactly (mcap and sqlite3); bad bags fail."""

from __future__ import annotations

import numpy as np
import pytest

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay.bag import BagWriter
from vggt4d_ros.replay.errors import BagError
from vggt4d_ros.replay.errors import TopicError
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticScene
from vggt4d_ros.replay.synthetic import TOPICS
from vggt4d_ros.replay.synthetic import write_synthetic_bag

SMALL = SceneConfig(num_frames=4, width=64, height=48, supersample=1)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_synthetic_bag_round_trip(tmp_path, storage):
    bag = write_synthetic_bag(tmp_path / 'bag', SMALL, storage)
    scene = SyntheticScene(SMALL)
    rendered = list(scene.frames())
    with BagReader(bag) as reader:
        assert reader.topics()[TOPICS['image']] == m.IMAGE
        assert reader.pick_image_topic() == TOPICS['image']
        frames = list(reader.images(TOPICS['image']))
        stamps, poses = reader.poses(TOPICS['pose'])
        masks = list(reader.mono_images(TOPICS['mask']))
        depths = list(reader.mono_images(TOPICS['depth']))
        info = reader.camera_info(TOPICS['camera_info'])
    assert [f.stamp_ns for f in frames] == [r.stamp_ns for r in rendered]
    assert all(f.frame_id == 'camera_optical_frame' for f in frames)
    for frame, truth, (_, mask), (_, depth) in zip(frames, rendered, masks, depths):
        np.testing.assert_array_equal(frame.rgb, truth.rgb)
        np.testing.assert_array_equal(mask, truth.dynamic_mask)
        np.testing.assert_array_equal(depth, truth.depth)
    np.testing.assert_array_equal(stamps, [r.stamp_ns for r in rendered])
    np.testing.assert_allclose(poses, [r.world_from_camera for r in rendered], atol=1e-9)
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), SMALL.intrinsics())


def test_scene_is_deterministic_and_has_moving_objects():
    first = SyntheticScene(SMALL).render(2)
    again = SyntheticScene(SMALL).render(2)
    other = SyntheticScene(SceneConfig(**{**SMALL.__dict__, 'seed': 1})).render(2)
    np.testing.assert_array_equal(first.rgb, again.rgb)
    assert not np.array_equal(first.rgb, other.rgb)
    assert 0 < np.count_nonzero(first.dynamic_mask) < first.dynamic_mask.size // 2
    later = SyntheticScene(SMALL).render(3)
    assert not np.array_equal(first.dynamic_mask, later.dynamic_mask)  # objects move
    # The camera is a proper rotation and moves between frames.
    rotation = first.world_from_camera[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.norm(later.world_from_camera[:3, 3] - first.world_from_camera[:3, 3]) > 0.01


def test_depth_matches_ray_geometry():
    """The depth of the floor pixel below the image centre equals the plane intersection."""
    scene = SyntheticScene(SMALL)
    frame = scene.render(0)
    k = SMALL.intrinsics()
    v, u = SMALL.height - 1, SMALL.width // 2
    ray_world = frame.world_from_camera[:3, :3] @ np.array([(u - k[0, 2]) / k[0, 0],
                                                            (v - k[1, 2]) / k[1, 1], 1.0])
    origin = frame.world_from_camera[:3, 3]
    expected = -origin[2] / ray_world[2]  # floor z = 0
    assert frame.depth[v, u] == pytest.approx(expected, rel=1e-5)


def test_point_cloud_and_image_messages_round_trip():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3)).astype(np.float32)
    colors = rng.integers(0, 256, size=(50, 3)).astype(np.uint8)
    points[3] = np.nan
    msg = m.point_cloud_msg(points, colors, 5, 'map')
    assert msg.point_step == 16 and msg.width == 49 and msg.is_dense
    back_points, back_colors = m.point_cloud_to_arrays(msg)
    keep = np.ones(50, bool)
    keep[3] = False
    np.testing.assert_array_equal(back_points, points[keep])
    np.testing.assert_array_equal(back_colors, colors[keep])
    image = rng.integers(0, 256, size=(5, 7, 3)).astype(np.uint8)
    bgr = m.image_msg(image[..., ::-1], 1, 'cam', 'bgr8')
    np.testing.assert_array_equal(m.image_to_rgb(bgr), image)


def test_missing_topic_names_bag_and_topics(tmp_path):
    bag = write_synthetic_bag(tmp_path / 'bag', SMALL)
    with BagReader(bag) as reader:
        with pytest.raises(TopicError, match='/nope.*not found.*camera/image_raw'):
            reader.pick_image_topic('/nope')


def test_bag_without_images_is_a_topic_error(tmp_path):
    with BagWriter(tmp_path / 'bag') as writer:
        writer.write('/pose', m.POSE_STAMPED, m.pose_stamped_msg(np.eye(4), 1, 'w'), 1)
    with BagReader(tmp_path / 'bag') as reader:
        with pytest.raises(TopicError, match='no camera image topic'):
            reader.pick_image_topic()


@pytest.mark.parametrize('damage', ['missing', 'garbage', 'truncated'])
def test_unreadable_bags_raise_bag_error(tmp_path, damage):
    bag = tmp_path / 'bag'
    if damage != 'missing':
        write_synthetic_bag(bag, SMALL)
        storage = bag / 'bag.mcap'
        data = storage.read_bytes()
        storage.write_bytes(b'\x00garbage' * 100 if damage == 'garbage' else data[:len(data) // 2])
    with pytest.raises(BagError, match=str(bag)):
        with BagReader(bag) as reader:
            list(reader.images(reader.pick_image_topic()))
