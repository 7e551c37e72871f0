# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Message conversions, frames, queue and parameter helpers (no DDS, in-process)."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

pytest.importorskip('rclpy')

from sensor_msgs.msg import CompressedImage  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from vggt4d_ros.geometry.rotation import quaternion_xyzw_from_rotation  # noqa: E402
from vggt4d_ros.geometry.rotation import rotation_from_quaternion_xyzw  # noqa: E402
from vggt4d_ros.ros import conversions  # noqa: E402
from vggt4d_ros.ros import frames  # noqa: E402
from vggt4d_ros.ros.frame_queue import FrameQueue  # noqa: E402
from vggt4d_ros.ros.frame_queue import QueuedFrame  # noqa: E402
from vggt4d_ros.ros.outputs import body_twist  # noqa: E402
from vggt4d_ros.ros.outputs import header_at  # noqa: E402


def _image_msg(pixels: np.ndarray, encoding: str, pad: int = 0) -> Image:
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    padded = np.zeros((height, rows.shape[1] + pad), np.uint8)
    padded[:, :rows.shape[1]] = rows
    return Image(height=height, width=width, encoding=encoding, step=padded.shape[1],
                 data=padded.tobytes())


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)


@pytest.mark.parametrize('pad', [0, 3])
def test_every_supported_encoding_decodes_to_rgb(rgb, pad):
    bgr = rgb[..., ::-1]
    alpha = np.full(rgb.shape[:2] + (1,), 7, np.uint8)
    cases = {
        'rgb8': (rgb, rgb),
        'bgr8': (bgr, rgb),
        'rgba8': (np.concatenate([rgb, alpha], axis=2), rgb),
        'bgra8': (np.concatenate([bgr, alpha], axis=2), rgb),
        'mono8': (rgb[..., 0], np.repeat(rgb[..., :1], 3, axis=2)),
    }
    for encoding, (pixels, expected) in cases.items():
        decoded = conversions.image_msg_to_rgb(_image_msg(np.ascontiguousarray(pixels),
                                                          encoding, pad))
        np.testing.assert_array_equal(decoded, expected, err_msg=encoding)
        assert decoded.flags['C_CONTIGUOUS'] and decoded.dtype == np.uint8


def test_unsupported_encoding_and_short_data_raise(rgb):
    with pytest.raises(conversions.UnsupportedEncodingError, match='yuv422'):
        conversions.image_msg_to_rgb(Image(height=2, width=2, encoding='yuv422', step=4,
                                           data=bytes(8)))
    short = _image_msg(rgb, 'rgb8')
    short.data = bytes(10)
    with pytest.raises(conversions.ImageDecodeError):
        conversions.image_msg_to_rgb(short)


def test_compressed_png_round_trip_and_garbage(rgb):
    ok, png = cv2.imencode('.png', rgb[..., ::-1])
    assert ok
    decoded = conversions.compressed_msg_to_rgb(CompressedImage(format='png',
                                                                data=png.tobytes()))
    np.testing.assert_array_equal(decoded, rgb)
    for garbage in (b'not an image at all', b''):
        with pytest.raises(conversions.ImageDecodeError):
            conversions.compressed_msg_to_rgb(CompressedImage(format='jpeg', data=garbage))


FRONT_END_CASES = [
    # (encoding, channels, bytes per channel, step padding, data length delta)
    ('rgb8', 3, 1, 0, 0), ('bgr8', 3, 1, 2, 0), ('rgba8', 4, 1, 0, 0), ('bgra8', 4, 1, 0, 0),
    ('mono8', 1, 1, 1, 0), ('8UC1', 1, 1, 0, 0), ('mono16', 1, 2, 2, 0), ('16UC1', 1, 2, 0, 0),
    ('32FC1', 1, 4, 0, 0), ('yuv422', 2, 1, 0, 0), ('bayer_rggb8', 1, 1, 0, 0),
    ('64FC1', 1, 8, 0, 0), ('8UC3', 3, 1, 0, 0), ('rgb8', 3, 1, 0, -1), ('mono16', 1, 2, 0, -3),
]


def _decode_outcome(decode):
    try:
        return decode()
    except ValueError as error:
        return type(error)


