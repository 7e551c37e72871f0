# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Planner-output conversions (ros/perception_msgs.py): content checks, no DDS."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rclpy.serialization import serialize_message

from vggt4d_ros.perception import message_content as content
from vggt4d_ros.perception.occupancy import OccupancyGrids
from vggt4d_ros.perception.perception_tracker import DynamicCloud
from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.ros import perception_msgs as pm
from vggt4d_ros.ros.outputs import header_at

HEADER = header_at(1_700_000_000_123_456_789, 'map')


def _track(track_id: int, position, velocity, size=(0.4, 0.5, 0.6)) -> Track:
    return Track(track_id=track_id, position=np.array(position, float),
                 velocity=np.array(velocity, float), size=np.array(size, float),
                 stamp_ns=HEADER.stamp.sec * 10**9 + HEADER.stamp.nanosec, age_s=2.0, hits=20,
                 missed_s=0.0, confidence=0.8, position_var=0.01, velocity_var=0.04)


TRACKS = [_track(3, (1.0, 2.0, 0.5), (0.5, 0.0, 0.0)), _track(7, (-1.0, 0.0, 0.3), (0, -1, 0))]


def test_dynamic_cloud_layout_and_round_trip():
    points = np.array([[1.0, 2.0, 3.0], [-4.0, 5.5, 0.25]], np.float32)
    rgb = np.array([[255, 0, 10], [1, 2, 3]], np.uint8)
    msg = pm.dynamic_cloud_msg(HEADER, DynamicCloud(5, points, rgb, np.array([0, 42])))
    assert [(f.name, f.offset, f.datatype) for f in msg.fields] == [
        ('x', 0, 7), ('y', 4, 7), ('z', 8, 7), ('rgb', 12, 7), ('object_id', 16, 6)]
    assert (msg.point_step, msg.row_step, msg.width, msg.height) == (20, 40, 2, 1)
    assert msg.header.frame_id == 'map' and msg.is_dense
    back = deserialize_message(serialize_message(msg), type(msg))
    xyz, colours, ids = pm.dynamic_cloud_to_numpy(back)
    np.testing.assert_array_equal(xyz, points)
    np.testing.assert_array_equal(colours, rgb)
    np.testing.assert_array_equal(ids, [0, 42])


def test_empty_dynamic_cloud():
    empty = DynamicCloud(5, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8),
                         np.zeros(0, np.int32))
    msg = pm.dynamic_cloud_msg(HEADER, empty)
    assert msg.width == 0 and len(msg.data) == 0 and msg.point_step == 20


def test_occupancy_grids_keep_row_major_cells_and_origin():
    cells = np.array([[0, 100, -1], [100, 0, 0]], np.int8)  # 2 rows (y) x 3 columns (x)
    grids = OccupancyGrids(5, 0.1, (-1.0, -2.0), -0.5, cells, cells * 0, cells)
    msgs = pm.grid_msgs(HEADER, grids)
    assert set(msgs) == {'static', 'dynamic', 'combined'}
    grid = msgs['static']
    assert (grid.info.width, grid.info.height) == (3, 2)
    assert grid.info.resolution == pytest.approx(0.1)
    assert (grid.info.origin.position.x, grid.info.origin.position.y,
            grid.info.origin.position.z) == (-1.0, -2.0, -0.5)
    assert grid.info.map_load_time == HEADER.stamp
    assert list(grid.data) == [0, 100, -1, 100, 0, 0]
    with pytest.raises(ValueError):
        pm.occupancy_grid_msg(HEADER, cells.astype(np.int16), 0.1, (0, 0))


def test_detections_carry_track_ids_boxes_and_scores():
    msg = pm.detections_msg(HEADER, TRACKS)
    assert [d.id for d in msg.detections] == ['3', '7']
    first = msg.detections[0]
    assert first.header.stamp == HEADER.stamp and first.header.frame_id == 'map'
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (1.0, 2.0)
    assert (first.bbox.size.x, first.bbox.size.y, first.bbox.size.z) == (0.4, 0.5, 0.6)
    assert first.results[0].hypothesis.class_id == 'dynamic'
    assert first.results[0].hypothesis.score == pytest.approx(0.8)
    assert first.results[0].pose.covariance[0] == pytest.approx(0.01)
    assert first.results[0].pose.covariance[21] == 0.0  # rotation: not estimated
    deserialize_message(serialize_message(msg), type(msg))


def test_obstacles_carry_velocity_and_deterministic_uuids():
    msg = pm.obstacles_msg(HEADER, TRACKS)
    first = msg.obstacles[0]
    assert bytes(first.uuid.uuid) == uuid.uuid5(content.TRACK_UUID_NAMESPACE, 'track/3').bytes
    assert bytes(first.uuid.uuid) == content.track_uuid(3) != content.track_uuid(7)
    assert (first.velocity.x, first.velocity.y, first.velocity.z) == (0.5, 0.0, 0.0)
    assert (first.position.x, first.position.z) == (1.0, 0.5)
    assert list(first.velocity_covariance[[0, 4, 8]]) == [0.04] * 3
    assert first.score == pytest.approx(0.8)
    deserialize_message(serialize_message(msg), type(msg))


def test_markers_delete_all_first_then_cube_arrow_text():
    from visualization_msgs.msg import Marker

    msg = pm.markers_msg(HEADER, TRACKS)
    kinds = [(m.action, m.type, m.id) for m in msg.markers]
    assert kinds[0][0] == Marker.DELETEALL
    assert kinds[1:4] == [(Marker.ADD, Marker.CUBE, 9), (Marker.ADD, Marker.ARROW, 10),
                          (Marker.ADD, Marker.TEXT_VIEW_FACING, 11)]
    arrow = msg.markers[2]
    assert (arrow.points[1].x - arrow.points[0].x) == pytest.approx(0.5 * content.ARROW_SECONDS)
    assert msg.markers[3].text == '3'
    assert pm.markers_msg(HEADER, []).markers[0].action == Marker.DELETEALL


def test_perception_default_output_frame_is_the_nodes_map_frame():
    from vggt4d_ros.perception.config import Z_UP_FROM_OPTICAL
    from vggt4d_ros.ros.frames import R_BODY_FROM_OPTICAL

    np.testing.assert_array_equal(Z_UP_FROM_OPTICAL, R_BODY_FROM_OPTICAL)
