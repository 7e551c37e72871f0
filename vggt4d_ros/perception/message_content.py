# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What the planner messages hold, without ROS types: the one home of their layouts and values.

Two front ends encode the planner outputs: the node (``ros/perception_msgs.py``, rclpy message
classes) and the replay (``replay/planner_messages.py``, the ``rosbags`` typestore, no rclpy).
Both take from here the dynamic cloud's point layout, the track UUIDs, the detection class,
the covariance layout and the RViz markers of the tracks (kind, id, pose, scale, colour), so
the two write the same bytes (checked by ``test/ros/test_ros_replay_planner_msgs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import functools
import uuid

import numpy as np

from vggt4d_ros.geometry.packed_rgb import pack_rgb
from vggt4d_ros.perception.perception_tracker import DynamicCloud
from vggt4d_ros.perception.tracker import Track

#: sensor_msgs/PointField datatypes used below.
FLOAT32, UINT32 = 7, 6
#: Dynamic cloud fields (name, byte offset, PointField datatype), point_step 20, little endian.
DYNAMIC_CLOUD_FIELDS = (('x', 0, FLOAT32), ('y', 4, FLOAT32), ('z', 8, FLOAT32),
                        ('rgb', 12, FLOAT32), ('object_id', 16, UINT32))
DYNAMIC_CLOUD_DTYPE = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('rgb', '<f4'),
                                ('object_id', '<u4')])
#: Namespace of the obstacle UUIDs: uuid5(namespace, 'track/<id>') (deterministic per id).
TRACK_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, 'https://github.com/vggt4d_ros/tracks')
#: Class label of every detection: the method finds moving things, not categories.
DYNAMIC_CLASS = 'dynamic'
#: Length of the velocity arrow: the distance covered in this many seconds.
ARROW_SECONDS = 1.0
#: The three occupancy grids, in publishing order.
GRID_NAMES = ('static', 'dynamic', 'combined')
#: Marker namespace of the track markers.
MARKER_NAMESPACE = 'tracks'


def dynamic_cloud_records(cloud: DynamicCloud) -> np.ndarray:
    """[N] records of ``DYNAMIC_CLOUD_DTYPE``: x y z, rgb packed 0x00RRGGBB, object id."""
    count = len(cloud.points)
    records = np.empty(count, DYNAMIC_CLOUD_DTYPE)
    points = np.asarray(cloud.points, np.float32).reshape(count, 3)
    records['x'], records['y'], records['z'] = points.T
    records['rgb'] = pack_rgb(np.asarray(cloud.rgb).reshape(count, 3))
    records['object_id'] = np.asarray(cloud.object_ids).astype(np.uint32)
    return records


@functools.lru_cache(maxsize=4096)  # the live tracks' ids, asked again every window
def track_uuid(track_id: int) -> bytes:
    """16 bytes of the track's UUID, deterministic in the id (uuid5)."""
    return uuid.uuid5(TRACK_UUID_NAMESPACE, f'track/{int(track_id)}').bytes


def diagonal_covariance(variance: float, size: int) -> np.ndarray:
    """Row-major size x size covariance [size*size] with ``variance`` on the first 3 diagonals."""
    cov = np.zeros((size, size))
    cov[[0, 1, 2], [0, 1, 2]] = variance
    return cov.ravel()


@functools.lru_cache(maxsize=4096)  # numpy per call: 8 us a track (2-core machine)
def track_colour(track_id: int) -> tuple[float, float, float]:
    """Pick a stable, distinct colour per id (golden-ratio hue walk), RGB in [0, 1]."""
    hue = (track_id * 0.618033988749895) % 1.0
    rgb = np.clip(np.abs((hue * 6.0 + np.array([0.0, 4.0, 2.0])) % 6.0 - 3.0) - 1.0, 0, 1)
    return tuple(float(v) for v in rgb)


@dataclass
class TrackMarker:
    """One RViz marker of a track (``visualization_msgs/Marker`` without the header).

    Attributes:
        kind: 'cube', 'arrow' or 'text' (Marker CUBE, ARROW, TEXT_VIEW_FACING).
        marker_id: 3 * track id (+0 cube, +1 arrow, +2 text).
        position: (x, y, z) pose position (orientation identity; the arrow's pose is the
            identity).
        scale: (x, y, z) Marker.scale.
        colour: RGB in [0, 1]; alpha: opacity.
        points: arrow start and end, two (x, y, z) (empty otherwise).
        text: the id (text markers).

    """

    kind: str
    marker_id: int
    position: tuple[float, float, float]
    scale: tuple[float, float, float]
    colour: tuple[float, float, float]
    alpha: float
    points: list[tuple[float, float, float]] = field(default_factory=list)
    text: str = ''


def track_markers(tracks: list[Track]) -> list[TrackMarker]:
    """Markers of the tracks (after a DELETEALL): per track a box, a velocity arrow, its id.

    The arrow runs from the centre to where the object is ``ARROW_SECONDS`` later at its
    current velocity. On plain Python floats: 4 us a track, against 18 us with numpy per
    track (2-core machine, 50 tracks; docs/performance.md section 17).
    """
    out = []
    for track in tracks:
        colour = track_colour(int(track.track_id))
        base = 3 * int(track.track_id)
        size = [float(v) for v in track.size]
        largest = max(size)
        x, y, z = (float(v) for v in track.position)
        vx, vy, vz = (float(v) for v in track.velocity)
        out.append(TrackMarker('cube', base, (x, y, z), tuple(max(v, 1e-3) for v in size),
                               colour, 0.4))
        width = 0.1 * largest if largest > 0 else 0.01
        end = (x + ARROW_SECONDS * vx, y + ARROW_SECONDS * vy, z + ARROW_SECONDS * vz)
        out.append(TrackMarker('arrow', base + 1, (0.0, 0.0, 0.0),
                               (width, 2 * width, 2 * width), colour, 1.0, [(x, y, z), end]))
        out.append(TrackMarker('text', base + 2, (x, y, z + 0.6 * size[2]),
                               (0.0, 0.0, max(0.5 * largest, 1e-3)), (1.0, 1.0, 1.0), 1.0,
                               text=str(track.track_id)))
    return out
