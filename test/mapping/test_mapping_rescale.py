# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Changing the map's units: voxel map re-binning and per-segment trajectory scaling."""

import numpy as np

from vggt4d_ros.mapping.trajectory import Trajectory
from vggt4d_ros.mapping.voxel_map import VoxelMap
from vggt4d_ros.mapping.voxel_map import VoxelMapConfig


def test_voxel_map_rescale_scales_points_and_merges_cells():
    voxel_map = VoxelMap(VoxelMapConfig(voxel_size=0.1, min_hits_export=1))
    points = np.array([[0.01, 0.01, 0.01], [0.11, 0.01, 0.01], [1.05, 0.0, 0.0]], np.float32)
    colours = np.array([[10, 0, 0], [30, 0, 0], [0, 0, 200]], np.uint8)
    voxel_map.integrate(points, colours)
    voxel_map.integrate(points[:1], colours[:1])  # the first voxel: 2 hits
    assert len(voxel_map) == 3
    voxel_map.rescale(0.5)  # the first two now share the cell [0, 0.1)
    assert len(voxel_map) == 2
    xyz, rgb = voxel_map.points()
    order = np.argsort(xyz[:, 0])
    xyz, rgb = xyz[order], rgb[order]
    # Hit-weighted mean: (2 * 0.005 + 1 * 0.055) / 3 along x, colour likewise.
    np.testing.assert_allclose(xyz[0], [(2 * 0.005 + 0.055) / 3, 0.005, 0.005], atol=1e-6)
    assert rgb[0, 0] == round((2 * 10 + 30) / 3)
    np.testing.assert_allclose(xyz[1], [0.525, 0.0, 0.0], atol=1e-6)
    assert voxel_map.hits().sum() == 4
    voxel_map.integrate(np.array([[0.52, 0.0, 0.0]], np.float32), colours[2:])
    assert len(voxel_map) == 2  # the hash table was rebuilt: the cell is found again


def test_trajectory_scale_segment_touches_only_that_segment():
    trajectory = Trajectory()
    poses = np.repeat(np.eye(4)[None], 4, axis=0)
    poses[:, 0, 3] = [1.0, 2.0, 3.0, 4.0]
    trajectory.extend([1, 2], poses[:2], segment=0)
    trajectory.extend([3, 4], poses[2:], segment=1)
    trajectory.scale_segment(1, 2.0)
    np.testing.assert_allclose(trajectory.positions()[:, 0], [1.0, 2.0, 6.0, 8.0])
