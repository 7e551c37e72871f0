# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Benchmark the ROS node end to end: a camera stream in, masks out, over real DDS.

This process publishes a synthetic camera stream (default 640x480 rgb8 at 30 fps, stamped with
the wall clock at publish time) and subscribes to the node's masks and /diagnostics; the node
runs in its own process. Printed as a markdown table: sent and sustained input rate (frames the
node accepted), output rate (masks), image-to-mask latency p50/p95/max (mask arrival minus
image stamp, one host so one clock) and the drop counters.

The latency is split where rclpy hands out DDS message info (Iron and later; one host, so the
system clocks agree): image stamp -> node's image callback (``input_delay``; of that, DDS
receive -> callback, ``input_wait``) -> node's mask publish (DDS source timestamp) -> peer's
DDS receive (mask transit) -> peer's callback (peer wait). The node's own arrival-to-publish
latency comes from its /diagnostics.

GPU (full model, random weights, CUDA)::

    python -m vggt4d_ros.tools.bench_node --config full --device cuda --duration 30

The planner outputs (``perception.*``, on by default) run after the masks and the mapper, on
the engine's output thread (``output_stage.run_async``, default) or on the worker (``--param
output_stage.run_async:=false``); ``--planner-subscribers`` makes this process listen to them
(as a Nav2 stack would) and ``--param perception.enabled:=false`` gives the baseline without
them. The table then shows the node's perception time, the worker's wait for the output
thread and the publishing time per message kind (masks on the worker; TF, static cloud and
the planner messages where ``window_mapped`` runs)::

    python -m vggt4d_ros.tools.bench_node --config full --device cuda --duration 30 \
        --planner-subscribers
    python -m vggt4d_ros.tools.bench_node --config full --device cuda --duration 30 \
        --planner-subscribers --param output_stage.run_async:=false

CPU smoke test::

    python -m vggt4d_ros.tools.bench_node --config tiny --device cpu --width 80 --height 64 \
        --fps 10 --duration 8

Node overhead without a model (CPU, no GPU): a test backend from test/ros/fake_backends.py that
holds the GIL in Python for 0.1 s per window, with Python's default GIL switch interval vs a
shorter one (node parameter ``gil_switch_interval_ms``)::

    python -m vggt4d_ros.tools.bench_node --backend fake_backends:make_busy_plane \
        --backend-path test/ros --duration 20 --param gil_switch_interval_ms:=0.0
    python -m vggt4d_ros.tools.bench_node --backend fake_backends:make_busy_plane \
        --backend-path test/ros --duration 20 --param gil_switch_interval_ms:=1.0

A rig of two 640x480 cameras at 30 fps (``image_topics``, docs/ros.md; both cameras publish
each step with one stamp, a hardware-synchronised pair; windows of 8 images = 4 steps x 2)::

    python -m vggt4d_ros.tools.bench_node --config full --device cuda --duration 30 --cameras 2

Rates are then per camera (steps per second) and the latencies cover both cameras' masks.

Goal on an H200: >= 30 fps input sustained with window 8 / stride >= 4 and p95 <= 250 ms. The
node runs without tf2_msgs (then it publishes no TF), so the bench needs only rclpy, the
message packages and torch.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from vggt4d_ros.runtime.parameters import replay_window_parameters
from vggt4d_ros.tools.dds_replay import dds_environment


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', choices=('full', 'tiny'), default='full')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--dtype', default='auto')
    parser.add_argument('--weights', default='', help='checkpoint; empty: random weights')
    parser.add_argument('--dds-profile', type=Path, default=None,
                        help='Fast DDS XML profile (e.g. ci/fastdds_ci_shm.xml)')
    parser.add_argument('--backend', default='',
                        help='backend_factory "module:function" instead of VGGT4D (e.g. '
                        'fake_backends:make_busy_plane with --backend-path test/ros)')
    parser.add_argument('--backend-path', default='',
                        help='directory put first on the PYTHONPATH of the node (for --backend)')
    parser.add_argument('--weights-dtype', choices=('float32', 'compute'), default='float32',
                        help='compute: cast the weights to the compute dtype (faster)')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--fps', type=float, default=30.0, help='per camera')
    parser.add_argument('--cameras', type=int, default=1, choices=(1, 2, 3, 4),
                        help='2-4: a rig on /cam<i>/image_raw (node parameter image_topics)')
    parser.add_argument('--duration', type=float, default=30.0, help='seconds of streaming')
    parser.add_argument('--window', type=int, default=8)
    parser.add_argument('--stride', type=int, default=4)
    parser.add_argument('--mode', choices=('live', 'replay'), default='live')
    parser.add_argument('--gate', action='store_true',
                        help='keep the keyframe gate (default: every frame is a keyframe)')
    parser.add_argument('--no-refine', action='store_true', help='pipeline.refine_enabled=false')
    parser.add_argument('--startup-timeout', type=float, default=600.0)
    parser.add_argument('--param', action='append', default=[],
                        help='extra node parameter NAME:=VALUE (repeatable)')
    parser.add_argument('--log', default='', help='node log file (default: a temp file)')
    parser.add_argument('--series', default='',
                        help="write every mask's stamp and latency to this CSV file")
    parser.add_argument('--planner-subscribers', action='store_true',
                        help='also subscribe to the planner outputs (dynamic cloud, grids, '
                             'obstacles, detections, markers), as a Nav2 stack would: the node '
                             'builds those messages only while someone listens')
    return parser.parse_args(argv)


