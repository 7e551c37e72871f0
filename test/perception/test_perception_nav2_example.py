# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The shipped Nav2 costmap example reads the node's clouds with valid observation sources."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / 'config' / 'nav2_costmap_dynamic_obstacles.yaml'
#: Keys of a nav2_costmap_2d ObstacleLayer observation source
#: (shared/reference/planner_outputs.md).
SOURCE_KEYS = {'topic', 'data_type', 'sensor_frame', 'marking', 'clearing',
               'min_obstacle_height', 'max_obstacle_height', 'obstacle_max_range',
               'raytrace_max_range', 'expected_update_rate'}


def test_nav2_example_marks_with_the_dynamic_cloud_and_clears_with_the_static_one():
    params = yaml.safe_load(EXAMPLE.read_text())['local_costmap']['local_costmap'][
        'ros__parameters']
    layer = params['vggt4d_obstacles']
    assert layer['plugin'] == 'nav2_costmap_2d::ObstacleLayer'
    sources = layer['observation_sources'].split()
    topics = {}
    for name in sources:
        source = layer[name]
        assert set(source) <= SOURCE_KEYS, set(source) - SOURCE_KEYS
        assert source['data_type'] == 'PointCloud2'
        assert source['min_obstacle_height'] < source['max_obstacle_height']
        assert source['obstacle_max_range'] <= source['raytrace_max_range']
        topics[source['topic']] = source
    # The node is launched as 'vggt4d' (launch/vggt4d.launch.py): private topics are /vggt4d/*.
    assert topics['/vggt4d/dynamic_cloud']['marking']
    assert topics['/vggt4d/window_cloud']['clearing']
    launch = (ROOT / 'launch' / 'vggt4d.launch.py').read_text()
    assert "name='vggt4d'" in launch
    assert 'vggt4d_obstacles' in params['plugins']
