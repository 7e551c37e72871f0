# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""ament_python package setup for vggt4d_ros."""

from glob import glob
import os

from setuptools import find_packages
from setuptools import setup

package_name = 'vggt4d_ros'


def _files(pattern):
    return [path for path in glob(pattern) if os.path.isfile(path)]


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', _files('launch/*.py')),
        ('share/' + package_name + '/config', _files('config/*.yaml') + _files('config/*.json')),
        ('share/' + package_name + '/rviz', _files('rviz/*.rviz')),
        # Message definitions the replay registers with rosbags (replay/planner_messages.py).
        *[('share/' + package_name + '/msgs/' + pkg + '/msg', _files(f'msgs/{pkg}/msg/*.msg'))
          for pkg in ('vision_msgs', 'nav2_dynamic_msgs')],
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='vggt4d_ros developers',
    maintainer_email='dev@vggt4d-ros.invalid',
    description='Training-free VGGT4D dynamic-scene perception node for ROS 2.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'vggt4d_node = vggt4d_ros.ros.node:main',
            'vggt4d-replay = vggt4d_ros.replay.cli:main',
            'vggt4d-bench = vggt4d_ros.tools.bench:main',
            'vggt4d-dds-replay = vggt4d_ros.tools.dds_replay:main',
            'vggt4d-eval = vggt4d_ros.replay.eval_cli:eval_main',
            'vggt4d-bag = vggt4d_ros.replay.eval_cli:bag_main',
        ],
    },
)