def node_command(args: argparse.Namespace) -> list[str]:
    params = {
        'model_config': args.config, 'device': args.device, 'dtype': args.dtype,
        'weights_dtype': args.weights_dtype,
        'weights': args.weights, 'allow_random_weights': 'true' if not args.weights else 'false',
        'mode': args.mode, 'input_qos': 'reliable', 'queue_size': 2 * args.stride,
        'warmup_height': args.height, 'warmup_width': args.width,
        'window.window_size': args.window, 'window.stride': args.stride,
        'window.max_queued_frames': max(args.stride, 8), 'publish_overlay': 'false',
        'diagnostics_period_s': 0.5,
    }
    if not args.gate:
        params.update(replay_window_parameters(include_mode=False))
    if args.no_refine:
        params['pipeline.refine_enabled'] = 'false'
    if args.backend:
        params['backend_factory'] = args.backend
    if args.cameras > 1:
        params['image_topics'] = '[' + ','.join(camera_topics(args.cameras)) + ']'
    command = [sys.executable, '-m', 'vggt4d_ros.ros.node', '--ros-args']
    for key, value in params.items():
        command += ['-p', f"{key}:={value if value != '' else repr('')}"]
    for extra in args.param:
        command += ['-p', extra]
    return command


def camera_topics(cameras: int) -> list[str]:
    """Image topics of the benchmark's cameras (one camera: the node's default topic)."""
    if cameras == 1:
        return ['/camera/image_raw']
    return [f'/cam{index}/image_raw' for index in range(cameras)]


def mask_topics(cameras: int) -> list[str]:
    """List the node's mask topics for the benchmark's cameras."""
    if cameras == 1:
        return ['/vggt4d/dynamic_mask']
    return [f'/vggt4d/cam{index}/dynamic_mask' for index in range(cameras)]


def camera_frames(height: int, width: int, count: int = 30) -> list[np.ndarray]:
    """Return frames of a textured scene panning right by 4 pixels per frame (cycled)."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height, width + 4 * count, 3), dtype=np.uint8)
    return [np.ascontiguousarray(texture[:, 4 * i:4 * i + width]) for i in range(count)]


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1e3) if values else float('nan')


#: The node's latency meters keep this many values (vggt4d_ros.ros.stats.LatencyMeter).
NODE_SAMPLE = 500


def p50_p95(values: list[float], last: int | None = NODE_SAMPLE) -> str:
    """'p50 / p95' in milliseconds of a list of seconds (of its ``last`` values).

    The default compares like with like: the node reports over its last 500 values, so the
    first windows after warm-up (often slower) drop out of both.
    """
    values = values[-last:] if last else values
    return f'{percentile_ms(values, 50):.1f} / {percentile_ms(values, 95):.1f}'


class MaskTiming:
    """Per received mask: stamp -> node publish -> peer DDS receive -> peer callback (seconds).

    The split needs rmw's message info (a two-argument callback, rclpy Iron and later); with
    Humble's rclpy only the total is recorded.
    """

    def __init__(self) -> None:
        self.total: list[float] = []
        self.stamps_ns: list[int] = []
        self.node_side: list[float] = []  # image stamp -> mask DDS source timestamp
        self.transit: list[float] = []  # mask source timestamp -> peer DDS receive
        self.peer_wait: list[float] = []  # peer DDS receive -> peer callback

    def write_series(self, path: str) -> None:
        """CSV of every mask in arrival order: image stamp (s from the first) and latency."""
        first = self.stamps_ns[0] if self.stamps_ns else 0
        with open(path, 'w') as out:
            out.write('stamp_s,latency_ms\n')
            for stamp_ns, latency in zip(self.stamps_ns, self.total):
                out.write(f'{(stamp_ns - first) * 1e-9:.4f},{latency * 1e3:.2f}\n')

    def add(self, msg, info: dict | None) -> None:
        now_ns = time.time_ns()
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.total.append((now_ns - stamp_ns) * 1e-9)
        self.stamps_ns.append(stamp_ns)
        source_ns = info.get('source_timestamp', 0) if info else 0
        received_ns = info.get('received_timestamp', 0) if info else 0
        if source_ns > 0 and received_ns > 0:
            self.node_side.append((source_ns - stamp_ns) * 1e-9)
            self.transit.append((received_ns - source_ns) * 1e-9)
            self.peer_wait.append((now_ns - received_ns) * 1e-9)


def _per_frame(values: dict[str, str], name: str) -> str:
    """Return a counter of the node's diagnostics per perceived frame ('-': none)."""
    frames = int(values.get('perception_frames', '0') or 0)
    if name not in values or not frames:
        return '-'
    return f'{int(values[name]) / frames:.1f}'


