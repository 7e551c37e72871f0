# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Planner outputs -> ``rosbags`` messages (no rclpy): what the node publishes, for the bag.

The same messages as ``ros/perception_msgs.py`` builds in the node (content from
``perception/message_content.py``; the CDR bytes are compared by a test): the dynamic cloud
(``sensor_msgs/PointCloud2``), the three ``nav_msgs/OccupancyGrid``, ``vision_msgs/
Detection3DArray``, ``nav2_dynamic_msgs/ObstacleArray`` and the track markers
(``visualization_msgs/MarkerArray``). ``vision_msgs`` and ``nav2_dynamic_msgs`` are not in
the ``rosbags`` Jazzy typestore: their definitions are read from the repository's ``msgs/``
(installed under ``share/vggt4d_ros/msgs``) and registered on first use, so the output bag
carries their schema text like any other type.

Ground-truth objects (the synthetic scene's ``/ground_truth/objects``) use the same
ObstacleArray: the UUID holds the object id as a 128-bit big-endian integer, the score the
object's visible fraction in the frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rosbags.typesys import get_types_from_msg

from vggt4d_ros.perception import message_content as content
from vggt4d_ros.perception.occupancy import OccupancyGrids
from vggt4d_ros.perception.perception_tracker import DynamicCloud
from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.replay.messages import header_msg
from vggt4d_ros.replay.messages import POINT_CLOUD2
from vggt4d_ros.replay.messages import TYPESTORE

OCCUPANCY_GRID = 'nav_msgs/msg/OccupancyGrid'
DETECTION3D_ARRAY = 'vision_msgs/msg/Detection3DArray'
OBSTACLE_ARRAY = 'nav2_dynamic_msgs/msg/ObstacleArray'
MARKER_ARRAY = 'visualization_msgs/msg/MarkerArray'
#: Packages registered from ``msgs/`` (dependencies first).
GENERATED_PACKAGES = ('vision_msgs', 'nav2_dynamic_msgs')
_T = TYPESTORE.types
_MARKER_KINDS = {'cube': 'CUBE', 'arrow': 'ARROW', 'text': 'TEXT_VIEW_FACING'}


def msgs_dir() -> Path:
    """Find the message definitions: ``msgs/`` of the source tree or the installed share."""
    here = Path(__file__).resolve()
    for ancestor in here.parents:
        for candidate in (ancestor / 'msgs', ancestor / 'share' / 'vggt4d_ros' / 'msgs'):
            if (candidate / 'nav2_dynamic_msgs' / 'msg' / 'Obstacle.msg').is_file():
                return candidate
    raise FileNotFoundError('message definitions (msgs/vision_msgs, msgs/nav2_dynamic_msgs) '
                            f'not found above {here}')


def register_types() -> None:
    """Add vision_msgs and nav2_dynamic_msgs to the replay's typestore (once)."""
    if OBSTACLE_ARRAY in _T and DETECTION3D_ARRAY in _T:
        return
    types: dict[str, Any] = {}
    root = msgs_dir()
    for package in GENERATED_PACKAGES:
        for path in sorted((root / package / 'msg').glob('*.msg')):
            types.update(get_types_from_msg(path.read_text(), f'{package}/msg/{path.stem}'))
    TYPESTORE.register(types)


try:  # the replay's reader and writer know the types from the start when msgs/ is there
    register_types()
except FileNotFoundError:  # pragma: no cover - an install without msgs/: builders raise
    pass


def _point(values: Sequence[float]) -> Any:
    return _T['geometry_msgs/msg/Point'](x=float(values[0]), y=float(values[1]),
                                         z=float(values[2]))


def _vector(values: Sequence[float]) -> Any:
    return _T['geometry_msgs/msg/Vector3'](x=float(values[0]), y=float(values[1]),
                                           z=float(values[2]))


def _pose(position: Sequence[float]) -> Any:
    """Pose at ``position`` with the identity orientation."""
    return _T['geometry_msgs/msg/Pose'](
        position=_point(position),
        orientation=_T['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0))


def dynamic_cloud_msg(cloud: DynamicCloud, frame_id: str) -> Any:
    """PointCloud2 of one frame's dynamic points, stamped with the frame (layout: content)."""
    records = content.dynamic_cloud_records(cloud)
    field = _T['sensor_msgs/msg/PointField']
    fields = [field(name=name, offset=offset, datatype=datatype, count=1)
              for name, offset, datatype in content.DYNAMIC_CLOUD_FIELDS]
    points = np.stack([records['x'], records['y'], records['z']], axis=1)
    return _T[POINT_CLOUD2](header=header_msg(cloud.stamp_ns, frame_id), height=1,
                            width=len(records), fields=fields, is_bigendian=False,
                            point_step=records.dtype.itemsize,
                            row_step=records.dtype.itemsize * len(records),
                            data=records.view(np.uint8).reshape(-1),
                            is_dense=bool(np.isfinite(points).all()))


def dynamic_cloud_arrays(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """Points [N,3] float32 and object ids [N] uint32 of a dynamic cloud message."""
    records = np.frombuffer(bytes(msg.data), dtype=content.DYNAMIC_CLOUD_DTYPE,
                            count=msg.width * msg.height)
    return np.stack([records['x'], records['y'], records['z']], axis=1), records['object_id']


def grid_msgs(grids: OccupancyGrids, frame_id: str) -> dict[str, Any]:
    """Build the three OccupancyGrid messages {'static', 'dynamic', 'combined'} (grids' stamp).

    Cells row-major [height, width] (rows along +y), origin at the grid corner on the ground
    (z = ``ground_z``), ``map_load_time`` = the stamp.
    """
    header = header_msg(grids.stamp_ns, frame_id)
    out = {}
    for name in content.GRID_NAMES:
        cells = np.ascontiguousarray(getattr(grids, name), np.int8)
        info = _T['nav_msgs/msg/MapMetaData'](
            map_load_time=header.stamp, resolution=float(grids.resolution),
            width=int(cells.shape[1]), height=int(cells.shape[0]),
            origin=_pose((grids.origin_xy[0], grids.origin_xy[1], grids.ground_z)))
        out[name] = _T[OCCUPANCY_GRID](header=header, info=info, data=cells.reshape(-1))
    return out


def detections_msg(tracks: list[Track], stamp_ns: int, frame_id: str) -> Any:
    """Detection3DArray: one detection per track, id = track id (see ros/perception_msgs)."""
    register_types()
    header = header_msg(stamp_ns, frame_id)
    detections = []
    for track in tracks:
        hypothesis = _T['vision_msgs/msg/ObjectHypothesis'](
            class_id=content.DYNAMIC_CLASS, score=float(track.confidence))
        pose = _T['geometry_msgs/msg/PoseWithCovariance'](
            pose=_pose(track.position),
            covariance=content.diagonal_covariance(track.position_var, 6))
        result = _T['vision_msgs/msg/ObjectHypothesisWithPose'](hypothesis=hypothesis,
                                                                pose=pose)
        bbox = _T['vision_msgs/msg/BoundingBox3D'](center=_pose(track.position),
                                                   size=_vector(track.size))
        detections.append(_T['vision_msgs/msg/Detection3D'](
            header=header, results=[result], bbox=bbox, id=str(track.track_id)))
    return _T[DETECTION3D_ARRAY](header=header, detections=detections)


def obstacle_array_msg(uuids: Sequence[bytes], scores: np.ndarray, positions: np.ndarray,
                       velocities: np.ndarray, sizes: np.ndarray, position_vars: np.ndarray,
                       velocity_vars: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """Build an ObstacleArray of K obstacles (arrays [K] or [K,3]; covariances diagonal)."""
    register_types()
    obstacles = []
    for k, key in enumerate(uuids):
        obstacles.append(_T['nav2_dynamic_msgs/msg/Obstacle'](
            uuid=_T['unique_identifier_msgs/msg/UUID'](
                uuid=np.frombuffer(key, np.uint8).copy()),
            score=float(scores[k]), position=_point(positions[k]),
            velocity=_vector(velocities[k]), size=_vector(sizes[k]),
            position_covariance=content.diagonal_covariance(position_vars[k], 3),
            velocity_covariance=content.diagonal_covariance(velocity_vars[k], 3)))
    return _T[OBSTACLE_ARRAY](header=header_msg(stamp_ns, frame_id), obstacles=obstacles)


def obstacles_msg(tracks: list[Track], stamp_ns: int, frame_id: str) -> Any:
    """Build the tracks' ObstacleArray: uuid (``track_uuid``), score, centre, velocity, size."""
    def column(name: str) -> np.ndarray:
        return np.array([getattr(track, name) for track in tracks], np.float64)

    return obstacle_array_msg([content.track_uuid(t.track_id) for t in tracks],
                              column('confidence'), column('position').reshape(-1, 3),
                              column('velocity').reshape(-1, 3), column('size').reshape(-1, 3),
                              column('position_var'), column('velocity_var'), stamp_ns,
                              frame_id)


def object_uuid(object_id: int) -> bytes:
    """UUID bytes of a ground-truth object: its id as a 128-bit big-endian integer."""
    return int(object_id).to_bytes(16, 'big')


def obstacle_arrays(msg: Any) -> dict[str, Any]:
    """Decode an ObstacleArray.

    Returns:
        'ids': K Python ints (each UUID read as a big-endian integer), 'scores' [K],
        'positions', 'velocities', 'sizes' [K,3] float64.

    """
    obstacles = list(msg.obstacles)

    def vectors(name: str) -> np.ndarray:
        return np.array([[getattr(o, name).x, getattr(o, name).y, getattr(o, name).z]
                         for o in obstacles], np.float64).reshape(-1, 3)

    return {'ids': [int.from_bytes(bytes(o.uuid.uuid), 'big') for o in obstacles],
            'scores': np.array([o.score for o in obstacles], np.float64),
            'positions': vectors('position'), 'velocities': vectors('velocity'),
            'sizes': vectors('size')}


def markers_msg(tracks: list[Track], stamp_ns: int, frame_id: str) -> Any:
    """MarkerArray: DELETEALL, then per track a CUBE, a velocity ARROW and its id (TEXT)."""
    header = header_msg(stamp_ns, frame_id)
    marker = _T['visualization_msgs/msg/Marker']
    markers = [_marker(header, 0, 0, marker.DELETEALL, _pose((0, 0, 0)), (0.0, 0.0, 0.0),
                       (0.0, 0.0, 0.0, 0.0))]
    for spec in content.track_markers(tracks):
        markers.append(_marker(header, spec.marker_id, getattr(marker, _MARKER_KINDS[spec.kind]),
                               marker.ADD, _pose(spec.position), spec.scale,
                               (*spec.colour, spec.alpha), [_point(p) for p in spec.points],
                               spec.text))
    return _T[MARKER_ARRAY](markers=markers)


def _marker(header: Any, marker_id: int, kind: int, action: int, pose: Any,
            scale: Sequence[float], rgba: Sequence[float], points: list | None = None,
            text: str = '') -> Any:
    """Build a Marker with every field set (rosbags messages have no defaults)."""
    empty_header = header_msg(0, '')
    return _T['visualization_msgs/msg/Marker'](
        header=header, ns=content.MARKER_NAMESPACE, id=int(marker_id), type=int(kind),
        action=int(action), pose=pose, scale=_vector(scale),
        color=_T['std_msgs/msg/ColorRGBA'](r=float(rgba[0]), g=float(rgba[1]),
                                           b=float(rgba[2]), a=float(rgba[3])),
        lifetime=_T['builtin_interfaces/msg/Duration'](sec=0, nanosec=0), frame_locked=False,
        points=points or [], colors=[], texture_resource='',
        texture=_T['sensor_msgs/msg/CompressedImage'](header=empty_header, format='',
                                                      data=np.zeros(0, np.uint8)),
        uv_coordinates=[], text=text, mesh_resource='',
        mesh_file=_T['visualization_msgs/msg/MeshFile'](filename='', data=np.zeros(0, np.uint8)),
        mesh_use_embedded_materials=False)
