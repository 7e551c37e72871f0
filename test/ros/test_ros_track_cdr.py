# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""ros/track_cdr.py writes the track messages' exact CDR bytes.

Two independent encoders check it: ``rosbags`` (the replay's builders, padding zeroed: the
bytes must be equal) and rclpy (its serialiser leaves alignment padding unset, so its bytes are
compared decoded, after a round trip through the wire format). Frame ids of every length from
0 to 8 and ids of 1 to 6 digits move the strings' ends through every alignment phase.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('vision_msgs.msg')
pytest.importorskip('nav2_dynamic_msgs.msg')

from nav2_dynamic_msgs.msg import ObstacleArray  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from vision_msgs.msg import Detection3DArray  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from vggt4d_ros.perception.tracker import Track  # noqa: E402
from vggt4d_ros.replay import planner_messages as replay_msgs  # noqa: E402
from vggt4d_ros.replay.messages import TYPESTORE  # noqa: E402
from vggt4d_ros.ros import perception_msgs as node_msgs  # noqa: E402
from vggt4d_ros.ros import track_cdr  # noqa: E402
from vggt4d_ros.ros.outputs import header_at  # noqa: E402

BUILDERS = {'detections': (node_msgs.detections_msg, replay_msgs.detections_msg,
                           track_cdr.detections_cdr),
            'obstacles': (node_msgs.obstacles_msg, replay_msgs.obstacles_msg,
                          track_cdr.obstacles_cdr),
            'markers': (node_msgs.markers_msg, replay_msgs.markers_msg, track_cdr.markers_cdr)}


def random_tracks(count: int, rng: np.random.Generator) -> list[Track]:
    tracks = []
    for _ in range(count):
        digits = int(rng.integers(1, 7))
        tracks.append(Track(int(rng.integers(10 ** (digits - 1), 10 ** digits)),
                            rng.normal(size=3), rng.normal(size=3), rng.uniform(0.0, 2.0, 3),
                            0, 1.0, 5, 0.0, float(rng.uniform()), float(rng.uniform()),
                            float(rng.uniform())))
    return tracks


@pytest.mark.parametrize('kind', sorted(BUILDERS))
@pytest.mark.parametrize('frame', ['', 'm', 'ma', 'map', 'odom', 'base_', 'camera', 'camera_',
                                   'camera_o'])
def test_bytes_equal_both_encoders(kind, frame):
    node_build, replay_build, cdr_build = BUILDERS[kind]
    rng = np.random.default_rng(len(frame))
    for count in (0, 1, 3):
        tracks = random_tracks(count, rng)
        stamp_ns = int(rng.integers(0, 2**31 * 10**9))
        ours = cdr_build(stamp_ns, frame, tracks)
        replay = replay_build(tracks, stamp_ns, frame)
        assert ours == bytes(TYPESTORE.serialize_cdr(replay, replay.__msgtype__))
        node = node_build(header_at(stamp_ns, frame), tracks)
        wire = deserialize_message(serialize_message(node), type(node))
        assert deserialize_message(ours, type(node)) == wire


def test_markers_carry_the_content():
    track = Track(12, np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.0, -1.0]),
                  np.array([0.4, 0.2, 0.6]), 0, 1.0, 5, 0.0, 0.9, 0.01, 0.04)
    msg = deserialize_message(track_cdr.markers_cdr(7, 'map', [track]), MarkerArray)
    assert [m.action for m in msg.markers] == [Marker.DELETEALL] + [Marker.ADD] * 3
    assert [m.id for m in msg.markers[1:]] == [36, 37, 38]
    assert [m.type for m in msg.markers[1:]] == [Marker.CUBE, Marker.ARROW,
                                                 Marker.TEXT_VIEW_FACING]
    arrow = msg.markers[2]
    assert [(p.x, p.y, p.z) for p in arrow.points] == [(1.0, 2.0, 3.0), (1.5, 2.0, 2.0)]
    assert msg.markers[3].text == '12' and msg.markers[1].header.frame_id == 'map'
    assert msg.markers[1].header.stamp.nanosec == 7


def test_this_ros_publishes_every_track_message_as_bytes():
    for msg_type in (MarkerArray, Detection3DArray, ObstacleArray):
        assert track_cdr.raw_publishing_problem(msg_type) == ''


def older_marker() -> type:
    """A Marker class of a definition without the texture and mesh file fields."""
    fields = dict(Marker.get_fields_and_field_types())
    for name in ('texture_resource', 'texture', 'uv_coordinates', 'mesh_file'):
        fields.pop(name)
    return type('Marker', (), {'__module__': 'visualization_msgs.msg._marker',
                               'get_fields_and_field_types': staticmethod(lambda: fields)})


def test_another_layout_is_named():
    differences = track_cdr.layout_differences([older_marker()])
    assert len(differences) == 1 and differences[0].startswith('visualization_msgs/Marker:')
    problem = track_cdr.raw_publishing_problem(older_marker())
    assert 'not the Jazzy one' in problem and 'visualization_msgs/Marker' in problem