def _node_p50_p95(values: dict[str, str], name: str) -> str:
    """'p50 / p95' of a node diagnostics pair ``<name>_p50_ms``, ``<name>_p95_ms``."""
    return f'{values.get(f"{name}_p50_ms", "?")} / {values.get(f"{name}_p95_ms", "?")}'


def _publish_kinds(values: dict[str, str]) -> list[str]:
    """Message kinds the node timed (``publish_<kind>_p50_ms`` in its diagnostics)."""
    return sorted(key[len('publish_'):-len('_p50_ms')] for key in values
                  if key.startswith('publish_') and key.endswith('_p50_ms')
                  and key != 'publish_time_p50_ms')


def _subscribe_planner_outputs(peer, qos) -> dict[str, list[int]]:
    """Subscribe to the node's planner outputs, counting messages per topic."""
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import PointCloud2
    from visualization_msgs.msg import MarkerArray

    from vggt4d_ros.ros.perception_msgs import detection_array_type
    from vggt4d_ros.ros.perception_msgs import obstacle_array_type

    topics = {'/vggt4d/dynamic_cloud': PointCloud2, '/vggt4d/combined_grid': OccupancyGrid,
              '/vggt4d/dynamic_grid': OccupancyGrid, '/vggt4d/track_markers': MarkerArray}
    for topic, type_of in (('/vggt4d/detections', detection_array_type),
                           ('/vggt4d/obstacles', obstacle_array_type)):
        try:
            topics[topic] = type_of()
        except ImportError as error:
            print(f'not subscribing to {topic}: {error}', file=sys.stderr)
    counts: dict[str, list[int]] = {}
    for topic, msg_type in topics.items():
        counter = counts.setdefault(topic, [0])
        peer.create_subscription(msg_type, topic,
                                 lambda _msg, c=counter: c.__setitem__(0, c[0] + 1), qos)
    return counts


