# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The track messages written straight to CDR bytes, for ``Publisher.publish(bytes)``.

Detections, obstacles and markers are the node's largest messages per window: with ~50 tracks
the message path (``perception_msgs``: set the fields of ~150 pooled ``Marker`` objects, then
``publish`` converts them to C structs and serialises) took 3.8 ms on the 2-core machine, 2.3 ms
of it the markers, and 8.8 ms on section 16's GPU host, all of it holding the GIL the worker's
launches wait for (docs/performance.md section 16). Writing the same bytes with ``struct``
takes 0.96 ms there, 3.3x less than the pooled messages' 3.2 ms (section 17,
``tools/bench_track_msgs.py``).

The bytes are the CDR (XCDR1, little endian) encoding of the Jazzy definitions, the same as
``rclpy.serialization.serialize_message`` of the ``perception_msgs`` builders' messages (a
test compares them). The layouts are checked once against the message classes of the running
ROS (:func:`raw_publishing_problem`): where one differs (another distribution's definition) or
the rclpy cannot publish bytes, the node keeps the message path for that message.

CDR rules used: a 4-byte encapsulation header (``00 01 00 00``) first; every primitive aligned
to its size counted from the end of that header; a string is a uint32 length (with its NUL),
the bytes and a NUL; a sequence a uint32 count and its elements; a fixed array only its
elements; a nested message no alignment of its own.
"""

from __future__ import annotations

import struct
from typing import Callable, Sequence

import numpy as np
from visualization_msgs.msg import Marker

from vggt4d_ros.perception import message_content as content
from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.ros.perception_msgs import MARKER_TYPES

_ENCAPSULATION = b'\x00\x01\x00\x00'
_U32 = struct.Struct('<I')
_F32 = struct.Struct('<f')
_STAMP = struct.Struct('<iI')
_MARKER_IDS = struct.Struct('<iii')
# pose (position, orientation) + scale: 10 float64; colour 4 float32; lifetime; frame_locked.
_MARKER_BODY = struct.Struct('<10d4fiI?')
# score, pose (7), covariance (36) of the hypothesis, then the box centre (7) and size (3).
_DETECTION_BODY = struct.Struct('<54d')
# position, velocity, size, position covariance (9), velocity covariance (9).
_OBSTACLE_BODY = struct.Struct('<27d')
_IDENTITY = (0.0, 0.0, 0.0, 1.0)
# Where ``message_content.diagonal_covariance`` puts the variance (row-major 6x6 and 3x3).
_COVARIANCE_DIAGONAL_6 = tuple(np.flatnonzero(content.diagonal_covariance(1.0, 6)).tolist())
_COVARIANCE_DIAGONAL_3 = tuple(np.flatnonzero(content.diagonal_covariance(1.0, 3)).tolist())

#: The field lists (``get_fields_and_field_types``) the writers below encode, per type.
LAYOUTS = {
    'visualization_msgs/MarkerArray': {'markers': 'sequence<visualization_msgs/Marker>'},
    'visualization_msgs/Marker': {
        'header': 'std_msgs/Header', 'ns': 'string', 'id': 'int32', 'type': 'int32',
        'action': 'int32', 'pose': 'geometry_msgs/Pose', 'scale': 'geometry_msgs/Vector3',
        'color': 'std_msgs/ColorRGBA', 'lifetime': 'builtin_interfaces/Duration',
        'frame_locked': 'boolean', 'points': 'sequence<geometry_msgs/Point>',
        'colors': 'sequence<std_msgs/ColorRGBA>', 'texture_resource': 'string',
        'texture': 'sensor_msgs/CompressedImage',
        'uv_coordinates': 'sequence<visualization_msgs/UVCoordinate>', 'text': 'string',
        'mesh_resource': 'string', 'mesh_file': 'visualization_msgs/MeshFile',
        'mesh_use_embedded_materials': 'boolean'},
    'sensor_msgs/CompressedImage': {'header': 'std_msgs/Header', 'format': 'string',
                                    'data': 'sequence<uint8>'},
    'visualization_msgs/MeshFile': {'filename': 'string', 'data': 'sequence<uint8>'},
    'vision_msgs/Detection3DArray': {'header': 'std_msgs/Header',
                                     'detections': 'sequence<vision_msgs/Detection3D>'},
    'vision_msgs/Detection3D': {'header': 'std_msgs/Header',
                                'results': 'sequence<vision_msgs/ObjectHypothesisWithPose>',
                                'bbox': 'vision_msgs/BoundingBox3D', 'id': 'string'},
    'vision_msgs/ObjectHypothesisWithPose': {'hypothesis': 'vision_msgs/ObjectHypothesis',
                                             'pose': 'geometry_msgs/PoseWithCovariance'},
    'vision_msgs/ObjectHypothesis': {'class_id': 'string', 'score': 'double'},
    'vision_msgs/BoundingBox3D': {'center': 'geometry_msgs/Pose',
                                  'size': 'geometry_msgs/Vector3'},
    'nav2_dynamic_msgs/ObstacleArray': {'header': 'std_msgs/Header',
                                        'obstacles': 'sequence<nav2_dynamic_msgs/Obstacle>'},
    'nav2_dynamic_msgs/Obstacle': {
        'uuid': 'unique_identifier_msgs/UUID', 'score': 'float',
        'position': 'geometry_msgs/Point', 'velocity': 'geometry_msgs/Vector3',
        'size': 'geometry_msgs/Vector3', 'position_covariance': 'double[9]',
        'velocity_covariance': 'double[9]'},
    'unique_identifier_msgs/UUID': {'uuid': 'uint8[16]'},
    'std_msgs/Header': {'stamp': 'builtin_interfaces/Time', 'frame_id': 'string'},
    'builtin_interfaces/Time': {'sec': 'int32', 'nanosec': 'uint32'},
    'builtin_interfaces/Duration': {'sec': 'int32', 'nanosec': 'uint32'},
    'geometry_msgs/Pose': {'position': 'geometry_msgs/Point',
                           'orientation': 'geometry_msgs/Quaternion'},
    'geometry_msgs/PoseWithCovariance': {'pose': 'geometry_msgs/Pose',
                                         'covariance': 'double[36]'},
    'visualization_msgs/UVCoordinate': {'u': 'float', 'v': 'float'},
    'geometry_msgs/Point': {'x': 'double', 'y': 'double', 'z': 'double'},
    'geometry_msgs/Vector3': {'x': 'double', 'y': 'double', 'z': 'double'},
    'geometry_msgs/Quaternion': {'x': 'double', 'y': 'double', 'z': 'double', 'w': 'double'},
    'std_msgs/ColorRGBA': {'r': 'float', 'g': 'float', 'b': 'float', 'a': 'float'},
}


class CdrWriter:
    """A CDR (XCDR1, little endian) byte stream, written front to back."""

    __slots__ = ('data',)

    def __init__(self) -> None:
        self.data = bytearray(_ENCAPSULATION)

    def align(self, size: int) -> None:
        """Pad with zeros to a multiple of ``size`` (counted after the encapsulation)."""
        pad = -(len(self.data) - len(_ENCAPSULATION)) % size
        if pad:
            self.data += bytes(pad)

    def pack(self, packer: struct.Struct, alignment: int, *values) -> None:
        """Align to ``alignment`` (the first field's size), then write ``values``."""
        self.align(alignment)
        self.data += packer.pack(*values)

    def u32(self, value: int) -> None:
        """Write a uint32 (a sequence count, a string length)."""
        self.pack(_U32, 4, value)

    def string(self, text: str | bytes) -> None:
        """Write a string: its length with the NUL, its UTF-8 bytes, the NUL."""
        raw = text.encode() if isinstance(text, str) else text
        self.u32(len(raw) + 1)
        self.data += raw
        self.data += b'\0'

    def header(self, stamp_ns: int, frame_id: str) -> None:
        """Write a std_msgs/Header."""
        self.pack(_STAMP, 4, *divmod(int(stamp_ns), 1_000_000_000))
        self.string(frame_id)

    def segment(self, segment: Segment) -> None:
        """Write a constant run of fields (its padding depends on where it starts)."""
        self.data += segment.at(len(self.data) - len(_ENCAPSULATION))

    def bytes(self) -> bytes:
        """Return the whole serialised message."""
        return bytes(self.data)


class Segment:
    """Fields that are the same in every item of a message, written once per start phase.

    A run of constant fields has the same bytes wherever it starts, up to the padding in
    front of its aligned fields: that depends only on the start offset modulo 8.
    """

    def __init__(self, write: Callable[[CdrWriter], None]) -> None:
        self._write = write
        self._by_phase: dict[int, bytes] = {}

    def at(self, offset: int) -> bytes:
        """Return the segment's bytes when it starts ``offset`` bytes into the payload."""
        phase = offset % 8
        cached = self._by_phase.get(phase)
        if cached is None:
            writer = CdrWriter()
            writer.data += bytes(phase)
            start = len(writer.data)
            self._write(writer)
            cached = self._by_phase[phase] = bytes(writer.data[start:])
        return cached


def _empty_marker_middle(writer: CdrWriter) -> None:
    """Marker fields between ``points`` and ``text``, all empty: colors .. uv_coordinates."""
    writer.u32(0)  # colors
    writer.string('')  # texture_resource
    writer.header(0, '')  # texture.header
    writer.string('')  # texture.format
    writer.u32(0)  # texture.data
    writer.u32(0)  # uv_coordinates


def _empty_marker_tail(writer: CdrWriter) -> None:
    """Marker fields after ``text``: mesh_resource, mesh_file, mesh_use_embedded_materials."""
    writer.string('')
    writer.string('')
    writer.u32(0)
    writer.data += b'\0'


_MARKER_MIDDLE = Segment(_empty_marker_middle)
_MARKER_TAIL = Segment(_empty_marker_tail)


def markers_cdr(stamp_ns: int, frame_id: str, tracks: Sequence[Track],
                namespace: str = content.MARKER_NAMESPACE) -> bytes:
    """Return ``perception_msgs.markers_msg``'s MarkerArray as CDR bytes.

    A DELETEALL first, then ``message_content.track_markers``: per track a CUBE, a velocity
    ARROW and its id (TEXT_VIEW_FACING).
    """
    specs = content.track_markers(tracks)
    prefix = Segment(lambda writer: (writer.header(stamp_ns, frame_id),
                                     writer.string(namespace)))
    writer = CdrWriter()
    writer.u32(len(specs) + 1)
    _marker(writer, prefix, 0, Marker.ARROW, Marker.DELETEALL, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0),
            (0.0, 0.0, 0.0), 0.0, (), '')
    for spec in specs:
        _marker(writer, prefix, spec.marker_id, MARKER_TYPES[spec.kind], Marker.ADD,
                spec.position,
                spec.scale, spec.colour, spec.alpha, spec.points, spec.text)
    return writer.bytes()


def _marker(writer: CdrWriter, prefix: Segment, marker_id: int, kind: int, action: int,
            position: Sequence[float], scale: Sequence[float],
            colour: Sequence[float], alpha: float, points: Sequence[np.ndarray],
            text: str) -> None:
    """Write one Marker: pose orientation identity, lifetime 0, no colours, texture or mesh."""
    writer.segment(prefix)
    writer.pack(_MARKER_IDS, 4, int(marker_id), kind, action)
    x, y, z = position
    sx, sy, sz = scale
    r, g, b = colour
    writer.pack(_MARKER_BODY, 8, float(x), float(y), float(z), *_IDENTITY, float(sx),
                float(sy), float(sz), r, g, b, float(alpha), 0, 0, False)
    writer.u32(len(points))
    if len(points):
        writer.pack(struct.Struct(f'<{3 * len(points)}d'), 8,
                    *np.asarray(points, np.float64).ravel().tolist())
    writer.segment(_MARKER_MIDDLE)
    writer.string(text)
    writer.segment(_MARKER_TAIL)


def detections_cdr(stamp_ns: int, frame_id: str, tracks: Sequence[Track]) -> bytes:
    """Return ``perception_msgs.detections_msg``'s Detection3DArray as CDR bytes."""
    prefix = Segment(lambda writer: (writer.header(stamp_ns, frame_id), writer.u32(1),
                                     writer.string(content.DYNAMIC_CLASS)))
    writer = CdrWriter()
    writer.header(stamp_ns, frame_id)
    writer.u32(len(tracks))
    covariance = [0.0] * 36
    for track in tracks:
        writer.segment(prefix)  # header, one result, its class
        position = [float(v) for v in track.position]
        variance = float(track.position_var)
        for index in _COVARIANCE_DIAGONAL_6:
            covariance[index] = variance
        writer.pack(_DETECTION_BODY, 8, float(track.confidence), *position, *_IDENTITY,
                    *covariance, *position, *_IDENTITY, *(float(v) for v in track.size))
        writer.string(str(track.track_id))
    return writer.bytes()


def obstacles_cdr(stamp_ns: int, frame_id: str, tracks: Sequence[Track]) -> bytes:
    """Return ``perception_msgs.obstacles_msg``'s ObstacleArray as CDR bytes."""
    writer = CdrWriter()
    writer.header(stamp_ns, frame_id)
    writer.u32(len(tracks))
    position_cov, velocity_cov = [0.0] * 9, [0.0] * 9
    for track in tracks:
        writer.data += content.track_uuid(track.track_id)
        writer.pack(_F32, 4, float(track.confidence))
        for index in _COVARIANCE_DIAGONAL_3:
            position_cov[index] = float(track.position_var)
            velocity_cov[index] = float(track.velocity_var)
        writer.pack(_OBSTACLE_BODY, 8, *(float(v) for v in track.position),
                    *(float(v) for v in track.velocity), *(float(v) for v in track.size),
                    *position_cov, *velocity_cov)
    return writer.bytes()


def raw_publishing_problem(message_type: type) -> str:
    """Why the node cannot publish ``message_type`` as this module's bytes ('' when it can).

    It can when the rclpy publishes bytes (``Publisher.publish(bytes)``, rclpy's
    ``publish_raw``) and the message's layout, nested types included, is the one written here.
    """
    from rclpy.impl.implementation_singleton import rclpy_implementation
    if not hasattr(rclpy_implementation.Publisher, 'publish_raw'):
        return 'this rclpy cannot publish serialised messages'
    differences = layout_differences([message_type])
    if differences:
        return 'its layout is not the Jazzy one this node writes: ' + '; '.join(differences)
    return ''


def layout_differences(message_types: Sequence[type]) -> list[str]:
    """Compare the classes' field lists (and their nested types') with :data:`LAYOUTS`.

    Returns:
        One line per type that differs or is not known; empty when every layout matches.

    """
    differences: list[str] = []
    seen: set[str] = set()
    pending = list(message_types)
    while pending:
        msg_type = pending.pop()
        name = _type_name(msg_type)
        if name in seen:
            continue
        seen.add(name)
        fields = msg_type.get_fields_and_field_types()
        if LAYOUTS.get(name) != fields:
            differences.append(f'{name}: {fields}')
            continue
        pending.extend(_nested_types(msg_type))
    return differences


def _type_name(msg_type: type) -> str:
    package = msg_type.__module__.split('.')[0]
    return f'{package}/{msg_type.__name__}'


def _nested_types(msg_type: type) -> list[type]:
    """Return the message classes of ``msg_type``'s fields (sequences and arrays included)."""
    nested = []
    for slot_type in getattr(msg_type, 'SLOT_TYPES', ()):
        inner = getattr(slot_type, 'value_type', slot_type)
        if hasattr(inner, 'namespaces'):  # a NamespacedType: a message
            module = __import__('.'.join(inner.namespaces), fromlist=[inner.name])
            nested.append(getattr(module, inner.name))
    return nested


__all__ = ['CdrWriter', 'LAYOUTS', 'Segment', 'detections_cdr', 'layout_differences',
           'markers_cdr', 'obstacles_cdr', 'raw_publishing_problem']
