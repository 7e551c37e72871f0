# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""FrameConvention.points_to_world in float32 against a float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

from vggt4d_ros.ros import frames


@pytest.mark.parametrize('tf_mode', ['map_to_camera', 'odom_to_base'])
def test_points_to_world_matches_float64_to_float32_precision(tf_mode):
    rng = np.random.default_rng(3)
    base_from_camera = frames.pose_from_xyz_quat([0.3, -0.1, 0.5, 0.1, 0.7, -0.2, 0.6])
    convention = frames.make_convention(tf_mode, 'map', 'odom', 'base_link', 'cam',
                                        base_from_camera)
    points = rng.normal(scale=20.0, size=(5000, 3)).astype(np.float32)
    world = convention.points_to_world(points)
    reference = (points.astype(np.float64) @ convention.world_from_vggt[:3, :3].T
                 + convention.world_from_vggt[:3, 3])
    assert world.dtype == np.float32 and world.shape == points.shape
    # A few float32 ulps of the coordinates' magnitude (~60 units here).
    np.testing.assert_allclose(world, reference, rtol=0, atol=3e-5)
    assert not np.array_equal(world, points)  # the transform did something
    assert convention.points_to_world(np.zeros((0, 3), np.float32)).shape == (0, 3)
