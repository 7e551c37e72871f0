# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node's Foxglove switch: off by default (no server), on: the live view serves the node's
outputs; without foxglove-sdk the node runs on and says why there is no view."""

from __future__ import annotations

import re
import socket

import pytest

pytest.importorskip('rclpy')

from sensor_msgs.msg import Image  # noqa: E402

from test_ros_node import FAST_WINDOWS  # noqa: E402
from test_ros_node import image_msg  # noqa: E402
from test_ros_node import RELIABLE  # noqa: E402
from test_ros_node import stop_cleanly  # noqa: E402

PLANE = {'backend_factory': 'fake_backends:make_plane', 'mode': 'replay', **FAST_WINDOWS}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _refused(port: int) -> bool:
    with socket.socket() as client:
        return client.connect_ex(('127.0.0.1', port)) != 0


def _send_frames(peer, node, count: int) -> list[Image]:
    masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(publisher), node.log()  # active: the view (if any) is up
    for index in range(count):
        publisher.publish(image_msg(index))
    return masks


def test_switch_off_by_default_means_no_server(peer, start_node):
    port = _free_port()
    node = start_node({**PLANE, 'foxglove.port': port})
    masks = _send_frames(peer, node, 4)
    assert peer.spin_until(lambda: len(masks) >= 4, 30), node.log()
    assert _refused(port)
    assert 'foxglove' not in node.log()
    stop_cleanly(node)


def test_switch_on_serves_the_node_outputs_until_deactivated(peer, start_node):
    pytest.importorskip('foxglove', reason='foxglove-sdk not installed')
    pytest.importorskip('websockets', reason='websockets not installed')
    from foxglove_client import FoxgloveClient

    node = start_node({**PLANE, 'foxglove.enabled': True, 'foxglove.port': 0})
    assert node.wait_for_log('foxglove view: ws://'), node.log()
    port = int(re.search(r'foxglove view: ws://127\.0\.0\.1:(\d+)', node.log()).group(1))
    client = FoxgloveClient(port)
    try:
        topics = ['/vggt4d/dynamic_mask', '/tf', '/vggt4d/window_cloud']
        client.read_advertisements(set(topics))
        client.subscribe(topics)
        _send_frames(peer, node, 8)
        client.receive_until(lambda c: len(c.messages['/vggt4d/dynamic_mask']) >= 8
                             and c.messages['/tf'] and c.messages['/vggt4d/window_cloud'], 60)
    finally:
        client.close()
    mask = client.messages['/vggt4d/dynamic_mask'][0]
    assert (mask.get('width'), mask.get('height'), mask.text('frame_id')) == (80, 64, 'test_cam')
    transform = client.messages['/tf'][0].nested('transforms')[0]
    assert (transform.text('parent_frame_id'), transform.text('child_frame_id')) == (
        'map', 'test_cam')
    assert client.messages['/vggt4d/window_cloud'][0].text('frame_id') == 'map'
    stop_cleanly(node)
    assert _refused(port)


def test_without_foxglove_sdk_the_node_runs_and_says_so(peer, start_node):
    node = start_node({**PLANE, 'foxglove.enabled': True, 'foxglove.port': _free_port()},
                      hide_modules=('foxglove',))
    masks = _send_frames(peer, node, 4)
    assert peer.spin_until(lambda: len(masks) >= 4, 30), node.log()
    assert 'foxglove view not started' in node.log() and 'foxglove-sdk' in node.log()
    stop_cleanly(node)
