# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Replay a rosbag2 through the real node over DDS: the slow, end-to-end check of the ROS path.

The offline replay tool drives the engine directly (deterministic, fast). This driver instead
starts ``vggt4d_node`` in replay mode in its own process with ``use_sim_time:=true``, publishes
the bag's images with their original stamps, each preceded by a ``/clock`` message carrying that
stamp (as ``ros2 bag play --clock`` would, kept monotonic), and records what the node publishes:
masks, odometry poses, the static map. The node's clock therefore follows bag time; its
diagnostics timer ticks in wall time, so flow control never waits for the clock to advance.
Flow control keeps at most ``max_in_flight`` images unconfirmed (the node's frames_received
counter on /diagnostics), so nothing is lost however slow the model is; at the end the node is
deactivated, which makes it process its queue and flush the last partial window.

It lives in ``tools/`` because it uses both front ends' libraries (the bag reader of
``replay/``, the message helpers of ``ros/``), which never import each other; ``vggt4d-replay
--mode dds`` runs it as a subprocess. Usage::

    python -m vggt4d_ros.tools.dds_replay BAG --out DIR [--image-topic T] [--wall-time]
        [--params FILE] [-p name:=value ...] [--dds-profile XML]

``--params`` is a node parameter file (as ``config/vggt4d.yaml``; the ``vggt4d`` and ``/**``
sections apply), ``-p`` overrides single values. Writes ``DIR/masks/<stamp_ns>.png``,
``DIR/trajectory.tum`` (poses from ~/odometry), ``DIR/static_map.npz`` and
``DIR/summary.json`` (frames sent, the node's last diagnostics), and prints a summary.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from dataclasses import field
import json
import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np

from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.runtime.parameters import load_parameter_file
from vggt4d_ros.runtime.parameters import write_parameter_file

NODE = 'vggt4d_replay'


def dds_environment(base: dict[str, str] | None = None,
                    profile: str | Path | None = None) -> dict[str, str]:
    """Single-host DDS settings (a Fast DDS profile when one is given).

    Values already set in ``base`` (default: ``os.environ``) win, so a caller can point both
    sides at another profile or domain.

    Args:
        base: starting environment.
        profile: Fast DDS XML profile (e.g. the repository's ``ci/fastdds_ci_shm.xml``,
            shared memory only); None keeps whatever ``base`` sets.

    """
    env = dict(os.environ if base is None else base)
    if profile is not None:
        env.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(profile))
        env.setdefault('FASTRTPS_DEFAULT_PROFILES_FILE', str(profile))
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 101)))
    env.setdefault('ROS_HOME', tempfile.mkdtemp(prefix='vggt4d_ros_home_'))
    env['PYTHONUNBUFFERED'] = '1'
    return env


def parameter_arguments(params: dict[str, Any]) -> list[str]:
    """``--ros-args`` parameter overrides (``-p name:=value``) for a dict of values."""
    arguments = []
    for key, value in params.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        elif isinstance(value, str) and value == '':
            value = "''"
        elif isinstance(value, (list, tuple)):
            value = '[' + ','.join(str(item) for item in value) + ']'
        arguments += ['-p', f'{key}:={value}']
    return arguments


@dataclass
class DdsReplayResult:
    """What the node published for one bag.

    Attributes:
        masks: stamp_ns -> [H,W] uint8 0/255 mask, in publication order.
        poses: stamp_ns -> [4,4] pose of the odometry child frame in its world frame.
        static_map: last latched map (points [N,3] float32, colours [N,3] uint8), or None.
        frames_sent: images published.
        diagnostics: last /diagnostics key/values of the node.
        node_clock_ns: header stamp of the node's last /diagnostics message, i.e. the node's
            ROS clock (bag time under sim time), or None if none was received.
        clock_ns: last stamp published on /clock, or None without sim time.
        node_log: path of the node's log file.

    """

    masks: dict[int, np.ndarray] = field(default_factory=dict)
    poses: dict[int, np.ndarray] = field(default_factory=dict)
    static_map: tuple[np.ndarray, np.ndarray] | None = None
    frames_sent: int = 0
    diagnostics: dict[str, str] = field(default_factory=dict)
    node_clock_ns: int | None = None
    clock_ns: int | None = None
    node_log: str = ''


class _Recorder:
    """Test-side rclpy node: image publisher plus subscribers for the node's outputs."""

    def __init__(self, image_topic: str, max_in_flight: int, sim_time: bool) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry
        from rclpy.qos import DurabilityPolicy
        from rclpy.qos import QoSProfile
        from rclpy.qos import ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image
        from sensor_msgs.msg import PointCloud2

        self.rclpy = rclpy
        self.node = rclpy.create_node('vggt4d_dds_replay_driver')
        reliable = QoSProfile(depth=max_in_flight + 8, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.publisher = self.node.create_publisher(Image, image_topic, reliable)
        # The QoS of rclpy's and rclcpp's /clock subscriptions (and of ros2 bag play --clock):
        # best effort, keep last 1. Each image is preceded by its own /clock message anyway.
        self.clock_publisher = self.node.create_publisher(
            Clock, '/clock', QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        ) if sim_time else None
        self.result = DdsReplayResult()
        self.node.create_subscription(Image, f'/{NODE}/dynamic_mask', self._on_mask, reliable)
        self.node.create_subscription(Odometry, f'/{NODE}/odometry', self._on_odometry,
                                      reliable)
        self.node.create_subscription(PointCloud2, f'/{NODE}/static_map', self._on_map, latched)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                      10)

    def _on_mask(self, msg) -> None:
        from vggt4d_ros.ros.conversions import stamp_to_ns

        pixels = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
        self.result.masks[stamp_to_ns(msg.header.stamp)] = pixels[:, :msg.width].copy()

    def _on_odometry(self, msg) -> None:
        from vggt4d_ros.ros.conversions import stamp_to_ns
        from vggt4d_ros.ros.frames import pose_from_xyz_quat

        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        self.result.poses[stamp_to_ns(msg.header.stamp)] = pose_from_xyz_quat(
            [p.x, p.y, p.z, q.x, q.y, q.z, q.w])

    def _on_map(self, msg) -> None:
        from vggt4d_ros.ros.conversions import cloud_to_numpy

        self.result.static_map = cloud_to_numpy(msg)

    def _on_diagnostics(self, msg) -> None:
        from vggt4d_ros.ros.conversions import stamp_to_ns

        for status in msg.status:
            if status.name.startswith(f'{NODE}:'):
                self.result.diagnostics = {kv.key: kv.value for kv in status.values}
                self.result.node_clock_ns = stamp_to_ns(msg.header.stamp)

    def publish_clock(self, stamp_ns: int) -> None:
        """Move the node's sim time to ``stamp_ns`` (never backwards; no-op without sim time)."""
        if self.clock_publisher is None:
            return
        from rosgraph_msgs.msg import Clock

        from vggt4d_ros.ros.outputs import header_at

        if self.result.clock_ns is not None:
            stamp_ns = max(stamp_ns, self.result.clock_ns)
        self.clock_publisher.publish(Clock(clock=header_at(stamp_ns, '').stamp))
        self.result.clock_ns = stamp_ns

    @property
    def received(self) -> int:
        return int(self.result.diagnostics.get('frames_received', 0))

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            self.rclpy.spin_once(self.node, timeout_sec=0.05)
        return condition()

    def deactivate(self, timeout_s: float) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        client = self.node.create_client(ChangeState, f'/{NODE}/change_state')
        if not self.spin_until(client.service_is_ready, 30.0):
            return False
        request = ChangeState.Request()
        request.transition.id = Transition.TRANSITION_DEACTIVATE
        future = client.call_async(request)
        done = self.spin_until(future.done, timeout_s)
        return done and future.result().success


def _warmup_size(bag: str | Path, image_topic: str | None) -> dict[str, int]:
    """Warm the node up at the bag's image size (warm-up never changes the outputs).

    Raises:
        RuntimeError: the topic has no images.

    """
    with BagReader(bag) as reader:
        topic = reader.pick_image_topic(image_topic)
        first = next(reader.images(topic), None)
    if first is None:
        raise RuntimeError(f'bag {bag}: topic {topic} has no images')
    height, width = first.rgb.shape[:2]
    return {'warmup_height': int(height), 'warmup_width': int(width)}


def replay_bag_through_node(bag: str | Path, image_topic: str | None = None,
                            params: dict[str, Any] | None = None, timeout_s: float = 600.0,
                            max_in_flight: int = 32, log_path: str | Path | None = None,
                            sim_time: bool = True) -> DdsReplayResult:
    """Publish a bag's images to a freshly started node (replay mode) and record its outputs.

    Args:
        bag: rosbag2 directory (mcap or sqlite3).
        image_topic: image topic in the bag (default: the only/preferred image topic).
        params: node parameters, flat (e.g. weights, model_config, window.*); ``mode``,
            the topics and the diagnostics period are the driver's.
        timeout_s: bound on each wait (startup, processing, flush).
        max_in_flight: images published but not yet confirmed received by the node.
        log_path: node log file (default: a temporary file).
        sim_time: run the node with ``use_sim_time`` and publish the bag stamps on /clock.

    Raises:
        RuntimeError: the node did not start, stalled, or did not flush in time, or ``params``
            name a rig (``image_topics``: this driver publishes one camera).

    """
    if (params or {}).get('image_topics'):
        raise RuntimeError('the DDS replay driver publishes one camera; image_topics (a rig) '
                           'replays offline: vggt4d-replay BAG --params FILE')
    env = dds_environment()
    os.environ.update({k: v for k, v in env.items() if k.startswith(('FAST', 'ROS_'))})
    import rclpy
    from sensor_msgs.msg import Image

    from vggt4d_ros.ros.outputs import header_at

    topic_in = f'/{NODE}/input/image'
    driver_params = {'mode': 'replay', 'image_topic': topic_in, 'diagnostics_period_s': 0.1,
                     'map_period_s': 0.0, 'use_sim_time': sim_time,
                     **_warmup_size(bag, image_topic)}
    log_path = Path(log_path or tempfile.mktemp(prefix='vggt4d_dds_replay_', suffix='.log'))
    params_file = write_parameter_file(
        {k: v for k, v in (params or {}).items() if k not in driver_params},
        log_path.with_suffix('.params.yaml'))
    command = [sys.executable, '-m', 'vggt4d_ros.ros.node', '--ros-args', '-r',
               f'__node:={NODE}', '--params-file', str(params_file),
               *parameter_arguments(driver_params)]
    owns_context = not rclpy.ok()
    if owns_context:
        rclpy.init()
    recorder = _Recorder(topic_in, max_in_flight, sim_time)
    with open(log_path, 'w') as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            publisher = recorder.publisher
            outputs = (f'/{NODE}/dynamic_mask', f'/{NODE}/odometry')

            clock = recorder.clock_publisher

            def matched() -> bool:  # both directions, so no early output or /clock is missed
                return (publisher.get_subscription_count() > 0
                        and (clock is None or clock.get_subscription_count() > 0)
                        and all(recorder.node.count_publishers(topic) > 0 for topic in outputs))

            if not recorder.spin_until(matched, timeout_s):
                raise RuntimeError(f'node did not subscribe within {timeout_s} s ({log_path})')
            with BagReader(bag) as reader:
                topic = reader.pick_image_topic(image_topic)
                for frame in reader.images(topic):
                    sent = recorder.result.frames_sent
                    if not recorder.spin_until(
                            lambda: sent - recorder.received < max_in_flight, timeout_s):
                        raise RuntimeError(f'node stalled after {recorder.received} frames')
                    height, width = frame.rgb.shape[:2]
                    recorder.publish_clock(frame.stamp_ns)
                    publisher.publish(Image(
                        header=header_at(frame.stamp_ns, frame.frame_id or 'camera'),
                        height=height, width=width, encoding='rgb8', step=width * 3,
                        data=np.ascontiguousarray(frame.rgb).tobytes()))
                    recorder.result.frames_sent += 1
            total = recorder.result.frames_sent
            if not recorder.spin_until(lambda: recorder.received >= total, timeout_s):
                raise RuntimeError(f'node received {recorder.received} of {total} frames')
            if not recorder.deactivate(timeout_s):
                raise RuntimeError(f'node did not flush within {timeout_s} s ({log_path})')
            # The first report made after the transition counts the flushed frames too. The
            # /clock no longer moves, so it also proves the diagnostics timer runs in wall time.
            if not recorder.spin_until(
                    lambda: recorder.result.diagnostics.get('state') == 'inactive', timeout_s):
                raise RuntimeError(f'no /diagnostics after deactivation ({log_path})')
            published = int(recorder.result.diagnostics.get('frames_published', 0))
            recorder.spin_until(lambda: len(recorder.result.masks) >= published, 10.0)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
            recorder.node.destroy_node()
            if owns_context:
                rclpy.shutdown()
    recorder.result.node_log = str(log_path)
    return recorder.result


def write_result(result: DdsReplayResult, out: Path) -> None:
    """Write masks as PNG, the trajectory as TUM and the static map as npz under ``out``."""
    import cv2

    from vggt4d_ros.geometry.rotation import quaternion_xyzw_from_rotation

    (out / 'masks').mkdir(parents=True, exist_ok=True)
    for stamp, mask in result.masks.items():
        cv2.imwrite(str(out / 'masks' / f'{stamp}.png'), mask)
    lines = []
    for stamp, pose in sorted(result.poses.items()):
        seconds, nanos = divmod(stamp, 1_000_000_000)
        values = [*pose[:3, 3], *quaternion_xyzw_from_rotation(pose[:3, :3])]
        lines.append(f'{seconds}.{nanos:09d} ' + ' '.join(f'{v:.9f}' for v in values))
    (out / 'trajectory.tum').write_text('\n'.join(lines) + ('\n' if lines else ''))
    if result.static_map is not None:
        np.savez_compressed(out / 'static_map.npz', points=result.static_map[0],
                            colors=result.static_map[1])


def write_summary(result: DdsReplayResult, out: Path) -> None:
    """``summary.json``: frames sent and the node's last diagnostics."""
    out.mkdir(parents=True, exist_ok=True)
    (out / 'summary.json').write_text(json.dumps({
        'frames_sent': result.frames_sent, 'diagnostics': result.diagnostics,
        'node_log': result.node_log}, indent=2))


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring); exit 3 when the node failed."""
    parser = argparse.ArgumentParser(description='Replay a bag through the node over DDS.')
    parser.add_argument('bag', type=Path)
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--image-topic', default=None)
    parser.add_argument('--params', type=Path, default=None,
                        help='node parameter file (its vggt4d and /** sections apply)')
    parser.add_argument('-p', '--param', action='append', default=[],
                        help='node parameter name:=value (YAML value), repeatable')
    parser.add_argument('--timeout', type=float, default=600.0)
    parser.add_argument('--log', type=Path, default=None, help='node log file')
    parser.add_argument('--dds-profile', type=Path, default=None,
                        help='Fast DDS XML profile for the driver and the node')
    parser.add_argument('--wall-time', action='store_true',
                        help='run the node on wall time (no use_sim_time, no /clock)')
    args = parser.parse_args(argv)
    import yaml

    params = load_parameter_file(args.params) if args.params is not None else {}
    for item in args.param:
        name, _, value = item.partition(':=')
        params[name] = yaml.safe_load(value) if value else ''
    if args.dds_profile is not None:
        os.environ.update(dds_environment(profile=args.dds_profile.resolve()))
    try:
        result = replay_bag_through_node(args.bag, args.image_topic, params, args.timeout,
                                         log_path=args.log, sim_time=not args.wall_time)
    except RuntimeError as error:
        print(f'dds_replay: {error}', file=sys.stderr)
        return 3
    write_result(result, args.out)
    write_summary(result, args.out)
    print(f'sent {result.frames_sent} frames, got {len(result.masks)} masks and '
          f'{len(result.poses)} poses; dropped_total={result.diagnostics.get("dropped_total")}'
          f'; outputs in {args.out}; node log {result.node_log}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
