# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Node latency plumbing: masks leave before the mapper runs; arrival delays are measured.

The first test runs the node in this process (no DDS peer): images go straight into the
subscription callback, the publishers and the mapper are wrapped to log the order of events.
The second test runs the node in its own process over real DDS and reads the input-delay
diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from waiting import LoadScaledDeadline  # noqa: E402

from vggt4d_ros.ros.conversions import stamp_to_ns  # noqa: E402
from vggt4d_ros.ros.outputs import header_at  # noqa: E402

HEIGHT, WIDTH = 48, 64
PERIOD_NS = 100_000_000
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
WINDOWS = {
    'window.window_size': 4, 'window.stride': 2, 'window.max_queued_frames': 4,
    'window.min_parallax_px': 0.0, 'window.max_keyframe_interval_s': 0.0,
    'mapper.min_align_points': 20, 'warmup_height': HEIGHT, 'warmup_width': WIDTH,
    'map_period_s': 0.0,
}


def frame_msg(index: int, stamp_ns: int) -> Image:
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    phase = cols + 2 * index
    pixels = np.stack([(phase * 7) % 256, (rows * 5) % 256, ((phase + rows) * 3) % 256], -1)
    return Image(header=header_at(stamp_ns, 'latency_cam'), height=HEIGHT, width=WIDTH,
                 encoding='rgb8', step=WIDTH * 3, data=pixels.astype(np.uint8).tobytes())


def wrap(owner, name: str, events: list, describe) -> None:
    """Replace ``owner.name`` by a wrapper that logs ``(name, describe(args))`` first."""
    original = getattr(owner, name)

    def logged(*args, **kwargs):
        events.append((name, describe(*args)))
        return original(*args, **kwargs)

    setattr(owner, name, logged)


def wait_for(condition, timeout_s: float) -> bool:
    """Poll ``condition``; ``timeout_s`` is for an idle machine (stretched under load)."""
    deadline = LoadScaledDeadline(timeout_s)
    while not deadline.expired():
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@dataclass
class InProcessRun:
    """What ``run_in_process`` saw."""

    events: list  # (what, detail) in call order
    stamps: list[int]  # the 11 image stamps
    sent: dict[str, int]  # messages sent per optional topic
    values: dict[str, str]  # diagnostics at the end
    latencies: tuple[float, float]  # min, max image-callback -> mask publish (s)
    processed: int
    worker_errors: int


def run_in_process(subscribe: bool, run_async: bool = True) -> InProcessRun:
    """Run 11 frames through a node in this process (replay mode, deactivated at the end).

    Images go straight into the subscription callback; the output methods, the mask publisher
    and the mapper are wrapped to log the order of events. ``subscribe`` adds subscriptions to
    the lazily published topics (overlay, odometry, path, window cloud); ``run_async`` is
    ``output_stage.run_async`` (poses, path and clouds on the output thread).
    """
    from vggt4d_ros.ros.node import set_switch_interval
    from vggt4d_ros.ros.node import SUCCESS
    from vggt4d_ros.ros.node import Vggt4dNode

    params = {'autostart': False, 'backend_factory': 'fake_backends:make_plane',
              'mode': 'replay', 'publish_overlay': True, 'output_stage.run_async': run_async,
              **WINDOWS}
    node = Vggt4dNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    events: list = []
    sent: dict[str, int] = {}
    try:
        assert node.trigger_configure() == SUCCESS
        outputs = node._outputs
        optional = {'overlay': outputs.overlay_pub, 'odometry': outputs.odom_pub,
                    'path': outputs.path_pub, 'window_cloud': outputs.window_pub,
                    'static_map': outputs.map_pub}
        for name, publisher in optional.items():
            sent[name] = 0
            wrap(publisher, 'publish', [], lambda msg, name=name: sent.update(
                {name: sent[name] + 1}))
            if subscribe and name != 'static_map':
                node.create_subscription(publisher.msg_type, publisher.topic_name,
                                         lambda msg: None, RELIABLE)
        lazy = [pub for name, pub in optional.items() if name != 'static_map']
        assert not subscribe or wait_for(
            lambda: all(pub.get_subscription_count() > 0 for pub in lazy), 10)
        stamp = lambda frame, *rest: stamp_to_ns(frame.header.stamp)  # noqa: E731
        wrap(outputs, 'publish_mask', events, stamp)
        wrap(outputs, 'publish_overlay', events, stamp)
        wrap(outputs, 'publish_pose', events, lambda frame, *rest: frame.stamp_ns)
        wrap(outputs, 'publish_path', events, lambda: None)
        wrap(outputs, 'publish_clouds', events, lambda stamp_ns, *rest: stamp_ns)
        wrap(outputs.mask_pub, 'publish', events,
             lambda msg: (stamp_to_ns(msg.header.stamp), msg.header.frame_id, msg.encoding))
        assert node.trigger_activate() == SUCCESS
        wrap(node._engine.mapper, 'integrate', events,
             lambda result, **kwargs: [int(s) for s in result.stamps_ns])

        t0 = time.time_ns() - 11 * PERIOD_NS  # a camera stamping with this host's clock
        stamps = [t0 + i * PERIOD_NS for i in range(11)]
        for index, stamp_ns in enumerate(stamps):
            node._on_image(frame_msg(index, stamp_ns))
        # Windows at 4, 6, 8 and 10 frames; the 11th frame waits for the deactivate flush.
        assert wait_for(lambda: sum(e[0] == 'publish_path' for e in events) == 4, 30), events
        assert node.trigger_deactivate() == SUCCESS
        counters = node.counters
        return InProcessRun(events, stamps, sent, node._diagnostic_status()[2],
                            (counters.latency.percentile(0), counters.latency.percentile(100)),
                            counters.processed, counters.worker_errors)
    finally:
        node.stop_everything()
        node.destroy_node()
        set_switch_interval(0.0)  # configure changed it for this whole test process