@pytest.mark.parametrize('encoding, channels, itemsize, pad, delta', FRONT_END_CASES)
def test_node_and_offline_replay_decode_raw_images_alike(encoding, channels, itemsize,
                                                         pad, delta):
    from vggt4d_ros.replay import messages as replay_messages

    height, width = 5, 7
    step = width * channels * itemsize + pad
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, step * height + delta, dtype=np.uint8)
    if encoding == '32FC1':  # finite floats in [0, 1.5], so the bytes are a valid image
        data = rng.uniform(0, 1.5, step * height // 4).astype(np.float32).view(np.uint8)
    node_msg = Image(header=header_at(1, 'cam'), height=height, width=width,
                     encoding=encoding, step=step, data=data.tobytes())
    replay_msg = replay_messages.image_msg(np.zeros((1, 1, 3), np.uint8), 1, 'cam', 'rgb8')
    replay_msg.height, replay_msg.width, replay_msg.encoding = height, width, encoding
    replay_msg.step, replay_msg.data = step, data
    node = _decode_outcome(lambda: conversions.image_msg_to_rgb(node_msg))
    replay = _decode_outcome(lambda: replay_messages.image_to_rgb(replay_msg))
    if isinstance(node, type):
        assert node is replay  # the same exception type on both sides
        assert (encoding not in conversions.SUPPORTED_ENCODINGS) == (
            node is conversions.UnsupportedEncodingError)
        assert delta or encoding not in conversions.SUPPORTED_ENCODINGS
    else:
        assert node.shape == (height, width, 3) and encoding in conversions.SUPPORTED_ENCODINGS
        np.testing.assert_array_equal(node, replay)


@pytest.mark.parametrize('size, accepted', [((32, 48), True), ((12000, 12000), False),
                                            ((900, 100), False)])
def test_node_and_offline_replay_decode_compressed_images_alike(size, accepted):
    from vggt4d_ros.replay import messages as replay_messages

    ok, png = cv2.imencode('.png', np.zeros(size + (3,), np.uint8))
    replay_msg = replay_messages.TYPESTORE.types['sensor_msgs/msg/CompressedImage'](
        header=replay_messages.header_msg(1, 'cam'), format='png',
        data=np.frombuffer(png.tobytes(), np.uint8))
    node = _decode_outcome(lambda: conversions.compressed_msg_to_rgb(
        CompressedImage(format='png', data=png.tobytes())))
    replay = _decode_outcome(lambda: replay_messages.compressed_to_rgb(replay_msg))
    if accepted:
        np.testing.assert_array_equal(node, replay)
    else:
        assert node is replay is conversions.ImageLimitError


def test_mask_message_keeps_source_header_and_size():
    header = header_at(1_700_000_000_123_456_789, 'cam_optical')
    mask = np.zeros((4, 7), np.uint8)
    mask[1:3, 2:5] = 255
    for build in (conversions.numpy_to_image_msg, conversions.numpy_to_image_msg_fallback):
        msg = build(mask, 'mono8', header)
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
        assert msg.header.frame_id == 'cam_optical'
        assert (msg.height, msg.width, msg.step, msg.encoding) == (4, 7, 7, 'mono8')
        assert msg.is_bigendian == 0
        np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), np.uint8).reshape(4, 7),
                                      mask)


def test_cloud_fallback_layout_and_round_trip():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(50, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    header = header_at(5, 'map')
    structured = conversions._structured_points(points, colors)
    cloud = conversions.make_cloud_fallback(header, structured)
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ('x', 0, 7, 1), ('y', 4, 7, 1), ('z', 8, 7, 1), ('rgb', 12, 7, 1)]
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (1, 50, 16, 800)
    assert not cloud.is_bigendian and len(cloud.data) == 800
    decoded_points, decoded_colors = conversions.cloud_to_numpy(cloud)
    np.testing.assert_array_equal(decoded_points, points)
    np.testing.assert_array_equal(decoded_colors, colors)
    # rgb bits are 0x00RRGGBB, the layout RViz's RGB8 transformer reads.
    bits = np.frombuffer(bytes(cloud.data), np.uint32).reshape(50, 4)[:, 3]
    expected = (colors[:, 0].astype(np.uint32) << 16) | (colors[:, 1].astype(np.uint32) << 8) \
        | colors[:, 2]
    np.testing.assert_array_equal(bits, expected)


