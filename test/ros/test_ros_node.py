# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node over real Fast DDS: node in a subprocess, this process as the test peer.

Plumbing tests use an analytic window backend (test/ros/fake_backends.py, loaded in the node
through the backend_factory parameter); test_ros_model.py runs the real tiny VGGT4D model.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from nav_msgs.msg import Path  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from waiting import LoadScaledDeadline  # noqa: E402

from vggt4d_ros.ros.conversions import cloud_to_numpy  # noqa: E402
from vggt4d_ros.ros.conversions import stamp_to_ns  # noqa: E402
from vggt4d_ros.ros.outputs import header_at  # noqa: E402

HEIGHT, WIDTH = 64, 80
T0_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
#: Per-try wait (idle machine, load-scaled) of a service handshake: an answer takes ~0.1 s.
PROBE_TRY_S = 2.0
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Every frame is a keyframe, windows of 4 frames advancing by 2: small and fast.
FAST_WINDOWS = {
    'window.window_size': 4, 'window.stride': 2, 'window.max_queued_frames': 4,
    'window.min_parallax_px': 0.0, 'window.max_keyframe_interval_s': 0.0,
    'mapper.min_align_points': 20, 'warmup_height': HEIGHT, 'warmup_width': WIDTH,
    'map_period_s': 0.0,
}


