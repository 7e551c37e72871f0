# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Launch the vggt4d node (autostarting lifecycle node), optionally RViz and the Foxglove view.

Example::

    ros2 launch vggt4d_ros vggt4d.launch.py image_topic:=/camera/color/image_raw
        weights:=/opt/models/model_tracker_fixed_e20.pt device:=cuda  (one line)
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def _text(name: str) -> ParameterValue:
    # Typed as a string: an empty weights path must stay '' (YAML would read it as null).
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def generate_launch_description() -> LaunchDescription:
    """Arguments: image_topic, weights, device, use_sim_time, params_file, model_config, ..."""
    share = get_package_share_directory('vggt4d_ros')
    arguments = [
        DeclareLaunchArgument('image_topic', default_value='/camera/image_raw',
                              description='Input sensor_msgs/Image topic.'),
        DeclareLaunchArgument('weights', default_value='',
                              description='VGGT checkpoint (.pt or .safetensors).'),
        DeclareLaunchArgument('device', default_value='auto',
                              description='Torch device: auto, cuda, cuda:N or cpu.'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='Follow /clock (rosbag replay with --clock).'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'vggt4d.yaml'),
                              description='Parameter YAML (defaults: config/vggt4d.yaml).'),
        DeclareLaunchArgument('model_config', default_value='full',
                              description='VGGT size: full or tiny.'),
        DeclareLaunchArgument('allow_random_weights', default_value='false',
                              description='Demo only: random weights when weights is empty.'),
        DeclareLaunchArgument('mode', default_value='live',
                              description='live (may drop frames) or replay (never drops).'),
        DeclareLaunchArgument('rviz', default_value='false',
                              description='Also start RViz with rviz/vggt4d.rviz.'),
        DeclareLaunchArgument('foxglove', default_value='false',
                              description='Foxglove live view (needs foxglove-sdk): a '
                              'WebSocket server on foxglove_port.'),
        DeclareLaunchArgument('foxglove_port', default_value='8765',
                              description='TCP port of the Foxglove live view.'),
    ]
    node = Node(
        package='vggt4d_ros',
        executable='vggt4d_node',
        name='vggt4d',
        output='screen',
        parameters=[
            LaunchConfiguration('params_file'),
            {
                'image_topic': _text('image_topic'),
                'weights': _text('weights'),
                'device': _text('device'),
                'model_config': _text('model_config'),
                'mode': _text('mode'),
                'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                               value_type=bool),
                'allow_random_weights': ParameterValue(
                    LaunchConfiguration('allow_random_weights'), value_type=bool),
                'foxglove.enabled': ParameterValue(LaunchConfiguration('foxglove'),
                                                   value_type=bool),
                'foxglove.port': ParameterValue(LaunchConfiguration('foxglove_port'),
                                                value_type=int),
            },
        ],
    )
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        name='rviz2',
        arguments=['-d', os.path.join(share, 'rviz', 'vggt4d.rviz')],
        parameters=[{'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                                    value_type=bool)}],
        condition=IfCondition(LaunchConfiguration('rviz')),
    )
    return LaunchDescription(arguments + [node, rviz])
