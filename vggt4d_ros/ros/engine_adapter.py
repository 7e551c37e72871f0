# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node's view of the PerceptionEngine: configs from parameters, results ready to publish.

Runs on the worker thread only (construction and parameter reads happen at configure). Per
window the masks come first, through the engine's ``on_masks`` hook right after the backend
(handed to the node's mask callback as ``FrameMask`` items); poses, the window cloud and the
map follow after the mapper as ``WindowPublish`` items from ``take_results``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
import time
from typing import Any, Callable

import numpy as np

from vggt4d_ros.mapping.engine import EngineOutput
from vggt4d_ros.mapping.engine import MaskOutput
from vggt4d_ros.mapping.engine import PerceptionEngine
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.window import Window
from vggt4d_ros.mapping.window import WindowConfig
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.ros.frame_queue import QueuedFrame
from vggt4d_ros.ros.frames import FrameConvention
from vggt4d_ros.ros.frames import make_convention
from vggt4d_ros.ros.frames import pose_from_xyz_quat
from vggt4d_ros.ros.outputs import FrameMask
from vggt4d_ros.ros.outputs import FramePose
from vggt4d_ros.ros.outputs import header_at
from vggt4d_ros.ros.params import declare_group
from vggt4d_ros.ros.params import NodeParams
from vggt4d_ros.ros.params import read_group

#: Parameter groups: prefix -> config class. ``window.mode`` comes from the node's ``mode``.
GROUPS = {'window': WindowConfig, 'mapper': MapperConfig, 'pipeline': PipelineConfig}
EXCLUDED = {'window': ('mode',)}

#: Arrival times remembered for latency; far more than a window plus the queue.
_ARRIVALS_KEPT = 4096


@dataclass
class WindowPublish:
    """What one processed window publishes.

    Attributes:
        frames: poses of the window's new frames (their masks went out before the mapper).
        window_cloud: (points [N,3] float32, colours [N,3] uint8) in VGGT's global frame.
        static_map: the whole static map likewise, or None when not due.
        reset: the map restarted with this window (path is cleared).

    """

    frames: list[FramePose]
    window_cloud: tuple[np.ndarray, np.ndarray] | None
    static_map: tuple[np.ndarray, np.ndarray] | None
    reset: bool


#: The node's mask callback: the new frames' masks of one window, in time order.
MaskCallback = Callable[[list[FrameMask]], None]


class EngineAdapter:
    """Builds the engine from parameters; hands out masks early and WindowPublish items."""

    @staticmethod
    def declare_parameters(node) -> None:
        """Declare ``window.*``, ``mapper.*`` and ``pipeline.*`` (see params.declare_group)."""
        for group, config_cls in GROUPS.items():
            declare_group(node, group, config_cls, exclude=EXCLUDED.get(group, ()))

    def __init__(self, node, params: NodeParams) -> None:
        self._node = node
        self._params = params
        self.window_config = read_group(node, 'window', WindowConfig,
                                        exclude=EXCLUDED['window'], mode=params.mode)
        self.mapper_config = read_group(node, 'mapper', MapperConfig)
        self._pipeline_config = read_group(node, 'pipeline', PipelineConfig)
        self._engine: PerceptionEngine | None = None
        self._on_masks: MaskCallback | None = None
        self._arrivals: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._results: list[WindowPublish] = []
        self._notes: list[str] = []
        self._first_window_seen = False
        self._last_map_s = -np.inf
        self._conventions: dict[str, FrameConvention] = {}
        self._window_resets = 0
        self._reset_counts = (0, 0)
        self._extrinsic: np.ndarray | None = None
        if params.tf_mode == 'odom_to_base' and params.extrinsic_source == 'parameter':
            self._extrinsic = pose_from_xyz_quat(params.base_to_camera)
        self._tf_buffer = None
        if params.tf_mode == 'odom_to_base' and params.extrinsic_source == 'tf':
            self._tf_buffer = _tf_listener(node)

    @property
    def window_size(self) -> int:
        return self.window_config.window_size

    @property
    def stride(self) -> int:
        return self.window_config.stride

    def pipeline_config(self) -> PipelineConfig:
        return self._pipeline_config

    def start(self, backend: Any, on_masks: MaskCallback | None = None) -> None:
        """Create a fresh engine around ``backend`` (activate).

        ``on_masks`` receives each window's masks right after the backend, before the mapper
        (on the worker thread, inside ``push``/``flush``).
        """
        self._on_masks = on_masks
        self._engine = PerceptionEngine(backend, self.window_config, self.mapper_config,
                                        on_masks=self._masks_ready)
        self._reset_counts = (0, 0)
        self._first_window_seen = False

    def stop(self) -> None:
        """Drop the engine and its backend reference (deactivate)."""
        self._engine = None
        self._on_masks = None
        self._results.clear()
        self._arrivals.clear()

    def push(self, items: list[QueuedFrame]) -> list[str]:
        """Offer frames (oldest first), then run the windows that are ready.

        Returns warnings to log (resets); results go to take_results().

        In live mode the window manager then keeps only the freshest ``stride`` of what is
        pending, so a node that fell behind skips to the newest frames (counted as window
        drops) instead of working through a backlog frame by frame.
        """
        engine = self._engine
        if engine is None:
            return []
        for item in items:
            self._arrivals[item.stamp_ns] = item.received_s
            engine.offer(item.rgb, item.stamp_ns, item.header.frame_id)
        while len(self._arrivals) > _ARRIVALS_KEPT:
            self._arrivals.popitem(last=False)
        self._collect(engine.process())
        return self._reset_warnings()

    def flush(self) -> list[WindowPublish]:
        """Process pending keyframes (end of a replay) and return what to publish."""
        if self._engine is not None:
            self._collect(self._engine.flush(), force_map=True)
        return self.take_results()

    def take_results(self) -> list[WindowPublish]:
        results, self._results = self._results, []
        return results

    def take_notes(self) -> list[str]:
        """Informational lines to log (the first window's stage times after each start)."""
        notes, self._notes = self._notes, []
        return notes

    def _reset_warnings(self) -> list[str]:
        stats = self._engine.windows.stats
        counts = (stats.resets_time_backwards, stats.resets_size_change)
        warnings = []
        if counts[0] > self._reset_counts[0]:
            warnings.append('image stamps went backwards (bag loop or clock jump): window and '
                            'map reset, a new map segment starts')
        if counts[1] > self._reset_counts[1]:
            warnings.append('image size changed mid-stream: window and map reset, a new map '
                            'segment starts')
        self._reset_counts = counts
        return warnings

    def _masks_ready(self, window: Window, masks: list[MaskOutput]) -> None:
        """Engine hook: wrap the masks with their source header, image and arrival time."""
        frames = [FrameMask(header=header_at(mask.stamp_ns, mask.frame_id), mask=mask.mask,
                            rgb=window.frames[mask.index],
                            received_s=self._arrivals.pop(mask.stamp_ns, None))
                  for mask in masks]
        if self._on_masks is not None:
            self._on_masks(frames)

    def _collect(self, outputs: list[EngineOutput], force_map: bool = False) -> None:
        for output in outputs:
            if not self._first_window_seen:
                # The first live window is where anything the warm-up missed shows up.
                stages = {**output.result.timings, **output.timings}
                self._notes.append('first window after activation, ms: ' + ', '.join(
                    f'{name} {seconds * 1e3:.1f}' for name, seconds in stages.items()))
                self._first_window_seen = True
            frames = [FramePose(frame.stamp_ns, frame.frame_id,
                                np.asarray(frame.pose, dtype=np.float64))
                      for frame in output.frames]
            update = output.update
            now = time.monotonic()
            map_due = now - self._last_map_s >= self._params.map_period_s
            static_map = None
            if self._params.publish_static_map and (map_due or update.reset or force_map):
                static_map = self._engine.mapper.map.points()
                self._last_map_s = now
            window_cloud = (update.points_xyz, update.points_rgb)
            self._results.append(WindowPublish(frames, window_cloud, static_map, update.reset))

    def convention(self, image_frame_id: str) -> FrameConvention | None:
        """Frame convention for images from ``image_frame_id`` (None: extrinsic not known yet)."""
        camera_frame = self._params.camera_frame or image_frame_id or 'camera_optical_frame'
        cached = self._conventions.get(camera_frame)
        if cached is not None:
            return cached
        params = self._params
        extrinsic = self._extrinsic
        if params.tf_mode == 'odom_to_base' and extrinsic is None:
            extrinsic = self._lookup_extrinsic(camera_frame)
            if extrinsic is None:
                return None
        convention = make_convention(params.tf_mode, params.map_frame, params.odom_frame,
                                     params.base_frame, camera_frame, extrinsic)
        self._conventions[camera_frame] = convention
        return convention

    def _lookup_extrinsic(self, camera_frame: str) -> np.ndarray | None:
        from rclpy.time import Time

        try:
            stamped = self._tf_buffer.lookup_transform(self._params.base_frame, camera_frame,
                                                       Time())
        except Exception as error:  # noqa: B902 - tf2 raises several unrelated types
            self._node.get_logger().warning(
                f'waiting for TF {self._params.base_frame} -> {camera_frame}: {error}',
                throttle_duration_sec=5.0)
            return None
        t, q = stamped.transform.translation, stamped.transform.rotation
        return pose_from_xyz_quat([t.x, t.y, t.z, q.x, q.y, q.z, q.w])

    def stats(self) -> dict[str, int]:
        """Engine counters for diagnostics (empty before activate)."""
        if self._engine is None:
            return {}
        stats = self._engine.stats
        return {
            'keyframes': stats.keyframes,
            'skipped_not_keyframe': stats.skipped,
            'duplicates': stats.duplicates,
            'dropped_window': stats.dropped,
            'windows': stats.windows,
            'resets_input': stats.window_resets,
            'resets_map': stats.map_resets,
            'outliers_ignored': self._engine.windows.stats.outliers,
        }


def _tf_listener(node):
    """tf2_ros Buffer with a TransformListener (odom_to_base with extrinsic_source=tf)."""
    try:
        from tf2_ros import Buffer
        from tf2_ros import TransformListener
    except ImportError as error:
        raise ValueError('extrinsic_source=tf needs tf2_ros (install ROS, or set '
                         'extrinsic_source=parameter and base_to_camera)') from error
    buffer = Buffer()
    node._vggt4d_tf_listener = TransformListener(buffer, node)
    return buffer