def test_make_cloud_matches_fallback_and_sets_is_dense():
    points = np.array([[0, 1, 2], [3, 4, 5]], np.float32)
    colors = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    header = header_at(7, 'map')
    cloud = conversions.make_cloud(header, points, colors)
    fallback = conversions.make_cloud_fallback(header,
                                               conversions._structured_points(points, colors))
    for name in ('height', 'width', 'point_step', 'row_step', 'is_bigendian', 'fields'):
        assert getattr(cloud, name) == getattr(fallback, name), name
    assert bytes(cloud.data) == bytes(fallback.data)
    assert cloud.is_dense
    points[0, 0] = np.nan
    assert not conversions.make_cloud(header, points, colors).is_dense


def test_quaternions_round_trip_and_optical_rotation():
    rng = np.random.default_rng(2)
    for _ in range(50):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        rotation *= np.sign(np.linalg.det(rotation))
        quat = quaternion_xyzw_from_rotation(rotation)
        assert quat[3] >= 0
        np.testing.assert_allclose(rotation_from_quaternion_xyzw(quat), rotation, atol=1e-9)
    # The optical -> body rotation is the standard camera_optical quaternion.
    np.testing.assert_allclose(quaternion_xyzw_from_rotation(frames.R_BODY_FROM_OPTICAL),
                               [-0.5, 0.5, -0.5, 0.5])


@pytest.mark.parametrize('quat', [[0.6, 0.0, 0.0, -0.8], [0.0, 0.0, 1.0, 0.0],
                                  [0.0, -0.6, 0.8, 0.0], [-0.5, 0.5, -0.5, -0.5]])
def test_published_quaternions_have_the_canonical_sign(quat):
    # Each rotation is built from q with w <= 0: TF and pose messages must carry the one
    # canonical quaternion (the same function as the replay bags and TUM files), not -q.
    pose = np.eye(4)
    pose[:3, :3] = rotation_from_quaternion_xyzw(np.asarray(quat))
    expected = quaternion_xyzw_from_rotation(pose[:3, :3])
    np.testing.assert_allclose(np.abs(expected), np.abs(quat), atol=1e-12)
    header = Header(frame_id='map')
    rotation = conversions.transform_stamped(pose, header, 'cam').transform.rotation
    orientation = conversions.pose_to_msg(pose).orientation
    for msg in (rotation, orientation):
        assert [msg.x, msg.y, msg.z, msg.w] == expected.tolist()
    assert expected[3] > 0 or (expected[3] == 0 and expected[np.flatnonzero(expected)[0]] > 0)


