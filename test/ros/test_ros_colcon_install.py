# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The package as a ROS user builds it: ``colcon build`` into an install space, run from there.

The other node tests import the package from the source tree. A robot instead gets what
``setup.py`` installs: the console scripts under ``lib/vggt4d_ros``, the ``share/`` files the
launch file reads and the ament index marker ``ros2 launch`` / ``ros2 run`` look up. This module
builds the package with colcon into a temporary folder (the repository's build/ and install/
are not touched), checks the install space against the repository and the launch file, and runs
``install/lib/vggt4d_ros/vggt4d_node`` from there, through ``install/setup.bash``, with the
installed ``config/vggt4d.yaml`` and the launch file's arguments for the tiny model, until it
publishes masks over DDS.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
import shlex
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip('rclpy')
pytest.importorskip('colcon_core')

from conftest import node_env  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from test_ros_node import FAST_WINDOWS  # noqa: E402
from test_ros_node import HEIGHT  # noqa: E402
from test_ros_node import image_msg  # noqa: E402
from test_ros_node import RELIABLE  # noqa: E402
from test_ros_node import stamps_of  # noqa: E402
from test_ros_node import WIDTH  # noqa: E402
from waiting import LoadScaledDeadline  # noqa: E402

pytestmark = pytest.mark.dds

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = 'vggt4d_ros'
# What the launch file passes for the tiny-model demo (model_config:=tiny
# allow_random_weights:=true device:=cpu), as typed parameters in its Node(parameters=[...]).
LAUNCH_ARGUMENTS = {'model_config': 'tiny', 'allow_random_weights': 'true', 'device': 'cpu',
                    'weights': "''", 'mode': 'replay', 'use_sim_time': 'false',
                    'image_topic': '/camera/image_raw'}


