# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node's one TF buffer over real DDS: one /tf subscription per node, clear lifetimes.

The node runs in a subprocess (fallback buffer: tf2_ros hidden, as on the CI wheels; and the
real tf2_ros where it is installed). Two users need TF from configure on (the odom_to_base
extrinsic with ``extrinsic_source:=tf`` and ``obstacle_frame``): the node still subscribes to
``/tf`` and ``/tf_static`` once; cleanup unsubscribes, a new configure subscribes again once,
and the extrinsic is then found through a base_link -> camera_link -> camera chain.
"""

from __future__ import annotations

import importlib.util

import pytest

pytest.importorskip('rclpy')

from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from test_ros_node import change_state  # noqa: E402
from test_ros_node import FAST_WINDOWS  # noqa: E402
from test_ros_node import image_msg  # noqa: E402
from test_ros_node import RELIABLE  # noqa: E402
from test_ros_node import stop_cleanly  # noqa: E402

from vggt4d_ros.ros.conversions import transform_stamped  # noqa: E402
from vggt4d_ros.ros.frames import pose_from_xyz_quat  # noqa: E402
from vggt4d_ros.ros.outputs import header_at  # noqa: E402

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
TF_BACKENDS = ['fallback', pytest.param('tf2_ros', marks=pytest.mark.skipif(
    importlib.util.find_spec('tf2_ros') is None, reason='tf2_ros is not installed'))]


def _node_readers(peer, topic: str) -> int:
    return sum(1 for info in peer.node.get_subscriptions_info_by_topic(topic)
               if info.node_name == 'vggt4d')


@pytest.mark.parametrize('tf_backend', TF_BACKENDS)
def test_one_tf_subscription_per_node_across_configure_cleanup_configure(
        peer, start_node, tf_backend):
    from lifecycle_msgs.msg import Transition
    from tf2_msgs.msg import TFMessage

    node = start_node({'backend_factory': 'fake_backends:make_plane', 'mode': 'replay',
                       'autostart': False, 'tf_mode': 'odom_to_base',
                       'extrinsic_source': 'tf', 'obstacle_frame': 'base_link',
                       **FAST_WINDOWS},
                      hide_modules=('tf2_ros',) if tf_backend == 'fallback' else ())
    assert node.wait_for_log('autostart=false', 30), node.log()
    assert _node_readers(peer, '/tf') == 0

    def subscribed(count: int) -> bool:
        return _node_readers(peer, '/tf') == count and _node_readers(peer, '/tf_static') == count

    assert change_state(peer, Transition.TRANSITION_CONFIGURE)
    assert peer.spin_until(lambda: subscribed(1), 30), node.log()
    peer.spin_for(1.0)
    assert subscribed(1)  # two users, one listener
    assert change_state(peer, Transition.TRANSITION_CLEANUP)
    assert peer.spin_until(lambda: subscribed(0), 30), node.log()
    assert change_state(peer, Transition.TRANSITION_CONFIGURE)
    assert peer.spin_until(lambda: subscribed(1), 30), node.log()

    # The fresh buffer works: the extrinsic through a chain, then odom -> base_link published.
    mount = [transform_stamped(pose_from_xyz_quat([0.3, 0.0, 0.5, 0, 0, 0, 1]),
                               header_at(1, 'base_link'), 'camera_link'),
             transform_stamped(pose_from_xyz_quat([0, 0, 0, -0.5, 0.5, -0.5, 0.5]),
                               header_at(1, 'camera_link'), 'test_cam')]  # the images' frame
    static = peer.node.create_publisher(TFMessage, '/tf_static', LATCHED)
    static.publish(TFMessage(transforms=mount))
    odometry = peer.collect(Odometry, '/vggt4d/odometry', RELIABLE)
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert change_state(peer, Transition.TRANSITION_ACTIVATE)
    assert peer.wait_for_subscriber(publisher), node.log()
    for index in range(6):
        publisher.publish(image_msg(index))
    assert peer.spin_until(lambda: len(odometry) >= 6, 60), node.log()
    assert odometry[-1].child_frame_id == 'base_link'
    # The camera slides to its right: base_link moves along -y of odom, height unchanged.
    position = odometry[-1].pose.pose.position
    assert position.y < -0.1 and abs(position.z) < 1e-3
    stop_cleanly(node)
