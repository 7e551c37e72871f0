# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Launch file, parameter YAML and RViz config checks (no DDS traffic)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / 'launch' / 'vggt4d.launch.py'
CONFIG = ROOT / 'config' / 'vggt4d.yaml'
RVIZ = ROOT / 'rviz' / 'vggt4d.rviz'
EXPECTED_ARGUMENTS = {'image_topic', 'weights', 'device', 'use_sim_time', 'params_file',
                      'model_config', 'allow_random_weights', 'mode', 'rviz', 'foxglove',
                      'foxglove_port'}


def declared_arguments(source: str) -> set[str]:
    """Names passed to DeclareLaunchArgument(...) in a launch file, found by AST."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'DeclareLaunchArgument'
                and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value)
    return names


def used_configurations(source: str) -> set[str]:
    """Names read with LaunchConfiguration(...) (directly or through _text(...))."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and getattr(node.func, 'id', '') in (
                'LaunchConfiguration', '_text') and node.args
                and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value)
    return names


def test_launch_arguments_by_ast():
    source = LAUNCH.read_text()
    declared = declared_arguments(source)
    assert declared == EXPECTED_ARGUMENTS
    assert used_configurations(source) == declared  # every argument is used, none undeclared


def test_launch_description_builds_when_launch_ros_is_installed(monkeypatch):
    pytest.importorskip('launch')
    pytest.importorskip('launch_ros')
    import importlib.util

    from ament_index_python import packages

    monkeypatch.setattr(packages, 'get_package_share_directory', lambda name: str(ROOT))
    spec = importlib.util.spec_from_file_location('vggt4d_launch', LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {entity.name for entity in description.entities if hasattr(entity, 'name')
             and type(entity).__name__ == 'DeclareLaunchArgument'}
    assert names == EXPECTED_ARGUMENTS


def test_config_yaml_is_current_and_matches_declarations():
    pytest.importorskip('rclpy')
    from vggt4d_ros.ros.default_config import default_config

    assert CONFIG.read_text() == default_config(), (
        'config/vggt4d.yaml is stale: python -m vggt4d_ros.ros.default_config > '
        'config/vggt4d.yaml')
    parameters = yaml.safe_load(CONFIG.read_text())['/**']['ros__parameters']
    assert parameters['mode'] == 'live' and parameters['window']['window_size'] >= 2


def test_every_yaml_key_is_a_declared_parameter(ros_context):
    from vggt4d_ros.ros.node import Vggt4dNode

    def flatten(tree, prefix=''):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from flatten(value, f'{prefix}{key}.')
            else:
                yield f'{prefix}{key}', value

    node = Vggt4dNode()
    try:
        builtin = {'use_sim_time', 'start_type_description_service'}
        from rclpy.parameter import Parameter
        declared = {name for name in node._parameters if name not in builtin}
        from_yaml = dict(flatten(yaml.safe_load(CONFIG.read_text())['/**']['ros__parameters']))
        assert set(from_yaml) == declared
        for name, value in from_yaml.items():
            assert node.get_parameter(name).value == value, name
        # The rig's empty arrays are declared with their element type (an empty list alone
        # would make a byte array) and set: `ros2 param get` reads an empty array.
        assert node.get_parameter('image_topics').type_ == Parameter.Type.STRING_ARRAY
        assert node.get_parameter('rig_extrinsics').type_ == Parameter.Type.DOUBLE_ARRAY
        assert 'reference camera' in node.describe_parameter('image_topics').description
        descriptor = node.describe_parameter('window.window_size')
        assert descriptor.integer_range and descriptor.integer_range[0].from_value == 2
        assert node.describe_parameter('image_topic').description
    finally:
        node.destroy_node()


def test_rviz_config_topics_and_qos():
    config = yaml.safe_load(RVIZ.read_text())
    displays = {d['Name']: d for d in config['Visualization Manager']['Displays']}
    static_map = displays['Static map']['Topic']
    assert static_map['Value'] == '/vggt4d/static_map'
    assert static_map['Durability Policy'] == 'Transient Local'
    assert static_map['Reliability Policy'] == 'Reliable'
    assert displays['Static map']['Color Transformer'] == 'RGB8'
    assert displays['Camera image']['Topic']['Reliability Policy'] == 'Best Effort'
    assert displays['Dynamic mask overlay']['Topic']['Value'] == '/vggt4d/mask_overlay'
    assert displays['Camera path']['Topic']['Value'] == '/vggt4d/path'
    assert displays['Window cloud']['Topic']['Value'] == '/vggt4d/window_cloud'
    assert 'TF' in displays
    assert config['Visualization Manager']['Global Options']['Fixed Frame'] == 'map'


def test_rviz_config_shows_the_planner_outputs():
    displays = {d['Name']: d for d in yaml.safe_load(RVIZ.read_text())[
        'Visualization Manager']['Displays']}
    expected = {  # display -> (class, topic, durability)
        'Dynamic cloud': ('PointCloud2', '/vggt4d/dynamic_cloud', 'Volatile'),
        'Combined grid': ('Map', '/vggt4d/combined_grid', 'Volatile'),
        'Static grid': ('Map', '/vggt4d/static_grid', 'Transient Local'),
        'Tracked objects': ('MarkerArray', '/vggt4d/track_markers', 'Volatile'),
    }
    for name, (kind, topic, durability) in expected.items():
        display = displays[name]
        assert display['Class'] == f'rviz_default_plugins/{kind}'
        assert (display['Topic']['Value'], display['Topic']['Durability Policy']) == (
            topic, durability)
    # Points are coloured by the cloud's object_id field (ros/perception_msgs.py).
    assert displays['Dynamic cloud']['Channel Name'] == 'object_id'
    assert displays['Tracked objects']['Namespaces'] == {'tracks': True}


@pytest.mark.parametrize('override, message', [
    (('window.stride', 9), 'stride'),  # in range alone, not with window_size 8
    (('image_topic', ''), 'image_topic'),
    (('image_topics', ['/front/image_raw']), 'image_topics needs 2 to 4 topics'),
])
def test_invalid_parameters_fail_configure_with_a_reason(ros_context, override, message):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from vggt4d_ros.ros.node import Vggt4dNode

    node = Vggt4dNode(parameter_overrides=[Parameter(override[0], value=override[1])])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert message in node.last_error
    finally:
        node.destroy_node()


@pytest.mark.parametrize('override, words', [
    (('mode', 'fast'), 'one of: live, replay'),
    (('pipeline.refine.mode', 'banana'), 'one of: cluster, gradient'),
    (('pipeline.refine.neighbour_search', 'fast'), 'one of: image, exact'),
    (('pipeline.cues.empty_window', 'zero'), 'one of: nearest, none'),
    (('input_qos', 'bogus'), 'one of: sensor_data, reliable'),
    (('mapper.voxel.voxel_size', -0.5), 'voxel_size'),
    (('base_to_camera', [0.0, 1.0]), 'list of 7 numbers'),
    (('rig_sync', 'magic'), 'one of: auto, message_filters, builtin'),
])
def test_values_not_allowed_fail_at_declaration_with_a_reason(ros_context, override, words):
    from rclpy.exceptions import InvalidParameterValueException
    from rclpy.parameter import Parameter

    from vggt4d_ros.ros.node import Vggt4dNode

    with pytest.raises(InvalidParameterValueException) as error:
        Vggt4dNode(parameter_overrides=[Parameter(override[0], value=override[1])])
    assert override[0] in str(error.value) and words in str(error.value)


def test_descriptors_carry_allowed_values_and_ranges(ros_context):
    from vggt4d_ros.ros.node import Vggt4dNode

    node = Vggt4dNode()
    try:
        refine = node.describe_parameter('pipeline.refine.mode')
        assert refine.additional_constraints == 'one of: cluster, gradient'
        assert 'cluster' in refine.description
        voxel = node.describe_parameter('mapper.voxel.voxel_size').floating_point_range[0]
        assert 0.0 < voxel.from_value <= 0.02 <= voxel.to_value
        assert node.describe_parameter('input_qos').additional_constraints == (
            'one of: sensor_data, reliable')
    finally:
        node.destroy_node()


def test_tf2_msgs_type_hash_matches_ros_jazzy(ros_context):
    tf2_msgs = pytest.importorskip('tf2_msgs.msg')
    import rclpy

    node = rclpy.create_node('vggt4d_tf2_hash_check')
    try:
        node.create_publisher(tf2_msgs.TFMessage, '/vggt4d_tf2_hash_check', 1)
        info = node.get_publishers_info_by_topic('/vggt4d_tf2_hash_check')[0]
        type_hash = getattr(info, 'topic_type_hash', None)  # absent before Iron
        if type_hash is None:
            pytest.skip('this rclpy reports no type hashes')
        assert str(type_hash) == (
            'RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087')
    finally:
        node.destroy_node()