def run(args: argparse.Namespace) -> dict[str, float | str]:
    env = dds_environment(profile=args.dds_profile)
    os.environ.update({k: v for k, v in env.items() if k.startswith(('FAST', 'ROS_'))})
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile
    from rclpy.qos import ReliabilityPolicy
    from rclpy.subscription import Subscription
    from sensor_msgs.msg import Image

    # Two-argument callbacks get rmw's MessageInfo on rclpy >= Iron (as in ros/node.py).
    has_message_info = hasattr(Subscription, 'CallbackType')

    log_path = Path(args.log or tempfile.mktemp(prefix='vggt4d_bench_node_', suffix='.log'))
    log = open(log_path, 'w')
    if args.backend_path:
        env['PYTHONPATH'] = os.pathsep.join(
            [str(Path(args.backend_path).resolve())]
            + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    node_process = subprocess.Popen(node_command(args), stdout=log, stderr=subprocess.STDOUT,
                                    env=env)
    rclpy.init()
    peer = rclpy.create_node('vggt4d_bench')
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    publishers = [peer.create_publisher(Image, topic, reliable)
                  for topic in camera_topics(args.cameras)]
    timing = MaskTiming()
    latencies = timing.total
    publish_calls: list[float] = []
    diagnostics: list = []

    def on_mask_info(msg: Image, info: dict) -> None:
        timing.add(msg, info)

    def on_mask(msg: Image) -> None:
        timing.add(msg, None)

    for topic in mask_topics(args.cameras):
        peer.create_subscription(Image, topic, on_mask_info if has_message_info else on_mask,
                                 reliable)
    peer.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
    planner_messages = _subscribe_planner_outputs(peer, reliable) if args.planner_subscribers \
        else {}
    try:
        start = time.monotonic()
        while min(p.get_subscription_count() for p in publishers) == 0:
            if node_process.poll() is not None or time.monotonic() - start > args.startup_timeout:
                raise RuntimeError(f'node did not start; see {log_path}')
            rclpy.spin_once(peer, timeout_sec=0.1)
        startup_s = time.monotonic() - start
        frames = camera_frames(args.height, args.width)
        messages = []  # [camera][frame]; other cameras see the texture shifted
        for camera in range(args.cameras):
            row = []
            for index in range(len(frames)):
                pixels = frames[(index + 7 * camera) % len(frames)]
                msg = Image(height=args.height, width=args.width, encoding='rgb8',
                            step=args.width * 3, data=pixels.tobytes())
                msg.header.frame_id = f'bench_camera{camera}_optical'
                row.append(msg)
            messages.append(row)
        sent = 0
        begin = time.monotonic()
        while time.monotonic() - begin < args.duration:
            due = begin + sent / args.fps
            while time.monotonic() < due:
                rclpy.spin_once(peer, timeout_sec=max(0.0, due - time.monotonic()))
            now_ns = time.time_ns()
            for publisher, row in zip(publishers, messages):
                msg = row[sent % len(row)]
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
                publisher.publish(msg)
            publish_calls.append((time.time_ns() - now_ns) * 1e-9)
            sent += 1
        stream_s = time.monotonic() - begin
        masks_in_stream = len(latencies)
        drain_end = time.monotonic() + 5.0
        while time.monotonic() < drain_end:
            rclpy.spin_once(peer, timeout_sec=0.05)
        if args.series:
            timing.write_series(args.series)
        values = {}
        if diagnostics:
            values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
        received = int(values.get('frames_received', '0')) / args.cameras
        return {
            'model': (args.backend if args.backend else
                      f'{args.config} ({"weights" if args.weights else "random weights"})'),
            'device / dtype': values.get('backend', '?').split(' on ')[-1],
            'image': f'{args.width}x{args.height} rgb8',
            'cameras': str(args.cameras),
            'window / stride': f'{args.window} / {args.stride}',
            'startup (load + warm-up) s': f'{startup_s:.1f}',
            'sent fps': f'{sent / stream_s:.1f}',
            'input fps (node accepted, per camera)': f'{received / stream_s:.1f}',
            'output fps (masks per camera)': f'{masks_in_stream / args.cameras / stream_s:.1f}',
            'latency p50 ms': f'{percentile_ms(latencies, 50):.0f}',
            'latency p95 ms': f'{percentile_ms(latencies, 95):.0f}',
            'latency max ms': f'{max(latencies) * 1e3:.0f}' if latencies else 'nan',
            f'latency p50 / p95 ms, last {NODE_SAMPLE} masks': p50_p95(latencies),
            'node latency p50 / p95 ms (arrival to mask)': _node_p50_p95(values, 'latency'),
            f'split p50 / p95 ms (last {NODE_SAMPLE}): peer publish() call': p50_p95(
                publish_calls),
            'split: stamp -> node image callback (node)': _node_p50_p95(values, 'input_delay'),
            'split: of that, DDS receive -> node callback': _node_p50_p95(values, 'input_wait'),
            'split: stamp -> mask DDS publish': p50_p95(timing.node_side),
            'split: mask transit (publish -> peer DDS receive)': p50_p95(timing.transit),
            'split: peer DDS receive -> peer callback': p50_p95(timing.peer_wait),
            'node window time p50 ms (worker: VGGT4D + mapper, + perception in line)': values.get(
                'window_time_p50_ms', '?'),
            'node window time p95 ms': values.get('window_time_p95_ms', '?'),
            'node publish time p50 / p95 ms per window': _node_p50_p95(values, 'publish_time'),
            'node perception time p50 / p95 ms per window': _node_p50_p95(
                values, 'perception_time'),
            'node worker wait for the output thread p50 / p95 ms': _node_p50_p95(
                values, 'stage_wait'),
            'node detections per frame / tracks confirmed (perception counters)': (
                _per_frame(values, 'perception_detections') + ' / '
                + values.get('tracks_confirmed', '-')),
            **{f'node publish {kind} p50 / p95 ms per window': _node_p50_p95(
                values, f'publish_{kind}') for kind in _publish_kinds(values)},
            'masks / frames sent': f'{len(latencies)} / {sent * args.cameras}',
            **({'planner messages received': ', '.join(
                f'{topic.rsplit("/", 1)[-1]} {count[0]}'
                for topic, count in planner_messages.items())} if planner_messages else {}),
            'dropped (queue / window)': (f'{values.get("dropped_queue", "?")} / '
                                         f'{values.get("dropped_window", "?")}'),
            'node log': str(log_path),
        }
    finally:
        node_process.send_signal(signal.SIGINT)
        try:
            node_process.wait(30)
        except subprocess.TimeoutExpired:
            node_process.kill()
        log.close()
        peer.destroy_node()
        rclpy.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the markdown table; returns a process exit code."""
    args = parse_args(argv)
    results = run(args)
    print('| metric | value |\n|---|---|')
    for key, value in results.items():
        print(f'| {key} | {value} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