def test_map_convention_turns_optical_forward_into_ros_forward():
    convention = frames.make_convention('map_to_camera', 'map', 'odom', 'base_link', 'cam', None)
    forward_optical = np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    # optical z (forward) -> ROS x; optical x (right) -> -y; optical y (down) -> -z.
    np.testing.assert_allclose(convention.points_to_world(forward_optical),
                               [[2, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-6)
    moved = np.eye(4)
    moved[:3, 3] = [0.0, 0.0, 1.5]  # camera moved 1.5 forward along its optical axis
    pose = convention.child_pose(moved)
    np.testing.assert_allclose(pose[:3, 3], [1.5, 0, 0], atol=1e-12)
    assert convention.world_frame == 'map' and convention.child_frame == 'cam'


def test_odom_convention_starts_at_identity_and_uses_extrinsic():
    base_from_camera = frames.pose_from_xyz_quat([0.2, 0.0, 0.5, -0.5, 0.5, -0.5, 0.5])
    convention = frames.make_convention('odom_to_base', 'map', 'odom', 'base_link', 'cam',
                                        base_from_camera)
    np.testing.assert_allclose(convention.child_pose(np.eye(4)), np.eye(4), atol=1e-12)
    forward = np.eye(4)
    forward[2, 3] = 1.0  # one unit along the optical axis = one unit along base x
    np.testing.assert_allclose(convention.child_pose(forward)[:3, 3], [1, 0, 0], atol=1e-12)
    assert (convention.world_frame, convention.child_frame) == ('odom', 'base_link')
    with pytest.raises(ValueError):
        frames.make_convention('odom_to_base', 'map', 'odom', 'base_link', 'cam', None)


def test_body_twist_of_a_forward_motion():
    previous, current = np.eye(4), np.eye(4)
    current[:3, :3] = cv2.Rodrigues(np.array([0.0, 0.0, 0.1]))[0]
    current[:3, 3] = [0.5, 0.0, 0.0]
    linear, angular = body_twist(previous, current, 0.5)
    np.testing.assert_allclose(angular, [0, 0, 0.2], atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(linear), 1.0, atol=1e-9)


def test_live_queue_drops_oldest_and_counts():
    queue = FrameQueue(3, drop_oldest=True)
    for item in range(5):
        assert queue.put(item)
    assert queue.dropped == 2
    assert [queue.get(0.01) for _ in range(3)] == [2, 3, 4]
    assert queue.get(0.01) is None


def test_take_all_empties_the_queue_oldest_first_without_waiting():
    queue = FrameQueue(8, drop_oldest=True)
    assert queue.take_all() == []
    for item in range(5):
        queue.put(item)
    assert queue.take_all() == [0, 1, 2, 3, 4]
    assert len(queue) == 0 and queue.dropped == 0


def test_replay_queue_blocks_and_never_drops():
    queue = FrameQueue(2, drop_oldest=False)
    taken = []

    def consume():
        while len(taken) < 6:
            item = queue.get(1.0)
            if item is not None:
                taken.append(item)
                time.sleep(0.01)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for item in range(6):
        assert queue.put(item)
    consumer.join(5)
    assert taken == list(range(6)) and queue.dropped == 0
    queue.put('a')
    queue.put('b')
    queue.close()  # a blocked producer is released by close
    assert queue.put('c') is False


def test_queue_is_bounded_in_bytes_too():
    frame = np.zeros((100, 100, 3), np.uint8)  # 30 000 bytes each
    live = FrameQueue(100, drop_oldest=True, max_bytes=70_000)
    for index in range(5):
        assert live.put(QueuedFrame(frame.copy(), index, None, 0.0))
    assert len(live) == 2 and live.nbytes == 60_000 and live.dropped == 3
    assert [item.stamp_ns for item in live.take_all()] == [3, 4] and live.nbytes == 0
    huge = QueuedFrame(np.zeros((300, 300, 3), np.uint8), 9, None, 0.0)
    assert live.put(huge) and len(live) == 1  # alone, even a frame above the bound fits

    replay = FrameQueue(100, drop_oldest=False, max_bytes=70_000)
    for index in range(2):
        assert replay.put(QueuedFrame(frame.copy(), index, None, 0.0))
    blocked = threading.Thread(target=replay.put,
                               args=(QueuedFrame(frame.copy(), 2, None, 0.0),))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive() and len(replay) == 2  # waits for room, never drops
    assert replay.get(1.0).stamp_ns == 0
    blocked.join(5)
    assert not blocked.is_alive() and len(replay) == 2 and replay.dropped == 0


def test_header_at_splits_nanoseconds():
    header = header_at(3_000_000_007, 'f')
    assert isinstance(header, Header)
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (3, 7, 'f')
    assert conversions.stamp_to_ns(header.stamp) == 3_000_000_007


def test_make_cloud_uses_create_cloud_and_falls_back_on_old_versions(monkeypatch):
    points = np.array([[0, 1, 2], [3, 4, 5]], np.float32)
    colors = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    header = header_at(9, 'map')
    expected = conversions.make_cloud_fallback(header,
                                               conversions._structured_points(points, colors))
    calls = []

    class Modern:
        @staticmethod
        def create_cloud(header, fields, structured):
            calls.append('modern')
            return conversions.make_cloud_fallback(header, structured)

    class Old:  # converts to float32 first, as early sensor_msgs_py did
        @staticmethod
        def create_cloud(header, fields, structured):
            calls.append('old')
            return np.asarray(structured, dtype=np.float32)

    for module in (Modern, Old):
        monkeypatch.setattr(conversions, '_point_cloud2', module)
        cloud = conversions.make_cloud(header, points, colors)
        assert bytes(cloud.data) == bytes(expected.data) and cloud.point_step == 16
    assert calls == ['modern', 'old']