def synthetic_rgb(index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A textured frame that shifts by two pixels per index."""
    rows, cols = np.mgrid[0:height, 0:width]
    phase = cols + 2 * index
    image = np.stack([(phase * 7) % 256, (rows * 5) % 256, ((phase + rows) * 3) % 256], -1)
    return image.astype(np.uint8)


def image_msg(index: int, encoding: str = 'rgb8', stamp_ns: int | None = None,
              size: tuple[int, int] = (HEIGHT, WIDTH)) -> Image:
    stamp_ns = T0_NS + index * PERIOD_NS if stamp_ns is None else stamp_ns
    pixels = synthetic_rgb(index, *size)
    if encoding == 'bgr8':
        pixels = np.ascontiguousarray(pixels[..., ::-1])
    return Image(header=header_at(stamp_ns, 'test_cam'), height=size[0], width=size[1],
                 encoding=encoding, step=size[1] * 3, data=pixels.tobytes())


def stamps_of(messages) -> list[int]:
    return [stamp_to_ns(msg.header.stamp) for msg in messages]


def last_status(diagnostics: list) -> tuple[bytes, dict[str, str]]:
    status = diagnostics[-1].status[0]
    return status.level, {kv.key: kv.value for kv in status.values}


def call_service(peer, srv_type, name: str, request, timeout_s: float = 40.0,
                 per_try_s: float = 5.0, probe=None):
    """Call a service from the peer and return the response (fails the test on timeout).

    ``service_is_ready`` only says that this client has matched the server. The server's DDS
    layer drops a response while it has not matched this client's response reader yet (it
    waits ~0.1 s for it), so right after discovery on a busy machine a response can be lost
    even though the server ran the request. So first an idempotent request is repeated, on a
    short per-try timeout, until one is answered: ``probe`` when given (for a request that
    must not run twice: a lifecycle transition is applied even when its response is lost),
    else ``request`` itself. Once a response has come through, this client's responses
    arrive, and ``request`` is sent once with up to ``per_try_s`` (load-scaled) to answer.
    """
    client = peer.node.create_client(srv_type, name)
    try:
        assert peer.spin_until(client.service_is_ready, timeout_s), f'{name} not available'
        deadline = LoadScaledDeadline(timeout_s)
        handshake = request if probe is None else probe
        while True:
            future = client.call_async(handshake)
            if peer.spin_until(future.done, min(per_try_s, PROBE_TRY_S)):
                break
            if deadline.expired():
                pytest.fail(f'no response from {name} within {timeout_s} s')
        if probe is None:
            return future.result()
        future = client.call_async(request)
        assert peer.spin_until(future.done, per_try_s), f'no response from {name}'
        return future.result()
    finally:
        peer.node.destroy_client(client)


def stop_cleanly(node, sig=signal.SIGINT) -> None:
    code = node.stop(sig)
    log = node.log()
    assert code == 0, log
    assert 'Traceback' not in log, log


def test_replay_stream_produces_every_output(peer, start_node):
    node = start_node({'backend_factory': 'fake_backends:make_plane', 'mode': 'replay',
                       'publish_overlay': True, **FAST_WINDOWS})
    masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
    overlays = peer.collect(Image, '/vggt4d/mask_overlay', RELIABLE)
    odometry = peer.collect(Odometry, '/vggt4d/odometry', RELIABLE)
    paths = peer.collect(Path, '/vggt4d/path', RELIABLE)
    windows = peer.collect(PointCloud2, '/vggt4d/window_cloud', RELIABLE)
    from tf2_msgs.msg import TFMessage
    tf = peer.collect(TFMessage, '/tf', QoSProfile(depth=100))
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(publisher), node.log()
    sent = [image_msg(i, 'bgr8' if i % 3 == 0 else 'rgb8') for i in range(12)]
    for msg in sent:
        publisher.publish(msg)

    def all_outputs() -> bool:
        counts = [len(masks), len(overlays), len(odometry), len(tf)]
        return min(counts) >= 12 and len(windows) >= 5 and len(paths) >= 5

    assert peer.spin_until(all_outputs, 60), node.log()

    assert stamps_of(masks) == stamps_of(sent)  # every frame once, in order, own stamp
    for mask in masks:
        assert (mask.height, mask.width, mask.encoding, mask.header.frame_id) == (
            HEIGHT, WIDTH, 'mono8', 'test_cam')
        pixels = np.frombuffer(bytes(mask.data), np.uint8).reshape(HEIGHT, WIDTH)
        assert set(np.unique(pixels)) <= {0, 255}
        assert pixels[:8, :8].min() == 255 and pixels[-8:, -8:].max() == 0  # fake: UL quarter
    assert stamps_of(overlays) == stamps_of(sent)
    assert overlays[0].encoding == 'rgb8'

    transforms = [t for message in tf for t in message.transforms]
    assert [stamp_to_ns(t.header.stamp) for t in transforms] == stamps_of(sent)
    assert {(t.header.frame_id, t.child_frame_id) for t in transforms} == {('map', 'test_cam')}
    # The fake camera slides along optical +x (right), i.e. along -y of the ROS map.
    ys = [t.transform.translation.y for t in transforms]
    assert ys[0] == pytest.approx(0.0, abs=1e-6) and ys[-1] < -0.1
    assert all(b < a + 1e-6 for a, b in zip(ys, ys[1:]))
    xs = [t.transform.translation.x for t in transforms]
    assert max(abs(x) for x in xs) < 1e-3

    assert stamps_of(odometry) == stamps_of(sent)
    assert odometry[-1].header.frame_id == 'map' and odometry[-1].child_frame_id == 'test_cam'
    assert odometry[-1].twist.twist.linear.x > 0  # optical x, the child frame's right
    assert len(paths[-1].poses) == 12 and paths[-1].header.frame_id == 'map'
    assert stamps_of(paths[-1].poses) == stamps_of(sent)
    assert windows and windows[-1].header.frame_id == 'map'

    # A late subscriber still gets the latched static map (RELIABLE + TRANSIENT_LOCAL).
    static_map = peer.collect(PointCloud2, '/vggt4d/static_map', LATCHED)
    assert peer.spin_until(lambda: static_map, 20), node.log()
    cloud = static_map[-1]
    assert cloud.header.frame_id == 'map' and cloud.point_step == 16 and cloud.is_dense
    assert stamp_to_ns(cloud.header.stamp) in stamps_of(sent)
    points, colors = cloud_to_numpy(cloud)
    assert len(points) > 50 and np.isfinite(points).all()
    # The fake plane is 2 units in front of the first camera: x ~ 2 in the map (ROS axes).
    assert np.median(points[:, 0]) == pytest.approx(2.0, rel=0.05)
    assert colors.std() > 0

    info = peer.node.get_publishers_info_by_topic('/tf')
    assert info and info[0].topic_type == 'tf2_msgs/msg/TFMessage'
    assert info[0].qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert info[0].qos_profile.durability == DurabilityPolicy.VOLATILE
    stop_cleanly(node, signal.SIGTERM)


def test_live_overload_drops_and_reports_in_diagnostics(peer, start_node):
    node = start_node({'backend_factory': 'fake_backends:make_slow_plane', 'mode': 'live',
                       'queue_size': 2, 'input_qos': 'reliable', 'input_depth': 50,
                       'diagnostics_period_s': 0.2,
                       **FAST_WINDOWS})
    masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics', RELIABLE)
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(publisher), node.log()
    for index in range(40):
        publisher.publish(image_msg(index))
        peer.spin_for(0.02)

    def reported_drops() -> bool:
        if not diagnostics:
            return False
        _, values = last_status(diagnostics)
        return int(values.get('dropped_total', 0)) > 0 and values['frames_received'] == '40'

    assert peer.spin_until(reported_drops, 30), node.log()
    level, values = last_status(diagnostics)
    assert level == DiagnosticStatus.WARN
    assert diagnostics[-1].status[0].name == 'vggt4d: vggt4d'
    assert int(values['dropped_queue']) + int(values['dropped_window']) == int(
        values['dropped_total'])
    assert values['state'] == 'active' and float(values['input_rate_hz']) > 0
    assert peer.spin_until(lambda: masks, 30), node.log()
    assert len(masks) < 40
    assert stamps_of(masks) == sorted(set(stamps_of(masks)))  # never a frame twice
    stop_cleanly(node)


def test_live_mode_skips_a_backlog_to_the_freshest_frames(peer, start_node, tmp_path,
                                                          monkeypatch):
    # The input queue holds every frame, so nothing drops there. Fed frame by frame, the node
    # would work through all 30 frames, 0.4 s per window, each mask older than the last; live
    # mode must instead hand the whole backlog to the window manager, which keeps the freshest.
    # The backend holds the first window until all 30 frames are in the node, so the backlog
    # is the same on an idle and on a loaded machine (no race with the frames' arrival).
    gate = tmp_path / 'release_first_window'
    monkeypatch.setenv('VGGT4D_FAKE_GATE', str(gate))
    node = start_node({'backend_factory': 'fake_backends:make_gated_slow_plane', 'mode': 'live',
                       'queue_size': 64, 'input_qos': 'reliable', 'input_depth': 64,
                       'diagnostics_period_s': 0.2, 'warmup': False, **FAST_WINDOWS})
    masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics', RELIABLE)
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(publisher), node.log()
    sent = [image_msg(index) for index in range(30)]
    window = FAST_WINDOWS['window.window_size']
    stride = FAST_WINDOWS['window.stride']
    for msg in sent[:window]:
        publisher.publish(msg)
    held = tmp_path / 'release_first_window.held'
    assert peer.spin_until(held.exists, 60), node.log()  # frames 0-3 are in the backend
    for msg in sent[window:]:
        publisher.publish(msg)

    def received(count: int) -> bool:
        return bool(diagnostics) and last_status(diagnostics)[1]['frames_received'] == str(count)

    assert peer.spin_until(lambda: received(30), 60), (diagnostics[-1:], node.log())
    assert not masks  # the first window (frames 0-3) is still held in the backend
    gate.touch()
    # First window: frames 0-3. Then the backlog 4-29 at once: the window manager keeps the
    # newest max_queued_frames and takes the newest stride of them, 28 and 29.
    expected = stamps_of(sent[:window] + sent[-stride:])
    assert peer.spin_until(lambda: stamps_of(masks) == expected, 60), (
        stamps_of(masks), node.log())

    def counted() -> bool:
        values = last_status(diagnostics)[1]
        return values['dropped_window'] == str(30 - len(expected))

    assert peer.spin_until(counted, 30), (diagnostics[-1:], node.log())
    values = last_status(diagnostics)[1]
    assert values['frames_received'] == '30' and values['dropped_queue'] == '0'
    peer.spin_for(0.5)
    assert stamps_of(masks) == expected  # nothing after the freshest window
    # The first window's stage times are logged once (what the warm-up missed shows there).
    assert node.log().count('first window after activation, ms: total 400') == 1, node.log()
    stop_cleanly(node)


def test_warm_up_runs_on_the_worker_thread_that_runs_live_windows(peer, start_node):
    # torch keeps cuBLAS/cuDNN handles and attention plans per thread: a warm-up on another
    # thread leaves the first live window to build them again.
    node = start_node({'backend_factory': 'fake_backends:make_thread_reporting_plane',
                       'mode': 'replay', **FAST_WINDOWS})
    masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(publisher), node.log()
    for index in range(6):
        publisher.publish(image_msg(index))
    assert peer.spin_until(lambda: len(masks) >= 6, 20), node.log()  # two live windows
    threads = [line.split('window on thread ')[1].strip()
               for line in node.log().splitlines() if 'window on thread ' in line]
    assert len(threads) >= 2 + 2, node.log()  # two warm-up windows, then the live ones
    assert set(threads) == {'vggt4d_worker'}, threads
    assert 'warm-up took' in node.log()
    stop_cleanly(node)


def test_bad_inputs_have_defined_behaviour(peer, start_node):
    node = start_node({'backend_factory': 'fake_backends:make_plane', 'mode': 'replay',
                       'diagnostics_period_s': 0.2, **FAST_WINDOWS})
    masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics', RELIABLE)
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(publisher), node.log()
    for index in range(6):
        publisher.publish(image_msg(index))
    for index in range(3):  # unsupported encoding: dropped, ONE warning, counted
        publisher.publish(Image(header=header_at(T0_NS + 10**9 * (20 + index), 'test_cam'),
                                height=4, width=4, encoding='yuv422', step=8, data=bytes(32)))
    for index in range(6, 10):  # size change mid-stream: reset and carry on
        publisher.publish(image_msg(index, size=(48, 64)))
    for index in range(4):  # stamps backwards (bag loop): reset and carry on
        publisher.publish(image_msg(index, stamp_ns=T0_NS - 10**9 + index * PERIOD_NS))
    assert peer.spin_until(lambda: len(masks) >= 12, 60), node.log()

    sizes = [(m.height, m.width) for m in masks]
    assert sizes[:6] == [(HEIGHT, WIDTH)] * 6 and sizes[6:10] == [(48, 64)] * 4
    assert stamps_of(masks)[10:] == [T0_NS - 10**9 + i * PERIOD_NS for i in range(2)]
    log = node.log()
    assert log.count("unsupported encoding 'yuv422'") == 1
    assert 'image size changed' in log and 'stamps went backwards' in log

    def counted() -> bool:
        # Diagnostics and masks are separate topics: a status published before the worker
        # reached the resets may arrive after the masks, so wait for one that has both.
        if not diagnostics:
            return False
        values = last_status(diagnostics)[1]
        return values['rejected_encoding'] == '3' and values['resets_input'] == '2'

    assert peer.spin_until(counted, 10), (diagnostics[-1:], node.log())
    assert node.alive()
    stop_cleanly(node)


def test_compressed_input_decodes_and_counts_garbage(peer, start_node):
    import cv2

    node = start_node({'backend_factory': 'fake_backends:make_plane', 'mode': 'replay',
                       'compressed': True, 'image_topic': '/camera/image_raw/compressed',
                       'camera_info_topic': '/camera/camera_info',
                       'diagnostics_period_s': 0.2, **FAST_WINDOWS})
    masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics', RELIABLE)
    publisher = peer.node.create_publisher(CompressedImage, '/camera/image_raw/compressed',
                                           RELIABLE)
    assert peer.wait_for_subscriber(publisher), node.log()
    info_publisher = peer.node.create_publisher(CameraInfo, '/camera/camera_info', RELIABLE)
    assert peer.wait_for_subscriber(info_publisher), node.log()
    for index in range(6):
        if index == 2:
            publisher.publish(CompressedImage(header=header_at(T0_NS + 5, 'test_cam'),
                                              format='jpeg', data=b'\xff\xd8 garbage'))
        ok, png = cv2.imencode('.png', synthetic_rgb(index)[..., ::-1])
        assert ok
        publisher.publish(CompressedImage(header=header_at(T0_NS + index * PERIOD_NS,
                                                           'test_cam'),
                                          format='png', data=png.tobytes()))
    assert peer.spin_until(lambda: len(masks) >= 6, 60), node.log()
    assert stamps_of(masks) == [T0_NS + i * PERIOD_NS for i in range(6)]

    def counted_and_cached() -> bool:
        # Like a camera driver, keep publishing CameraInfo: the subscription is best effort
        # and may still miss samples right after discovery.
        info_publisher.publish(CameraInfo(header=header_at(T0_NS, 'test_cam'), height=HEIGHT,
                                          width=WIDTH))
        if not diagnostics:
            return False
        values = last_status(diagnostics)[1]
        return values['decode_errors'] == '1' and values['camera_info_received'] == 'true'

    assert peer.spin_until(counted_and_cached, 10), last_status(diagnostics)
    assert 'dropping undecodable image' in node.log()
    stop_cleanly(node)


def assert_activate_fails(peer, start_node, params: dict, reason: str) -> str:
    """Start a node that must fail activate with ``reason``, stay alive and say so; its log."""
    from lifecycle_msgs.srv import GetState

    node = start_node({**params, 'diagnostics_period_s': 0.2})
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics', RELIABLE)
    assert node.wait_for_log('activate failed', 60), node.log()
    response = call_service(peer, GetState, '/vggt4d/get_state', GetState.Request())
    assert response.current_state.label == 'inactive'
    assert peer.spin_until(lambda: bool(diagnostics), 10)
    level, values = last_status(diagnostics)
    assert level == DiagnosticStatus.ERROR and reason in values['last_error']
    assert node.alive()
    log = node.log()
    stop_cleanly(node, signal.SIGTERM)
    return log


def test_missing_weights_fail_activate_and_keep_node_alive(peer, start_node, tmp_path):
    missing = tmp_path / 'no_such_checkpoint.pt'
    log = assert_activate_fails(peer, start_node, {'weights': str(missing),
                                                   'model_config': 'tiny', 'device': 'cpu'},
                                'checkpoint file not found')
    assert str(missing) in log


def test_failed_warm_up_fails_activate_and_keeps_node_alive(peer, start_node):
    # The warm-up runs on the worker thread; its failure must still fail the transition.
    assert_activate_fails(peer, start_node, {'backend_factory': 'fake_backends:make_failing_plane',
                                             **FAST_WINDOWS}, 'out of memory')


def test_node_runs_without_tf2_msgs(peer, start_node):
    node = start_node({'backend_factory': 'fake_backends:make_plane', 'mode': 'replay',
                       **FAST_WINDOWS}, hide_modules=('tf2_msgs', 'tf2_msgs.msg', 'tf2_ros'))
    masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
    odometry = peer.collect(Odometry, '/vggt4d/odometry', RELIABLE)
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(publisher), node.log()
    for index in range(4):
        publisher.publish(image_msg(index))
    assert peer.spin_until(lambda: len(masks) >= 4 and len(odometry) >= 4, 30), node.log()
    assert 'tf2_msgs is not importable: TF will NOT be published' in node.log()
    assert not peer.node.get_publishers_info_by_topic('/tf')
    stop_cleanly(node)


def test_stop_signal_during_the_interpreter_exit_keeps_exit_code_zero(peer, tmp_path):
    # ros2 launch sends SIGINT, then SIGTERM 5 s later. The teardown may end within the 5 s
    # while the interpreter's exit (torch, DDS) does not: the late SIGTERM, sent here right
    # after main() returned, must not kill the exiting process (it did: exit -15).
    import subprocess
    import sys

    from conftest import node_env

    prelude = ('import os, signal, sys\nfrom vggt4d_ros.ros.node import main\n'
               'code = main(sys.argv)\nos.kill(os.getpid(), signal.SIGTERM)\n'
               'os.kill(os.getpid(), signal.SIGINT)\nsys.exit(code)')
    args = [sys.executable, '-c', prelude, '--ros-args', '-r', '__node:=vggt4d_exit',
            '-p', 'backend_factory:=fake_backends:make_plane', '-p', 'warmup:=false']
    log_path = tmp_path / 'exit.log'
    with open(log_path, 'w') as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=node_env())
    try:
        assert peer.spin_until(lambda: ']: active' in log_path.read_text(), 60), (
            log_path.read_text())
        process.send_signal(signal.SIGINT)
        deadline = LoadScaledDeadline(30.0)
        while process.poll() is None and not deadline.expired():
            peer.spin_for(0.1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, log_path.read_text()
    assert 'Traceback' not in log_path.read_text(), log_path.read_text()


def change_state(peer, transition_id: int) -> bool:
    from lifecycle_msgs.srv import ChangeState

    request = ChangeState.Request()
    request.transition.id = transition_id
    return call_service(peer, ChangeState, '/vggt4d/change_state', request,
                        per_try_s=20.0, probe=lifecycle_probe()).success


def lifecycle_probe():
    """A change_state request for a transition label no node has: answered, changes nothing."""
    from lifecycle_msgs.srv import ChangeState

    request = ChangeState.Request()
    request.transition.label = 'no_such_transition_handshake'
    return request


def test_lifecycle_transitions_without_autostart(peer, start_node):
    from lifecycle_msgs.msg import Transition

    node = start_node({'backend_factory': 'fake_backends:make_plane', 'mode': 'replay',
                       'autostart': False, **FAST_WINDOWS})
    masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert node.wait_for_log('autostart=false', 30), node.log()
    assert change_state(peer, Transition.TRANSITION_CONFIGURE)
    assert change_state(peer, Transition.TRANSITION_ACTIVATE)
    assert peer.wait_for_subscriber(publisher), node.log()
    for index in range(5):
        publisher.publish(image_msg(index))
    assert peer.spin_until(lambda: len(masks) >= 4, 30), node.log()
    peer.spin_for(0.5)
    assert len(masks) == 4  # frame 4 waits for the next window

    # Replay-mode deactivate flushes the partial window: frame 4 gets its mask too.
    assert change_state(peer, Transition.TRANSITION_DEACTIVATE)
    assert peer.spin_until(lambda: len(masks) >= 5, 30), node.log()
    assert peer.spin_until(lambda: publisher.get_subscription_count() == 0, 10)
    assert change_state(peer, Transition.TRANSITION_CLEANUP)
    assert change_state(peer, Transition.TRANSITION_CONFIGURE)
    assert change_state(peer, Transition.TRANSITION_ACTIVATE)
    assert peer.wait_for_subscriber(publisher), node.log()
    for index in range(10, 14):  # a fresh engine: a new first window of 4 frames
        publisher.publish(image_msg(index))
    assert peer.spin_until(lambda: len(masks) >= 9, 30), node.log()
    assert stamps_of(masks)[5:] == [image_msg(i).header.stamp.sec * 10**9
                                    + image_msg(i).header.stamp.nanosec for i in range(10, 14)]
    stop_cleanly(node)


def test_odom_to_base_mode_publishes_base_link(peer, start_node):
    from tf2_msgs.msg import TFMessage

    node = start_node({'backend_factory': 'fake_backends:make_plane', 'mode': 'replay',
                       'tf_mode': 'odom_to_base', 'base_to_camera': [0.3, 0.0, 0.5, -0.5, 0.5,
                                                                     -0.5, 0.5],
                       **FAST_WINDOWS})
    tf = peer.collect(TFMessage, '/tf', QoSProfile(depth=100))
    odometry = peer.collect(Odometry, '/vggt4d/odometry', RELIABLE)
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(publisher), node.log()
    for index in range(6):
        publisher.publish(image_msg(index))
    assert peer.spin_until(lambda: len(tf) >= 6 and len(odometry) >= 6, 30), node.log()
    transforms = [t for message in tf for t in message.transforms]
    assert {(t.header.frame_id, t.child_frame_id) for t in transforms} == {('odom', 'base_link')}
    first, last = transforms[0].transform, transforms[-1].transform
    assert [first.translation.x, first.translation.y, first.translation.z] == pytest.approx(
        [0.0, 0.0, 0.0], abs=1e-6)
    assert first.rotation.w == pytest.approx(1.0, abs=1e-6)
    # The camera slides to its right, so base_link moves along -y of odom, height unchanged.
    assert last.translation.y < -0.1 and abs(last.translation.z) < 1e-3
    assert odometry[-1].header.frame_id == 'odom' and odometry[-1].child_frame_id == 'base_link'
    stop_cleanly(node)