#: What the worker does per window (the rest runs where ``window_mapped`` runs).
WORKER_EVENTS = ('publish_mask', 'publish', 'publish_overlay', 'integrate')


@pytest.mark.parametrize('run_async', [False, True], ids=['in_line', 'output_thread'])
def test_masks_are_published_before_the_mapper_then_poses(ros_context, run_async):
    run = run_in_process(subscribe=False, run_async=run_async)
    stamps = run.stamps
    assert sum(e[0] == 'publish_path' for e in run.events) == 5

    # Per window: its masks, then its overlays, then the mapper, then poses, path, clouds.
    windows = (stamps[0:4], stamps[4:6], stamps[6:8], stamps[8:10], stamps[10:])
    expected = []
    for new in windows:
        for stamp_ns in new:
            expected += [('publish_mask', stamp_ns),
                         ('publish', (stamp_ns, 'latency_cam', 'mono8'))]
        expected += [('publish_overlay', stamp_ns) for stamp_ns in new]
        expected.append(('integrate', new))
        expected += [('publish_pose', stamp_ns) for stamp_ns in new]
        expected += [('publish_path', None), ('publish_clouds', new[-1])]
    # The mapper sees the whole window (overlap + new frames); compare its new tail.
    tails = iter(new for new in windows)
    observed = [(kind, arg[-len(next(tails)):] if kind == 'integrate' else arg)
                for kind, arg in run.events]
    if not run_async:
        assert observed == expected
    else:
        # Each thread in the in-line order; a window's poses after its own mapper (the
        # worker may meanwhile publish the next window's masks).
        for on_worker in (True, False):
            assert [e for e in observed if (e[0] in WORKER_EVENTS) == on_worker] == \
                [e for e in expected if (e[0] in WORKER_EVENTS) == on_worker]
        for new in windows:
            assert observed.index(('integrate', new)) < observed.index(('publish_pose', new[0]))

    assert run.processed == 11 and run.worker_errors == 0
    assert 0.0 <= run.latencies[0] <= run.latencies[1] < 30.0
    assert run.values['frames_published'] == '11'
    # Stamped at most 1.1 s before the callback: a positive delay of about that size.
    delay_ms = float(run.values['input_delay_p95_ms'])
    assert 0.0 <= float(run.values['input_delay_p50_ms']) <= delay_ms < 5_000.0
    assert math.isnan(float(run.values['input_wait_p50_ms']))  # no DDS: no receive time
    # Nobody subscribed: the optional outputs were not even built; the latched map was.
    assert run.sent == {'overlay': 0, 'odometry': 0, 'path': 0, 'window_cloud': 0,
                        'static_map': 5}


def test_optional_outputs_are_published_while_subscribed(ros_context):
    run = run_in_process(subscribe=True)
    assert run.sent == {'overlay': 11, 'odometry': 11, 'path': 5, 'window_cloud': 5,
                        'static_map': 5}


def test_input_delay_and_wait_over_dds(peer, start_node):
    from vggt4d_ros.ros.node import HAS_MESSAGE_INFO

    node = start_node({'backend_factory': 'fake_backends:make_plane', 'mode': 'live',
                       'input_qos': 'reliable', 'input_depth': 50, 'diagnostics_period_s': 0.2,
                       **WINDOWS})
    masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics', RELIABLE)
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(publisher), node.log()
    for index in range(8):
        publisher.publish(frame_msg(index, time.time_ns()))
        peer.spin_for(0.05)

    def reported() -> bool:
        if not diagnostics:
            return False
        values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
        # Live mode may drop a stale frame on a loaded machine: two windows are enough.
        return values['frames_received'] == '8' and int(values['frames_published']) >= 4

    assert peer.spin_until(reported, 30), (diagnostics[-1:], node.log())
    values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
    assert peer.spin_until(lambda: len(masks) >= 4, 10)
    delay = float(values['input_delay_p50_ms']), float(values['input_delay_p95_ms'])
    assert 0.0 <= delay[0] <= delay[1] < 5_000.0, values
    wait = float(values['input_wait_p50_ms']), float(values['input_wait_p95_ms'])
    if HAS_MESSAGE_INFO:  # the receive-to-callback wait is part of the stamp-to-callback delay
        assert 0.0 <= wait[0] <= wait[1] <= delay[1] + 1.0, values
    else:
        assert math.isnan(wait[0])
    assert 0.0 < float(values['latency_p50_ms']) < 5_000.0
    node.stop()


@pytest.mark.parametrize('milliseconds', [2.5, 0.0])
def test_configure_sets_the_gil_switch_interval(ros_context, milliseconds):
    import sys

    from vggt4d_ros.ros.node import PYTHON_SWITCH_INTERVAL_S
    from vggt4d_ros.ros.node import SUCCESS
    from vggt4d_ros.ros.node import Vggt4dNode

    params = {'autostart': False, 'backend_factory': 'fake_backends:make_plane',
              'gil_switch_interval_ms': milliseconds}
    node = Vggt4dNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    try:
        sys.setswitchinterval(0.0123)  # neither the value asked for nor Python's original
        assert node.trigger_configure() == SUCCESS
        expected = milliseconds * 1e-3 if milliseconds else PYTHON_SWITCH_INTERVAL_S
        assert sys.getswitchinterval() == pytest.approx(expected, rel=1e-6)
    finally:
        sys.setswitchinterval(PYTHON_SWITCH_INTERVAL_S)
        node.stop_everything()
        node.destroy_node()