@pytest.fixture(scope='module')
def install_space(tmp_path_factory) -> Path:
    """``colcon build`` of this repository into a fresh temporary install space."""
    base = tmp_path_factory.mktemp('colcon')
    command = [sys.executable, '-m', 'colcon', '--log-base', str(base / 'log'), 'build',
               '--paths', str(ROOT), '--build-base', str(base / 'build'),
               '--install-base', str(base / 'install'), '--merge-install',
               '--event-handlers', 'console_direct-']
    # --paths names exactly this package: a crawl of the repository would also find the
    # package.xml files of the ROS wheels inside .venv/share.
    result = subprocess.run(command, cwd=base, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return base / 'install'


def console_scripts() -> list[str]:
    """Names of the console_scripts entry points declared in setup.py (by AST)."""
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    return [item.value.split('=')[0].strip() for item in value.elts]
    raise AssertionError('setup.py declares no console_scripts')


def launch_share_paths() -> list[str]:
    """Files the launch file joins onto the share directory: os.path.join(share, 'a', 'b')."""
    paths = []
    for node in ast.walk(ast.parse((ROOT / 'launch' / 'vggt4d.launch.py').read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == 'join' and node.args
                and getattr(node.args[0], 'id', '') == 'share'):
            parts = [arg.value for arg in node.args[1:] if isinstance(arg, ast.Constant)]
            assert len(parts) == len(node.args) - 1, ast.unparse(node)
            paths.append('/'.join(parts))
    return paths


def sourced(install: Path, command: str) -> list[str]:
    """``command`` run by bash after sourcing the install space, as a user's shell does."""
    venv = Path(sys.prefix)
    # The pip ROS wheels keep their ament index in the venv: keep it behind the overlay.
    script = (f'export AMENT_PREFIX_PATH={shlex.quote(str(venv))}; '
              f'source {shlex.quote(str(install / "setup.bash"))}; {command}')
    return ['bash', '-c', script]


def test_install_space_holds_what_a_ros_user_runs(install_space):
    share = install_space / 'share' / PACKAGE
    marker = install_space / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    assert marker.is_file()
    assert (share / 'package.xml').read_text() == (ROOT / 'package.xml').read_text()
    for name in console_scripts():
        script = install_space / 'lib' / PACKAGE / name
        assert script.is_file() and os.access(script, os.X_OK), name
    # Every launch, config and rviz file of the repository is installed, unchanged.
    for folder in ('launch', 'config', 'rviz'):
        ours = {p.name for p in (ROOT / folder).iterdir() if p.is_file()}
        installed = {p.name for p in (share / folder).iterdir()} if (share / folder).is_dir() \
            else set()
        assert ours == installed, folder
        for name in ours:
            assert (share / folder / name).read_bytes() == (ROOT / folder / name).read_bytes()
    # Everything the launch file reads from its share directory exists there.
    wanted = launch_share_paths()
    assert {'config/vggt4d.yaml', 'rviz/vggt4d.rviz'} <= set(wanted)
    for relative in wanted:
        assert (share / relative).is_file(), relative


def test_sourced_install_space_resolves_the_package(install_space, tmp_path):
    probe = ('from ament_index_python.packages import get_package_share_directory; '
             'import vggt4d_ros.ros.node as node; '
             "print(get_package_share_directory('vggt4d_ros')); print(node.__file__)")
    result = subprocess.run(sourced(install_space, f'python3 -c {shlex.quote(probe)}'),
                            cwd=tmp_path, env=node_env_without_source(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    share_dir, module = result.stdout.split()[-2:]
    assert Path(share_dir) == install_space / 'share' / PACKAGE
    # The installed copy is imported, not the source tree (nor an editable install of it).
    assert Path(module).is_relative_to(install_space), module


def node_env_without_source() -> dict[str, str]:
    """The DDS test environment, without the repository or test/ros on PYTHONPATH."""
    env = node_env()
    env.pop('PYTHONPATH', None)
    env['PATH'] = os.pathsep.join([str(Path(sys.executable).parent), env.get('PATH', '')])
    return env


def test_installed_node_publishes_masks_with_the_launch_parameters(peer, install_space,
                                                                   tmp_path):
    share = install_space / 'share' / PACKAGE
    arguments = ['--ros-args', '-r', '__node:=vggt4d',
                 '--params-file', str(share / 'config' / 'vggt4d.yaml')]
    # The launch file's arguments, then the small windows every DDS test uses (a CPU budget).
    overrides = {**LAUNCH_ARGUMENTS, **FAST_WINDOWS, 'pipeline.refine_enabled': 'false'}
    for key, value in overrides.items():
        arguments += ['-p', f'{key}:={value}']
    executable = install_space / 'lib' / PACKAGE / 'vggt4d_node'
    command = shlex.join([str(executable)] + [str(a) for a in arguments])
    log_path = tmp_path / 'installed_node.log'
    with open(log_path, 'w') as log:
        process = subprocess.Popen(sourced(install_space, f'exec {command}'), cwd=tmp_path,
                                   env=node_env_without_source(), stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
        publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
        # Model build and warm-up on the CPU: generous, the test waits on the condition.
        assert peer.wait_for_subscriber(publisher, 240), log_path.read_text()
        sent = [image_msg(index) for index in range(6)]
        for msg in sent:
            publisher.publish(msg)
        assert peer.spin_until(lambda: len(masks) >= 6, 240), log_path.read_text()
        assert stamps_of(masks) == stamps_of(sent)
        assert all((m.height, m.width, m.encoding) == (HEIGHT, WIDTH, 'mono8') for m in masks)
        text = log_path.read_text()
        assert 'RANDOM weights' in text and 'tiny' in text
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        deadline = LoadScaledDeadline(30.0)
        while process.poll() is None and not deadline.expired():
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()
            process.wait()
            pytest.fail(f'the installed node ignored SIGINT:\n{log_path.read_text()}')
        code = process.returncode
    assert code == 0, log_path.read_text()
    assert 'Traceback' not in log_path.read_text(), log_path.read_text()
