# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The replay's planner messages (rosbags, no rclpy) are byte-identical to the node's.

``replay/planner_messages.py`` encodes the planner outputs with the ``rosbags`` typestore
for the output bag; ``ros/perception_msgs.py`` builds them with the rclpy classes the node
publishes. The same outputs must give the same CDR bytes (same types, field order, values),
so a bag written by the replay plays back as what the node would have published. The node's
serialiser leaves alignment padding uninitialised, so its bytes are read back by rosbags and
written again (padding zeroed) before the comparison: every value still has to be equal.
"""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import serialize_message

from vggt4d_ros.perception.occupancy import OccupancyGrids
from vggt4d_ros.perception.perception_tracker import DynamicCloud
from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.replay import planner_messages as replay_msgs
from vggt4d_ros.replay.messages import TYPESTORE
from vggt4d_ros.ros import perception_msgs as node_msgs
from vggt4d_ros.ros.outputs import header_at

STAMP = 1_700_000_000_123_456_789
FRAME = 'map_z_up'


def _track(track_id: int, position, velocity, size=(0.4, 0.5, 0.6)) -> Track:
    return Track(track_id=track_id, position=np.array(position, float),
                 velocity=np.array(velocity, float), size=np.array(size, float),
                 stamp_ns=STAMP, age_s=2.0, hits=20, missed_s=0.0, confidence=0.8,
                 position_var=0.01, velocity_var=0.04)


TRACKS = [_track(3, (1.0, 2.0, 0.5), (0.5, 0.0, 0.0)),
          _track(7, (-1.0, 0.0, 0.3), (0.0, -1.0, 0.2), (0.0, 0.0, 0.0))]


def _same_bytes(node_msg, replay_msg) -> None:
    msgtype = replay_msg.__msgtype__
    ours = bytes(TYPESTORE.serialize_cdr(replay_msg, msgtype))
    theirs = bytes(serialize_message(node_msg))
    assert len(ours) == len(theirs), msgtype
    normalised = TYPESTORE.serialize_cdr(TYPESTORE.deserialize_cdr(theirs, msgtype), msgtype)
    assert ours == bytes(normalised), msgtype


@pytest.mark.parametrize('tracks', [TRACKS, []])
def test_tracks_messages_are_identical(tracks):
    pytest.importorskip('vision_msgs.msg')
    pytest.importorskip('nav2_dynamic_msgs.msg')
    header = header_at(STAMP, FRAME)
    _same_bytes(node_msgs.detections_msg(header, tracks),
                replay_msgs.detections_msg(tracks, STAMP, FRAME))
    _same_bytes(node_msgs.obstacles_msg(header, tracks),
                replay_msgs.obstacles_msg(tracks, STAMP, FRAME))
    _same_bytes(node_msgs.markers_msg(header, tracks),
                replay_msgs.markers_msg(tracks, STAMP, FRAME))


def test_cloud_and_grids_are_identical():
    header = header_at(STAMP, FRAME)
    cloud = DynamicCloud(STAMP, np.array([[1.0, 2.0, 3.0], [-4.0, 5.5, 0.25]], np.float32),
                         np.array([[255, 0, 10], [1, 2, 3]], np.uint8), np.array([0, 42]))
    _same_bytes(node_msgs.dynamic_cloud_msg(header, cloud),
                replay_msgs.dynamic_cloud_msg(cloud, FRAME))
    cells = np.array([[0, 100, -1], [100, 0, 0]], np.int8)
    grids = OccupancyGrids(STAMP, 0.1, (-1.0, -2.0), -0.5, cells, cells * 0, cells[::-1])
    node = node_msgs.grid_msgs(header, grids)
    replay = replay_msgs.grid_msgs(grids, FRAME)
    assert set(node) == set(replay)
    for name in node:
        _same_bytes(node[name], replay[name])


def test_pooled_track_messages_are_the_fresh_ones_window_after_window():
    """The node reuses its track messages' objects: each window's message is still the fresh one.

    Windows with more, then fewer tracks, then other kinds at the same pool slots (the pool's
    markers carried other ids, kinds, points and texts before) and none.
    """
    pytest.importorskip('vision_msgs.msg')
    pytest.importorskip('nav2_dynamic_msgs.msg')
    pool = node_msgs.MessagePool()
    header = header_at(STAMP, FRAME)
    many = [_track(k, (0.1 * k, -0.2 * k, 0.3), (0.0, 0.1 * k, 0.0), (0.1 * k, 0.2, 0.3))
            for k in range(1, 6)]
    builders = ((node_msgs.markers_msg, replay_msgs.markers_msg),
                (node_msgs.detections_msg, replay_msgs.detections_msg),
                (node_msgs.obstacles_msg, replay_msgs.obstacles_msg))
    for tracks in (many, TRACKS, TRACKS[1:], [], many[::-1], TRACKS):
        for node_build, replay_build in builders:
            pooled = node_build(header, tracks, pool=pool)
            assert pooled == node_build(header, tracks)  # every field (rclpy __eq__)
            # The wire bytes (rclpy leaves alignment padding unset: compared normalised).
            _same_bytes(pooled, replay_build(tracks, STAMP, FRAME))
        assert len(pooled.obstacles) == len(tracks)
