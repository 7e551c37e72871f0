# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The shipped Nav2 costmap example reads topics the node publishes, with their types and QoS.

``config/nav2_costmap_dynamic_obstacles.yaml``: an ObstacleLayer (local costmap) and a
VoxelLayer (global costmap) with the dynamic cloud and the window cloud as observation
sources, and a StaticLayer on the latched static grid. The first test checks the file's
structure; the second starts the node (over real DDS) and checks that every topic the file
names is advertised by it with the message type the layer reads, and that the static grid is
latched as the StaticLayer's ``map_subscribe_transient_local`` expects.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / 'config' / 'nav2_costmap_dynamic_obstacles.yaml'
#: Keys of a nav2_costmap_2d ObstacleLayer / VoxelLayer observation source
#: (shared/reference/planner_outputs.md).
SOURCE_KEYS = {'topic', 'data_type', 'sensor_frame', 'marking', 'clearing',
               'min_obstacle_height', 'max_obstacle_height', 'obstacle_max_range',
               'raytrace_max_range', 'expected_update_rate'}
#: Observation-source data types -> ROS message types.
DATA_TYPES = {'PointCloud2': 'sensor_msgs/msg/PointCloud2',
              'LaserScan': 'sensor_msgs/msg/LaserScan'}


def costmaps() -> dict[str, dict]:
    """{costmap name: its ros__parameters} of the example."""
    tree = yaml.safe_load(EXAMPLE.read_text())
    return {name: section[name]['ros__parameters'] for name, section in tree.items()}


def topics_read() -> dict[str, tuple[str, bool]]:
    """{topic: (ROS message type, needs transient local)} of every layer of the example."""
    topics: dict[str, tuple[str, bool]] = {}
    for params in costmaps().values():
        for name in params['plugins']:
            layer = params[name]
            for source in layer.get('observation_sources', '').split():
                entry = layer[source]
                topics[entry['topic']] = (DATA_TYPES[entry['data_type']], False)
            if layer['plugin'] == 'nav2_costmap_2d::StaticLayer':
                topics[layer['map_topic']] = ('nav_msgs/msg/OccupancyGrid',
                                              bool(layer['map_subscribe_transient_local']))
    return topics


def test_nav2_example_marks_with_the_dynamic_cloud_and_clears_with_the_static_one():
    maps = costmaps()
    assert set(maps) == {'local_costmap', 'global_costmap'}
    plugins = {}
    for params in maps.values():
        for name in params['plugins']:
            plugins[name] = params[name]['plugin']
            layer = params[name]
            sources = layer.get('observation_sources', '').split()
            by_topic = {}
            for source in sources:
                entry = layer[source]
                assert set(entry) <= SOURCE_KEYS, set(entry) - SOURCE_KEYS
                assert entry['data_type'] in DATA_TYPES
                assert entry['min_obstacle_height'] < entry['max_obstacle_height']
                assert entry['obstacle_max_range'] <= entry['raytrace_max_range']
                by_topic[entry['topic']] = entry
            if sources:
                # The node is launched as 'vggt4d': its private topics are /vggt4d/*.
                assert by_topic['/vggt4d/dynamic_cloud']['marking']
                assert by_topic['/vggt4d/window_cloud']['clearing']
            if layer['plugin'] == 'nav2_costmap_2d::VoxelLayer':
                top = layer['origin_z'] + layer['z_resolution'] * layer['z_voxels']
                assert all(layer[s]['max_obstacle_height'] <= top + 1e-9 for s in sources)
    assert set(plugins.values()) >= {'nav2_costmap_2d::ObstacleLayer',
                                     'nav2_costmap_2d::VoxelLayer',
                                     'nav2_costmap_2d::StaticLayer'}
    launch = (ROOT / 'launch' / 'vggt4d.launch.py').read_text()
    assert "name='vggt4d'" in launch


def test_the_node_publishes_every_topic_the_example_reads(peer, start_node):
    pytest.importorskip('rclpy')
    from rclpy.qos import DurabilityPolicy

    node = start_node({'backend_factory': 'fake_backends:make_plane', 'warmup': False})
    wanted = topics_read()
    assert len(wanted) == 3

    def advertised() -> dict[str, list[str]]:
        return {name: types for name, types in peer.node.get_topic_names_and_types()
                if name in wanted}

    assert peer.spin_until(lambda: len(advertised()) == len(wanted), 60), node.log()
    assert advertised() == {topic: [msg_type] for topic, (msg_type, _) in wanted.items()}
    for topic, (_, latched) in wanted.items():
        durability = {info.qos_profile.durability
                      for info in peer.node.get_publishers_info_by_topic(topic)}
        if latched:
            assert durability == {DurabilityPolicy.TRANSIENT_LOCAL}, topic
    code = node.stop()
    assert code == 0, node.log()
