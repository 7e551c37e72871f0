# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""DDS test environment and a small harness for node-in-a-subprocess tests.

The environment follows shared/reference/ros_env.md section 1.4: a shared-memory-only Fast
DDS profile (nothing leaves the host, large best-effort messages are not lost), discovery
limited to localhost, a random domain per session, ROS_HOME under a temporary directory and
RMW_IMPLEMENTATION unset. It is set at import time so the in-process test peer and every node
subprocess (started with sys.executable, inheriting the environment) share it.
"""

from __future__ import annotations

import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import pytest
from waiting import LoadScaledDeadline

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
_ROS_HOME = tempfile.mkdtemp(prefix='vggt4d_ros_home_')

os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(ROOT / 'ci' / 'fastdds_ci_shm.xml')
os.environ['FASTRTPS_DEFAULT_PROFILES_FILE'] = str(ROOT / 'ci' / 'fastdds_ci_shm.xml')
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = str(random.Random().randint(1, 101))
os.environ['ROS_HOME'] = _ROS_HOME
os.environ.pop('RMW_IMPLEMENTATION', None)
os.environ.pop('ROS_LOCALHOST_ONLY', None)

try:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
except ImportError:  # pragma: no cover - the ROS tests skip without rclpy
    rclpy = None


def node_env() -> dict[str, str]:
    """Environment for a node subprocess: the DDS settings plus test/ros on PYTHONPATH."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(HERE), str(ROOT)] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    env['PYTHONUNBUFFERED'] = '1'
    env['OMP_NUM_THREADS'] = '1'
    return env


class NodeProcess:
    """The vggt4d node in its own process (``python -m vggt4d_ros.ros.node``)."""

    def __init__(self, params: dict[str, Any], tmp_path: Path, name: str = 'vggt4d',
                 hide_modules: tuple[str, ...] = (), inject: str = '',
                 ros_args: tuple[str, ...] = ()) -> None:
        # hide_modules makes those imports fail in the node (a machine without the package);
        # inject is Python code run before main() (fault injection).
        prelude = (f'import sys\nfor name in {list(hide_modules)!r}: sys.modules[name] = None\n'
                   f'{inject}\nfrom vggt4d_ros.ros.node import main\nsys.exit(main(sys.argv))')
        args = [sys.executable, '-c', prelude, '--ros-args', '-r', f'__node:={name}',
                *ros_args]
        for key, value in params.items():
            if isinstance(value, bool):
                value = 'true' if value else 'false'
            elif value == '':
                value = "''"
            elif isinstance(value, (list, tuple)):
                value = '[' + ','.join(str(v) for v in value) + ']'
            args += ['-p', f'{key}:={value}']
        self.log_path = tmp_path / f'{name}.log'
        self._log = open(self.log_path, 'w')
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=node_env(), cwd=ROOT)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_mb(self) -> float:
        """Resident memory of the node process (VmRSS of /proc/<pid>/status), MiB."""
        for line in Path(f'/proc/{self.process.pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
        raise RuntimeError('no VmRSS line')

    def wait_for_log(self, text: str, timeout_s: float = 60.0) -> bool:
        deadline = LoadScaledDeadline(timeout_s)
        while not deadline.expired():
            if text in self.log():
                return True
            if not self.alive():
                return False
            time.sleep(0.1)
        return False

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 20.0) -> int:
        """Send ``sig`` and return the exit code (kills and fails after the timeout)."""
        if self.alive():
            self.process.send_signal(sig)
        deadline = LoadScaledDeadline(timeout_s)
        while self.alive() and not deadline.expired():
            time.sleep(0.05)
        try:
            code = self.process.wait(0.1)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f'node did not exit within {timeout_s} s after {sig}:\n{self.log()}')
        self._log.close()
        return code


class Peer:
    """In-process test peer: publishers and collecting subscribers on one rclpy node."""

    def __init__(self, name: str = 'vggt4d_test_peer') -> None:
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.received: dict[str, list] = {}

    def collect(self, msg_type, topic: str, qos) -> list:
        messages: list = []
        self.received[topic] = messages
        self.node.create_subscription(msg_type, topic, messages.append, qos)
        return messages

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until ``condition()``; ``timeout_s`` is for an idle machine (load-scaled)."""
        deadline = LoadScaledDeadline(timeout_s)
        while not deadline.expired():
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)

    def wait_for_subscriber(self, publisher, timeout_s: float = 60.0) -> bool:
        """Wait until the node subscribes to ``publisher`` and publishes every collected topic.

        Waiting for the node's output publishers too means no early output is published
        before this peer's readers are matched (volatile topics are not resent).
        """
        topics = [topic for topic in self.received if topic != '/diagnostics']

        def matched() -> bool:
            return publisher.get_subscription_count() > 0 and all(
                self.node.count_publishers(topic) > 0 for topic in topics)

        return self.spin_until(matched, timeout_s)

    def destroy(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture(scope='module')
def ros_context():
    """Initialise rclpy for the test module (skips when rclpy is not importable)."""
    if rclpy is None:
        pytest.skip('rclpy is not importable')
    rclpy.init()
    yield
    rclpy.shutdown()


@pytest.fixture
def peer(ros_context):
    created = Peer()
    yield created
    created.destroy()


@pytest.fixture
def start_node(tmp_path):
    """Return a factory starting node processes; those still running at teardown are killed."""
    started: list[NodeProcess] = []

    def start(params: dict[str, Any], name: str = 'vggt4d',
              hide_modules: tuple[str, ...] = (), inject: str = '',
              ros_args: tuple[str, ...] = ()) -> NodeProcess:
        process = NodeProcess(params, tmp_path, name, hide_modules, inject, ros_args)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.alive():
            process.stop(signal.SIGKILL, timeout_s=10.0)
