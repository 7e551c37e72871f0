# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Foxglove live view: the engine's outputs over the Foxglove SDK's local WebSocket server.

:class:`FoxgloveView` is an :class:`~vggt4d_ros.runtime.sink.EngineSink` (compose it with
another sink through :class:`~vggt4d_ros.runtime.sink.TeeSink`). It starts a WebSocket
server (``foxglove-sdk``, optional: imported only here, when a view is built) and streams, on
the channels of :data:`TOPICS` (Foxglove's own protobuf schemas):

* per new frame: its dynamic mask (``foxglove.RawImage`` mono8, 0 static / 255 dynamic), its
  camera image (rgb8) and its dynamic cloud; per window: the camera poses
  (``foxglove.FrameTransforms``: world frame -> camera/child frame per frame), the window's
  static points, the tracks (``foxglove.SceneUpdate``: a box, a velocity arrow showing one
  second of motion and a label per track; the previous ones deleted first) and the three
  occupancy grids (``foxglove.Grid``, one int8 field ``occupancy``: -1 unknown, 0 free,
  100 occupied, rows along +y from the corner at the grid's pose);
* the static map every ``map_period_s`` (and after a map reset, and when a client
  subscribes to it, as a latched topic would be), thinned to ``max_map_points``.

Everything 3D is in the world frame of the frame resolver (the node's ``map`` / ``odom``),
in map units: VGGT's scale-free units unless metric scale is on (then metres). The planner
outputs (dynamic cloud, tracks, grids) are already in the engine's output frame
(``PerceptionConfig.output_from_world``), which must be that same world frame.

Cost: nothing is built for a channel no client subscribes to (``has_sinks``); the SDK encodes
and queues on the calling thread (the engine's worker), after the sink before it in a tee.
A failure inside the view is counted (``stats.errors``) and reported through ``warn``; it
never reaches the engine, so a broken view cannot stop the outputs of the sink beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
import socket
import threading
import time
from typing import Any, Callable, Protocol

import numpy as np

from vggt4d_ros.config_fields import field_meta as _meta
from vggt4d_ros.geometry.rigid import translation_quaternion_from_pose
from vggt4d_ros.geometry.rotation import quaternion_xyzw_from_rotation
from vggt4d_ros.geometry.rotation import rotation_from_axis_angle
from vggt4d_ros.perception.config import default_output_from_world
from vggt4d_ros.perception.message_content import ARROW_SECONDS
from vggt4d_ros.perception.message_content import track_colour
from vggt4d_ros.perception.occupancy import OccupancyGrids
from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.runtime.sink import EngineOutput
from vggt4d_ros.runtime.sink import EngineWarning
from vggt4d_ros.runtime.sink import MaskOutput
from vggt4d_ros.runtime.window import Window

#: Channel topic -> Foxglove schema name. The layout file (config/foxglove_layout.json) uses
#: only these topics (tested).
TOPICS: dict[str, str] = {
    '/vggt4d/dynamic_mask': 'foxglove.RawImage',
    '/vggt4d/image': 'foxglove.RawImage',
    '/vggt4d/window_cloud': 'foxglove.PointCloud',
    '/vggt4d/static_map': 'foxglove.PointCloud',
    '/vggt4d/dynamic_cloud': 'foxglove.PointCloud',
    '/vggt4d/static_grid': 'foxglove.Grid',
    '/vggt4d/dynamic_grid': 'foxglove.Grid',
    '/vggt4d/combined_grid': 'foxglove.Grid',
    '/vggt4d/tracks': 'foxglove.SceneUpdate',
    '/tf': 'foxglove.FrameTransforms',
}

#: Grid channels per :class:`OccupancyGrids` attribute.
GRID_TOPICS = {'static': '/vggt4d/static_grid', 'dynamic': '/vggt4d/dynamic_grid',
               'combined': '/vggt4d/combined_grid'}

#: Warnings reported per view before it goes quiet (the count keeps going in ``stats``).
MAX_WARNINGS = 5

#: Longest wait in ``close`` for the server's port to be released.
PORT_RELEASE_S = 5.0

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoxgloveViewConfig:
    """Settings of the live view (the node's ``foxglove.*`` parameters)."""

    enabled: bool = field(default=False, metadata=_meta(
        'Start the Foxglove live view: a WebSocket server (foxglove-sdk, optional) streaming '
        'masks, clouds, grids, tracks and TF; connect Foxglove to ws://<host>:<port>.'))
    host: str = field(default='127.0.0.1', metadata=_meta(
        'Address the Foxglove server binds to (0.0.0.0: every interface, for a remote '
        'Foxglove; the stream is unauthenticated).'))
    port: int = field(default=8765, metadata=_meta(
        'TCP port of the Foxglove server (0: any free port, logged).', (0, 65535)))
    map_period_s: float = field(default=2.0, metadata=_meta(
        'Minimum seconds between two static maps sent to Foxglove (a new subscriber and a '
        'map reset get one with the next window).', (0.0, 3600.0)))
    max_map_points: int = field(default=1_000_000, metadata=_meta(
        'Bound on the static map points sent to Foxglove (thinned by an even stride).',
        (1, 100_000_000)))
    client_backlog: int = field(default=128, metadata=_meta(
        'Messages queued per Foxglove client; a slow client loses the oldest (bounds the '
        "view's memory to about this many of the largest messages per client).",
        (16, 100_000)))


class FoxgloveUnavailable(ImportError):
    """``foxglove-sdk`` is not installed."""


def import_foxglove() -> Any:
    """Return the ``foxglove`` module, or raise :class:`FoxgloveUnavailable` saying what to do."""
    try:
        import foxglove
        import foxglove.channels  # noqa: F401 - submodules the view uses
        import foxglove.messages  # noqa: F401
        import foxglove.websocket  # noqa: F401
    except ImportError as error:
        raise FoxgloveUnavailable(
            'the Foxglove view needs the foxglove-sdk package '
            '(pip install -r requirements/foxglove.txt)') from error
    return foxglove


class ViewFrames(Protocol):
    """How engine poses and points become world-frame ones (``ros.frames.FrameConvention``)."""

    world_frame: str
    child_frame: str

    def child_pose(self, vggt_from_camera: np.ndarray) -> np.ndarray:
        """Pose [4,4] of ``child_frame`` in ``world_frame`` from a camera-to-world pose."""

    def points_to_world(self, points_vggt: np.ndarray) -> np.ndarray:
        """Map points [N,3] from the engine's global frame to ``world_frame`` (float32)."""


@dataclass(frozen=True)
class ZUpFrames:
    """The default frames without ROS: the node's ``map_to_camera`` convention.

    World = the first camera levelled (x forward, y left, z up), the pose published is the
    camera optical frame's; the same output frame as ``PerceptionConfig``'s default.
    """

    world_frame: str = 'map'
    child_frame: str = 'camera_optical_frame'
    world_from_vggt: np.ndarray = field(default_factory=default_output_from_world)

    def child_pose(self, vggt_from_camera: np.ndarray) -> np.ndarray:
        """Camera pose [4,4] in the world frame."""
        return self.world_from_vggt @ vggt_from_camera

    def points_to_world(self, points_vggt: np.ndarray) -> np.ndarray:
        """Points [N,3] in the world frame (float32)."""
        rotation = self.world_from_vggt[:3, :3].astype(np.float32)
        return points_vggt.astype(np.float32) @ rotation.T + self.world_from_vggt[:3, 3].astype(
            np.float32)


#: Frames for the images of a camera frame id (None: not known yet, the window's poses are
#: not sent).
FrameResolver = Callable[[str], 'ViewFrames | None']

#: The engine's static map: (points [N,3] float32 global frame, colours [N,3] uint8).
MapPoints = Callable[[], tuple[np.ndarray, np.ndarray]]


def default_frames(frame_id: str) -> ViewFrames:
    """Map-to-camera frames for images of ``frame_id``."""
    return ZUpFrames(child_frame=frame_id or 'camera_optical_frame')


@dataclass
class ViewStats:
    """Counters over the view's life: messages logged per topic, errors caught."""

    messages: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))
    errors: int = 0
    last_error: str = ''


class FoxgloveView:
    """Engine sink streaming to Foxglove (see the module docstring).

    Args:
        config: server address and static-map settings (``enabled`` is not read here).
        frames: frame resolver per image frame id (default: :func:`default_frames`).
        map_points: the engine's static map, read when one is due (None: no static map).
        logger: gets a warning per caught failure (``warning(str)``: a ``logging.Logger`` or
            an rclpy logger; default: this module's logger).

    Raises:
        FoxgloveUnavailable: foxglove-sdk is not installed.
        RuntimeError: the server could not start (the port is taken, ...).

    """

    def __init__(self, config: FoxgloveViewConfig, frames: FrameResolver | None = None,
                 map_points: MapPoints | None = None, logger: Any = None) -> None:
        foxglove = import_foxglove()
        self.config = config
        self.stats = ViewStats()
        self._msg = foxglove.messages
        self._frames = frames or default_frames
        self._map_points = map_points
        self._logger = logger or _LOG
        self._last_map_s = -np.inf
        # Set by the server's thread when a client subscribes to the static map.
        self._map_wanted = threading.Event()
        self._context = foxglove.Context()
        self._channels = {topic: _channel_class(foxglove, schema)(topic, context=self._context)
                          for topic, schema in TOPICS.items()}
        self._server = foxglove.start_server(
            name='vggt4d', host=config.host, port=config.port, context=self._context,
            server_listener=_listener(foxglove, self._map_wanted),
            message_backlog_size=config.client_backlog)

    @property
    def port(self) -> int:
        """TCP port the server listens on."""
        return self._server.port

    @property
    def static_map_requested(self) -> bool:
        """Whether a new static-map subscriber waits for a map (sent with the next window)."""
        return self._map_wanted.is_set()

    def subscribed(self, topic: str) -> bool:
        """Whether a client is subscribed to ``topic`` (one of :data:`TOPICS`)."""
        return self._channels[topic].has_sinks()

    def close(self) -> None:
        """Stop the server and close the channels (idempotent).

        Returns once the port is free again (the SDK releases it asynchronously, ~10 ms), so
        a view started right after (the node's deactivate -> activate) can bind it.
        """
        port = self._server.port
        self._server.stop()
        for channel in self._channels.values():
            channel.close()
        _wait_until_free(self.config.host, port, PORT_RELEASE_S)

    # ------------------------------------------------------------------ EngineSink
    def masks_ready(self, window: Window, masks: list[MaskOutput]) -> None:
        """Send each new frame's mask and camera image."""
        self._guard(self._send_masks, window, masks)

    def window_mapped(self, output: EngineOutput) -> None:
        """Send the poses, window cloud, static map (when due) and planner outputs."""
        self._guard(self._send_window, output)

    def warning(self, warning: EngineWarning) -> None:
        """Clear the tracks shown and send the map again with the next window (input reset)."""
        self._guard(self._reset_scene)

    # ------------------------------------------------------------------ sending
    def _guard(self, send: Callable[..., None], *args: Any) -> None:
        try:
            send(*args)
        except Exception as error:  # noqa: B902 - a view failure must not stop the engine
            self.stats.errors += 1
            self.stats.last_error = f'{type(error).__name__}: {error}'
            if self.stats.errors <= MAX_WARNINGS:
                self._logger.warning(f'foxglove view: {self.stats.last_error} (failure '
                                     f'{self.stats.errors}; the engine goes on)')

    def _log(self, topic: str, message: Any) -> None:
        self._channels[topic].log(message)
        self.stats.messages[topic] += 1

    def _send_masks(self, window: Window, masks: list[MaskOutput]) -> None:
        for mask in masks:
            stamp = _timestamp(self._msg, mask.stamp_ns)
            if self.subscribed('/vggt4d/dynamic_mask'):
                self._log('/vggt4d/dynamic_mask',
                          _raw_image(self._msg, stamp, mask.frame_id, mask.mask, 'mono8'))
            if self.subscribed('/vggt4d/image'):
                self._log('/vggt4d/image', _raw_image(self._msg, stamp, mask.frame_id,
                                                      window.frames[mask.index], 'rgb8'))

    def _send_window(self, output: EngineOutput) -> None:
        if not output.frames:
            return
        frames = self._frames(output.frames[0].frame_id)
        if frames is None:
            return
        msg, world = self._msg, frames.world_frame
        stamp_ns = output.frames[-1].stamp_ns
        if self.subscribed('/tf'):
            self._log('/tf', msg.FrameTransforms(transforms=[
                _transform(msg, frame.stamp_ns, world, frames.child_frame,
                           frames.child_pose(np.asarray(frame.pose, np.float64)))
                for frame in output.frames]))
        update = output.update
        if self.subscribed('/vggt4d/window_cloud'):
            self._log('/vggt4d/window_cloud', _point_cloud(
                msg, stamp_ns, world, frames.points_to_world(update.points_xyz),
                update.points_rgb))
        self._send_static_map(msg, stamp_ns, frames, update.reset or update.segment_rescaled)
        if output.perception is not None:
            self._send_perception(output, world)

    def _send_static_map(self, msg: Any, stamp_ns: int, frames: ViewFrames,
                         reset: bool) -> None:
        topic = '/vggt4d/static_map'
        now = time.monotonic()
        due = (now - self._last_map_s >= self.config.map_period_s or reset
               or self._map_wanted.is_set())
        if self._map_points is None or not due or not self.subscribed(topic):
            return
        self._map_wanted.clear()
        self._last_map_s = now
        points, rgb = self._map_points()
        keep = _even_subset(len(points), self.config.max_map_points)
        self._log(topic, _point_cloud(msg, stamp_ns, frames.world_frame,
                                      frames.points_to_world(points[keep]), rgb[keep]))

    def _send_perception(self, output: EngineOutput, world: str) -> None:
        msg, perception = self._msg, output.perception
        if self.subscribed('/vggt4d/dynamic_cloud'):
            for cloud in perception.clouds:
                self._log('/vggt4d/dynamic_cloud', _point_cloud(
                    msg, cloud.stamp_ns, world, cloud.points, cloud.rgb, cloud.object_ids))
        stamp_ns = perception.stamp_ns
        if stamp_ns is None:
            return
        if self.subscribed('/vggt4d/tracks'):
            self._log('/vggt4d/tracks', _scene_update(msg, stamp_ns, world, perception.tracks))
        if perception.grids is not None:
            for name, topic in GRID_TOPICS.items():
                if self.subscribed(topic):
                    self._log(topic, _grid(msg, perception.grids, name, world))

    def _reset_scene(self) -> None:
        self._map_wanted.set()
        if self.subscribed('/vggt4d/tracks'):
            self._log('/vggt4d/tracks', _scene_update(self._msg, time.time_ns(), '', []))


def _listener(foxglove: Any, map_wanted: threading.Event) -> Any:
    """Server callbacks (on the SDK's thread): a new static-map subscriber wants a map."""

    class Listener(foxglove.websocket.ServerListener):
        def on_subscribe(self, client: Any, channel: Any) -> None:
            if channel.topic == '/vggt4d/static_map':
                map_wanted.set()

    return Listener()


def start_view(config: FoxgloveViewConfig, frames: FrameResolver | None = None,
               map_points: MapPoints | None = None, logger: Any = None) -> FoxgloveView | None:
    """Return a running view when ``config.enabled``, else None.

    The address is logged (``logger.info``). A view that cannot start (foxglove-sdk missing,
    the port taken) is logged as a warning and None is returned: the view is optional, the
    engine runs without it. ``logger``: as for :class:`FoxgloveView`.
    """
    if not config.enabled:
        return None
    logger = logger or _LOG
    try:
        view = FoxgloveView(config, frames, map_points, logger)
    except (FoxgloveUnavailable, RuntimeError, OSError) as error:
        logger.warning(f'foxglove view not started: {error}')
        return None
    logger.info(f'foxglove view: ws://{config.host}:{view.port} (open it in Foxglove; '
                'layout: config/foxglove_layout.json)')
    return view


# ---------------------------------------------------------------------- messages
def _channel_class(foxglove: Any, schema: str) -> type:
    """Typed SDK channel of a ``foxglove.<Name>`` schema (``foxglove.channels.<Name>Channel``)."""
    return getattr(foxglove.channels, schema.split('.', 1)[1] + 'Channel')


def _timestamp(msg: Any, stamp_ns: int) -> Any:
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return msg.Timestamp(sec, nsec)


def _raw_image(msg: Any, stamp: Any, frame_id: str, pixels: np.ndarray, encoding: str) -> Any:
    """Build a RawImage of an [H,W] mono8 or [H,W,3] rgb8 uint8 array."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    return msg.RawImage(timestamp=stamp, frame_id=frame_id, width=width, height=height,
                        encoding=encoding, step=pixels.strides[0], data=pixels.tobytes())


def cloud_layout(with_ids: bool) -> np.dtype:
    """Return the record of one point (little endian, packed).

    x y z float32 at offsets 0/4/8, red green blue alpha uint8 at 12-15 (what Foxglove's
    rgba-fields colouring reads), object_id uint32 at 16 when ``with_ids``.
    """
    names = ['x', 'y', 'z', 'red', 'green', 'blue', 'alpha']
    formats = ['<f4'] * 3 + ['u1'] * 4
    if with_ids:
        names.append('object_id')
        formats.append('<u4')
    return np.dtype({'names': names, 'formats': formats})


def _point_cloud(msg: Any, stamp_ns: int, frame_id: str, points: np.ndarray, rgb: np.ndarray,
                 object_ids: np.ndarray | None = None) -> Any:
    """Build a PointCloud of points [N,3], colours [N,3] uint8, ids [N] (see cloud_layout)."""
    layout = cloud_layout(object_ids is not None)
    count = len(points)
    records = np.empty(count, layout)
    xyz = np.asarray(points, np.float32).reshape(count, 3)
    colours = np.asarray(rgb, np.uint8).reshape(count, 3)
    records['x'], records['y'], records['z'] = xyz.T
    records['red'], records['green'], records['blue'] = colours.T
    records['alpha'] = 255
    if object_ids is not None:
        records['object_id'] = np.asarray(object_ids).astype(np.uint32)
    numeric = msg.PackedElementFieldNumericType
    kinds = {'<f4': numeric.Float32, '|u1': numeric.Uint8, '<u4': numeric.Uint32}
    fields = [msg.PackedElementField(name=name, offset=layout.fields[name][1],
                                     type=kinds[layout.fields[name][0].str])
              for name in layout.names]
    return msg.PointCloud(timestamp=_timestamp(msg, stamp_ns), frame_id=frame_id,
                          pose=_pose(msg, np.zeros(3)), point_stride=layout.itemsize,
                          fields=fields, data=records.tobytes())


def _pose(msg: Any, position: np.ndarray, quat_xyzw: np.ndarray | None = None) -> Any:
    x, y, z, w = (0.0, 0.0, 0.0, 1.0) if quat_xyzw is None else (float(v) for v in quat_xyzw)
    return msg.Pose(position=_vector(msg, position),
                    orientation=msg.Quaternion(x=x, y=y, z=z, w=w))


def _vector(msg: Any, values: np.ndarray) -> Any:
    x, y, z = (float(v) for v in values)
    return msg.Vector3(x=x, y=y, z=z)


def _transform(msg: Any, stamp_ns: int, parent: str, child: str, pose: np.ndarray) -> Any:
    translation, quat = translation_quaternion_from_pose(pose)
    x, y, z, w = (float(v) for v in quat)
    return msg.FrameTransform(timestamp=_timestamp(msg, stamp_ns), parent_frame_id=parent,
                              child_frame_id=child, translation=_vector(msg, translation),
                              rotation=msg.Quaternion(x=x, y=y, z=z, w=w))


def _grid(msg: Any, grids: OccupancyGrids, name: str, frame_id: str) -> Any:
    """Grid of one occupancy layer: int8 [H,W], row r at y = origin + r * resolution."""
    cells = np.ascontiguousarray(getattr(grids, name), dtype=np.int8)
    height, width = cells.shape
    origin = np.array([grids.origin_xy[0], grids.origin_xy[1], grids.ground_z])
    field_type = msg.PackedElementFieldNumericType.Int8
    return msg.Grid(timestamp=_timestamp(msg, grids.stamp_ns), frame_id=frame_id,
                    pose=_pose(msg, origin), column_count=width,
                    cell_size=msg.Vector2(x=float(grids.resolution), y=float(grids.resolution)),
                    row_stride=width, cell_stride=1,
                    fields=[msg.PackedElementField(name='occupancy', offset=0, type=field_type)],
                    data=cells.tobytes())


def _scene_update(msg: Any, stamp_ns: int, frame_id: str, tracks: list[Track]) -> Any:
    """Delete every entity shown, then one entity ``track/<id>`` per track."""
    stamp = _timestamp(msg, stamp_ns)
    deletion = msg.SceneEntityDeletion(timestamp=stamp, type=msg.SceneEntityDeletionType.All)
    return msg.SceneUpdate(deletions=[deletion],
                           entities=[_track_entity(msg, stamp, frame_id, t) for t in tracks])


def _track_entity(msg: Any, stamp: Any, frame_id: str, track: Track) -> Any:
    r, g, b = track_colour(track.track_id)
    position = np.asarray(track.position, np.float64)
    size = np.maximum(np.asarray(track.size, np.float64), 1e-3)
    velocity = np.asarray(track.velocity, np.float64)
    speed = float(np.linalg.norm(velocity))
    cube = msg.CubePrimitive(pose=_pose(msg, position), size=_vector(msg, size),
                             color=msg.Color(r=r, g=g, b=b, a=0.4))
    arrows = []
    length = ARROW_SECONDS * speed
    if length > 0.0:
        width = 0.1 * float(size.max())
        arrows.append(msg.ArrowPrimitive(
            pose=_pose(msg, position, arrow_orientation(velocity)),
            shaft_length=0.8 * length, head_length=0.2 * length,
            shaft_diameter=width, head_diameter=2.0 * width,
            color=msg.Color(r=r, g=g, b=b, a=1.0)))
    label = msg.TextPrimitive(
        pose=_pose(msg, position + np.array([0.0, 0.0, 0.6 * size[2]])), billboard=True,
        font_size=14.0, scale_invariant=True, color=msg.Color(r=1.0, g=1.0, b=1.0, a=1.0),
        text=f'{track.track_id}  {speed:.2f}/s')
    metadata = [msg.KeyValuePair(key=key, value=value) for key, value in (
        ('velocity', ' '.join(f'{v:.3f}' for v in velocity)),
        ('age_s', f'{track.age_s:.2f}'), ('confidence', f'{track.confidence:.2f}'))]
    return msg.SceneEntity(timestamp=stamp, frame_id=frame_id, id=f'track/{track.track_id}',
                           metadata=metadata, cubes=[cube], arrows=arrows, texts=[label])


def arrow_orientation(direction: np.ndarray) -> np.ndarray:
    """Quaternion [4] XYZW turning +x (a Foxglove arrow's axis) onto ``direction`` [3]."""
    unit = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    axis = np.cross([1.0, 0.0, 0.0], unit)
    sin, cos = np.linalg.norm(axis), float(unit[0])
    if sin < 1e-12:  # parallel or antiparallel to +x: no axis from the cross product
        rotvec = np.zeros(3) if cos > 0 else np.array([0.0, 0.0, np.pi])
    else:
        rotvec = axis / sin * np.arctan2(sin, cos)
    return quaternion_xyzw_from_rotation(rotation_from_axis_angle(rotvec))


def _wait_until_free(host: str, port: int, timeout_s: float) -> bool:
    """Wait until ``port`` can be bound on ``host`` (address reuse on, as the SDK binds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    return False
        time.sleep(0.01)


def _even_subset(count: int, limit: int) -> np.ndarray:
    """Pick at most ``limit`` of ``count`` indices, evenly spread (all when few enough)."""
    if count <= limit:
        return np.arange(count)
    return np.linspace(0, count - 1, limit).round().astype(np.int64)


__all__ = ['arrow_orientation', 'cloud_layout', 'FoxgloveUnavailable', 'FoxgloveView',
           'FoxgloveViewConfig', 'GRID_TOPICS', 'import_foxglove', 'start_view', 'TOPICS',
           'ViewFrames', 'ViewStats', 'ZUpFrames']
