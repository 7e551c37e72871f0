# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Runtime parameter sets over DDS: invalid values rejected with a reason, refused while active.

Every parameter is read at configure. A set of a value that is not allowed is rejected in any
state; a valid set is refused while the node is active (it could not apply) and accepted in
the other states, applying at the next configure.
"""

from __future__ import annotations

import pytest

pytest.importorskip('rclpy')

from rclpy.parameter import Parameter  # noqa: E402
from test_ros_node import call_service  # noqa: E402
from test_ros_node import change_state  # noqa: E402
from test_ros_node import FAST_WINDOWS  # noqa: E402
from test_ros_node import stop_cleanly  # noqa: E402


def set_parameter(peer, name: str, value):
    """``ros2 param set`` equivalent; returns the SetParametersResult."""
    from rcl_interfaces.srv import SetParameters

    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return call_service(peer, SetParameters, '/vggt4d/set_parameters', request).results[0]


def get_parameter(peer, name: str):
    from rcl_interfaces.srv import GetParameters

    request = GetParameters.Request(names=[name])
    value = call_service(peer, GetParameters, '/vggt4d/get_parameters', request).values[0]
    return Parameter.from_parameter_msg(
        Parameter(name).to_parameter_msg().__class__(name=name, value=value)).value


INVALID = [
    ('mode', 'banana', 'one of: live, replay'),
    ('input_qos', 'bogus', 'one of: sensor_data, reliable'),
    ('pipeline.refine.mode', 'banana', 'one of: cluster, gradient'),
    ('pipeline.refine.neighbour_search', 'fast', 'one of: image, exact'),
    ('pipeline.cues.empty_window', 'zero', 'one of: nearest, none'),
    ('mapper.voxel.voxel_size', -0.5, 'voxel_size'),
    ('window.stride', 0, 'window.stride'),
]


def test_invalid_sets_are_rejected_with_a_reason(peer, start_node):
    from lifecycle_msgs.msg import Transition

    node = start_node({'backend_factory': 'fake_backends:make_plane', 'autostart': False,
                       **FAST_WINDOWS})
    assert node.wait_for_log('autostart=false', 60), node.log()
    for name, value, words in INVALID:
        before = get_parameter(peer, name)
        result = set_parameter(peer, name, value)
        assert not result.successful and words in result.reason, (name, result.reason)
        assert get_parameter(peer, name) == before, name
    # The unchanged values still configure.
    assert change_state(peer, Transition.TRANSITION_CONFIGURE), node.log()
    stop_cleanly(node)


def test_valid_sets_are_refused_while_active_and_apply_at_the_next_configure(peer, start_node):
    from lifecycle_msgs.msg import Transition

    node = start_node({'backend_factory': 'fake_backends:make_plane', **FAST_WINDOWS})
    assert node.wait_for_log(': active', 60), node.log()
    refused = set_parameter(peer, 'input_qos', 'reliable')
    assert not refused.successful
    assert 'read at configure' in refused.reason and 'active' in refused.reason
    assert get_parameter(peer, 'input_qos') == 'sensor_data'

    assert change_state(peer, Transition.TRANSITION_DEACTIVATE), node.log()
    accepted = set_parameter(peer, 'input_qos', 'reliable')
    assert accepted.successful, accepted.reason
    assert change_state(peer, Transition.TRANSITION_CLEANUP)
    assert change_state(peer, Transition.TRANSITION_CONFIGURE)
    assert node.wait_for_log('(raw, reliable)', 30), node.log()
    stop_cleanly(node)
