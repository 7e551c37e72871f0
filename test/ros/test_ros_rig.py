# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A two-camera rig through the node over real Fast DDS (node in a subprocess).

One camera is jittered in time (within the slop), the other drops frames: every complete
group is processed once, the incomplete ones are counted, each camera's masks arrive on its
own topic with its own source header, and TF/odometry carry one base_link pose per step.
"""

from __future__ import annotations

import importlib.util
import signal
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from vggt4d_ros.ros.conversions import stamp_to_ns  # noqa: E402
from vggt4d_ros.ros.outputs import header_at  # noqa: E402

HEIGHT, WIDTH = 64, 80
T0_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
MS = 1_000_000
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
STEPS = 12
#: The right camera loses these frames; its others come up to 3 ms off the left's stamps.
RIGHT_DROPS = {4, 9}
JITTER_MS = (0, 3, -2, 1, 0, -3, 2, 3, -1, 0, 2, -2)
RIG_PARAMS = {
    'backend_factory': 'fake_backends:make_rig_plane', 'mode': 'replay',
    'image_topics': ['/left/image_raw', '/right/image_raw'],
    'rig_sync': 'builtin', 'rig_slop_s': 0.01, 'diagnostics_period_s': 0.2,
    'tf_mode': 'odom_to_base',
    # Both optical frames look forward from base_link; the right one 0.2 m to the right.
    'rig_extrinsics': [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5,
                       0.0, -0.2, 0.0, -0.5, 0.5, -0.5, 0.5],
    # Every step a keyframe; windows of 2 steps x 2 cameras advancing by 1 step.
    'window.window_size': 4, 'window.stride': 2, 'window.max_queued_frames': 4,
    'window.min_parallax_px': 0.0, 'window.max_keyframe_interval_s': 0.0,
    'mapper.min_align_points': 20, 'warmup_height': HEIGHT, 'warmup_width': WIDTH,
}


def _image(index: int, stamp_ns: int, frame_id: str) -> Image:
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    phase = cols + 2 * index
    pixels = np.stack([(phase * 7) % 256, (rows * 5) % 256, ((phase + rows) * 3) % 256], -1)
    return Image(header=header_at(stamp_ns, frame_id), height=HEIGHT, width=WIDTH,
                 encoding='rgb8', step=WIDTH * 3, data=pixels.astype(np.uint8).tobytes())


def _pixels(mask: Image) -> np.ndarray:
    return np.frombuffer(bytes(mask.data), np.uint8).reshape(mask.height, mask.width)


def _stamps(messages) -> list[int]:
    return [stamp_to_ns(msg.header.stamp) for msg in messages]


def test_two_camera_rig_groups_steps_and_publishes_per_camera(peer, start_node):
    from tf2_msgs.msg import TFMessage

    node = start_node(RIG_PARAMS)
    left_masks = peer.collect(Image, '/vggt4d/left/dynamic_mask', RELIABLE)
    right_masks = peer.collect(Image, '/vggt4d/right/dynamic_mask', RELIABLE)
    odometry = peer.collect(Odometry, '/vggt4d/odometry', RELIABLE)
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics', RELIABLE)
    tf = peer.collect(TFMessage, '/tf', QoSProfile(depth=100))
    left = peer.node.create_publisher(Image, '/left/image_raw', RELIABLE)
    right = peer.node.create_publisher(Image, '/right/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(left), node.log()
    assert peer.wait_for_subscriber(right), node.log()
    left_sent, right_sent = [], []
    for index in range(STEPS):
        stamp = T0_NS + index * PERIOD_NS
        left_sent.append(_image(index, stamp, 'left_optical'))
        left.publish(left_sent[-1])
        if index not in RIGHT_DROPS:
            right_sent.append(_image(index, stamp + JITTER_MS[index] * MS, 'right_optical'))
            right.publish(right_sent[-1])
        peer.spin_for(0.02)  # keeps the two topics' deliveries roughly in step order
    complete = [i for i in range(STEPS) if i not in RIGHT_DROPS]

    def everything() -> bool:
        if len(left_masks) < len(complete) or len(right_masks) < len(complete):
            return False
        if len(odometry) < len(complete) or not diagnostics:
            return False
        values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
        # The diagnostics timer may lag the worker on a busy machine: wait for the final count.
        return values.get('rig.groups') == str(len(complete)) and \
            values.get('frames_published') == str(2 * len(complete))

    assert peer.spin_until(everything, 60), node.log()
    peer.spin_for(0.5)  # nothing more may come
    # Every complete group once, each camera's mask with its own image's header.
    assert _stamps(left_masks) == [_stamps(left_sent)[i] for i in complete]
    assert _stamps(right_masks) == _stamps(right_sent)
    assert {m.header.frame_id for m in left_masks} == {'left_optical'}
    assert {m.header.frame_id for m in right_masks} == {'right_optical'}
    for mask in left_masks:  # the fake rig: left marks its upper-left quarter
        assert _pixels(mask)[:8, :8].min() == 255 and _pixels(mask)[-8:, -8:].max() == 0
    for mask in right_masks:  # ... right its lower-right quarter
        assert _pixels(mask)[-8:, -8:].min() == 255 and _pixels(mask)[:8, :8].max() == 0
    # One rig pose per step, base_link (the left camera's extrinsic), at the left's stamps.
    transforms = [t for message in tf for t in message.transforms]
    assert {(t.header.frame_id, t.child_frame_id) for t in transforms} == {('odom', 'base_link')}
    assert [stamp_to_ns(t.header.stamp) for t in transforms] == _stamps(left_masks)
    assert _stamps(odometry) == _stamps(left_masks)
    # The fake rig slides to its right: base_link moves along -y of odom.
    assert transforms[-1].transform.translation.y < -0.1
    # The incomplete groups are counted: the left frames without a right partner.
    values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
    assert values['rig.sync'] == 'builtin' and values['rig.cameras'] == 'left,right'
    assert values['rig.unmatched.left'] == str(len(RIGHT_DROPS))
    assert values['rig.unmatched.right'] == '0'
    code = node.stop(signal.SIGINT)
    assert code == 0, node.log()
    assert 'Traceback' not in node.log()


#: The node's TF back ends: the pip-only fallback everywhere (tf2_ros hidden from the node),
#: the real tf2_ros where it is installed.
TF_BACKENDS = ['fallback', pytest.param('tf2_ros', marks=pytest.mark.skipif(
    importlib.util.find_spec('tf2_ros') is None, reason='tf2_ros is not installed'))]


@pytest.mark.parametrize('tf_backend', TF_BACKENDS)
def test_rig_extrinsics_from_tf(peer, start_node, tf_backend):
    """Without rig_extrinsics the node looks the cameras up in TF (base_frame -> frame_id).

    Each optical frame hangs under base_link through a static ``rig_mount`` link (a chain)
    that is turned 90 degrees left: the rig, which slides to its right, then moves the base
    along +x of odom (along -y with the optical frames straight under base_link).
    """
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    params = {key: value for key, value in RIG_PARAMS.items() if key != 'rig_extrinsics'}
    params['extrinsic_source'] = 'tf'
    node = start_node(params, hide_modules=('tf2_ros',) if tf_backend == 'fallback' else ())
    tf = peer.collect(TFMessage, '/tf', QoSProfile(depth=100))
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics', RELIABLE)
    static = peer.node.create_publisher(TFMessage, '/tf_static', LATCHED)
    mount = TransformStamped(header=header_at(T0_NS, 'base_link'), child_frame_id='rig_mount')
    mount.transform.translation.z = 0.4
    mount.transform.rotation.z = mount.transform.rotation.w = 0.5 ** 0.5
    cameras = [mount]
    for name, y in (('left_optical', 0.0), ('right_optical', -0.2)):
        camera = TransformStamped(header=header_at(T0_NS, 'rig_mount'), child_frame_id=name)
        camera.transform.translation.y = y
        q = camera.transform.rotation
        q.x, q.y, q.z, q.w = -0.5, 0.5, -0.5, 0.5
        cameras.append(camera)
    static.publish(TFMessage(transforms=cameras))
    left = peer.node.create_publisher(Image, '/left/image_raw', RELIABLE)
    right = peer.node.create_publisher(Image, '/right/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(left) and peer.wait_for_subscriber(right), node.log()
    sent = []

    def send_step() -> None:
        index = len(sent)
        stamp = T0_NS + index * PERIOD_NS
        left.publish(_image(index, stamp, 'left_optical'))
        right.publish(_image(index, stamp, 'right_optical'))
        sent.append(time.monotonic())

    for _ in range(6):
        send_step()
        peer.spin_for(0.02)

    def looked_up() -> bool:
        # The node tries the look-up when a step arrives, at most once a second: on a busy
        # machine the latched /tf_static may reach its buffer after the first steps, so the
        # stream goes on (a step every 0.5 s) as a camera's would, until the look-up is done.
        if time.monotonic() - sent[-1] > 0.5 and len(sent) < 200:
            send_step()
        base = [t for m in tf for t in m.transforms if t.child_frame_id == 'base_link']
        return len(base) >= 6 and _values(diagnostics).get('rig.extrinsics') == 'tf'

    assert peer.spin_until(looked_up, 60), node.log()
    assert _values(diagnostics)['tf.buffer'] == tf_backend
    last = [t for m in tf for t in m.transforms if t.child_frame_id == 'base_link'][-1]
    assert last.transform.translation.x > 0.1 and abs(last.transform.translation.y) < 1e-6
    code = node.stop(signal.SIGINT)
    assert code == 0, node.log()
    assert 'Traceback' not in node.log()


def _values(diagnostics: list) -> dict[str, str]:
    return {kv.key: kv.value for kv in diagnostics[-1].status[0].values} if diagnostics else {}
