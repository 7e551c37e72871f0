# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node's engine sink: publishes what the engine delivers (worker thread only).

Per window the masks come first (``masks_ready``, right after the backend: masks, then the
overlays), then after the mapper (``window_mapped``) TF, odometry, path and clouds in the
frame convention of :class:`ConventionResolver`; input resets (``warning``) are logged.
The sink also keeps the image arrival times for the image-to-mask latency and the time it
spends publishing, which the node subtracts from the window time.
"""

from __future__ import annotations

import collections
import time
from typing import Any, Callable

import numpy as np

from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.ros.frames import FrameConvention
from vggt4d_ros.ros.frames import make_convention
from vggt4d_ros.ros.frames import pose_from_xyz_quat
from vggt4d_ros.ros.outputs import FrameMask
from vggt4d_ros.ros.outputs import FramePose
from vggt4d_ros.ros.outputs import header_at
from vggt4d_ros.ros.outputs import OutputPublisher
from vggt4d_ros.ros.params import NodeParams
from vggt4d_ros.ros.perception_publishers import align_output_frame
from vggt4d_ros.ros.tf_buffer import NodeTf
from vggt4d_ros.ros.tf_buffer import TfLookupError
from vggt4d_ros.runtime.sink import EngineOutput
from vggt4d_ros.runtime.sink import EngineWarning
from vggt4d_ros.runtime.sink import MaskOutput
from vggt4d_ros.runtime.window import Window

#: Arrival times remembered for latency; far more than a window plus the queue.
ARRIVALS_KEPT = 4096

#: Static map points of the engine's mapper: (points [N,3] float32, colours [N,3] uint8).
MapPoints = Callable[[], tuple[np.ndarray, np.ndarray]]


class ConventionResolver:
    """Frame convention per camera frame, with the base_link -> camera extrinsic.

    The extrinsic comes from the ``base_to_camera`` parameter, or (``extrinsic_source=tf``)
    from one TF lookup per camera frame through the node's TF buffer (a chain such as
    base_link -> camera_link -> camera_optical_frame resolves); until TF has it,
    :meth:`convention` returns None and the window's poses are not published (a throttled
    warning says so; failed lookups count as ``tf.lookup_failures.extrinsic.<kind>``). A rig
    publishes its reference camera's poses: ``reference_extrinsic`` (the rig's first camera
    from ``rig_extrinsics``) then replaces ``base_to_camera``.

    Raises:
        ValueError: ``extrinsic_source=tf`` on a machine without any TF back end.

    """

    def __init__(self, node, params: NodeParams,
                 reference_extrinsic: np.ndarray | None = None,
                 tf: NodeTf | None = None) -> None:
        self._node = node
        self._params = params
        self._conventions: dict[str, FrameConvention] = {}
        self._extrinsic: np.ndarray | None = None
        self._tf: NodeTf | None = None
        if params.tf_mode == 'odom_to_base' and params.extrinsic_source == 'parameter':
            self._extrinsic = pose_from_xyz_quat(params.base_to_camera)
        if params.tf_mode == 'odom_to_base' and reference_extrinsic is not None:
            self._extrinsic = np.array(reference_extrinsic, dtype=np.float64)
        if params.tf_mode == 'odom_to_base' and params.extrinsic_source == 'tf' \
                and self._extrinsic is None:
            if tf is None:
                raise ValueError('extrinsic_source=tf needs the node TF buffer')
            tf.acquire()
            self._tf = tf

    def convention(self, image_frame_id: str) -> FrameConvention | None:
        """Frame convention for images from ``image_frame_id`` (None: extrinsic not known yet)."""
        params = self._params
        camera_frame = params.camera_frame or image_frame_id or 'camera_optical_frame'
        cached = self._conventions.get(camera_frame)
        if cached is not None:
            return cached
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
        try:
            return self._tf.lookup(self._params.base_frame, camera_frame, 0, 'extrinsic')
        except TfLookupError as error:
            self._node.get_logger().warning(
                f'waiting for TF {self._params.base_frame} -> {camera_frame} '
                f'({error.kind}): {error}', throttle_duration_sec=5.0)
            return None


class NodeSink:
    """Engine sink of the node (see the module docstring).

    Args:
        node: the node (logger).
        params: node parameters (publishing switches, map period).
        outputs: the output publishers.
        conventions: frame conventions (TF side).
        map_points: the engine's static map (called when a map message is due).
        counters: the node's counters (``processed``, ``output_rate``, ``latency``).
        perception: the engine's planner-output tracker (None when off): its output frame is
            set to the node's world frame (``align_output_frame``).

    """

    def __init__(self, node, params: NodeParams, outputs: OutputPublisher,
                 conventions: ConventionResolver, map_points: MapPoints, counters: Any,
                 perception: PerceptionTracker | None = None) -> None:
        self._node = node
        self._perception = perception
        self._params = params
        self._outputs = outputs
        self._conventions = conventions
        self._map_points = map_points
        self._counters = counters
        # Keyed by (stamp, frame_id): a rig's cameras may share a stamp.
        self._arrivals: collections.OrderedDict[tuple[int, str], float] = \
            collections.OrderedDict()
        self._last_map_s = -np.inf
        self._first_window_seen = False
        #: Publish the static map with the next window whatever the period (final flush).
        self.force_map = False
        #: Seconds spent publishing since the last :meth:`take_publish_seconds`.
        self._publish_s = 0.0

    def arrived(self, stamp_ns: int, received_s: float, frame_id: str = '') -> None:
        """Remember the arrival time of an image (``received_s``: ``time.monotonic()``)."""
        self._arrivals[(stamp_ns, frame_id)] = received_s
        while len(self._arrivals) > ARRIVALS_KEPT:
            self._arrivals.popitem(last=False)

    def take_publish_seconds(self) -> float:
        """Seconds spent publishing since the last call."""
        seconds, self._publish_s = self._publish_s, 0.0
        return seconds

    def masks_ready(self, window: Window, masks: list[MaskOutput]) -> None:
        """Publish the masks (each with its source header), then the overlays.

        All masks go out before any overlay: the masks are what a consumer waits for, an
        overlay costs a colour blend of the whole image.
        """
        start = time.perf_counter()
        frames = [FrameMask(header=header_at(mask.stamp_ns, mask.frame_id), mask=mask.mask,
                            rgb=window.frames[mask.index],
                            received_s=self._arrivals.pop((mask.stamp_ns, mask.frame_id),
                                                          None),
                            camera=mask.camera)
                  for mask in masks]
        counters = self._counters
        for frame in frames:
            self._outputs.publish_mask(frame)
            now = time.monotonic()
            counters.processed += 1
            counters.output_rate.tick(now)
            if frame.received_s is not None:
                counters.latency.add(now - frame.received_s)
        for frame in frames:
            self._outputs.publish_overlay(frame)
        if masks and self._perception is not None:
            # Before the engine runs this window's perception: outputs in the world frame.
            align_output_frame(self._perception, self._conventions.convention(masks[0].frame_id))
        self._publish_s += time.perf_counter() - start

    def window_mapped(self, output: EngineOutput) -> None:
        """Publish TF, odometry, path and clouds of the window's new frames."""
        if not self._first_window_seen:
            # The first live window is where anything the warm-up missed shows up.
            stages = {**output.result.timings, **output.timings}
            self._node.get_logger().info('first window after activation, ms: ' + ', '.join(
                f'{name} {seconds * 1e3:.1f}' for name, seconds in stages.items()))
            self._first_window_seen = True
        start = time.perf_counter()
        update = output.update
        outputs = self._outputs
        if update.reset:
            outputs.reset_trajectory()
        # One pose per step: a rig's reference camera (view 0) stands for the rig.
        frames = [FramePose(frame.stamp_ns, frame.frame_id,
                            np.asarray(frame.pose, dtype=np.float64))
                  for frame in output.frames if frame.view == 0]
        convention = self._conventions.convention(frames[0].frame_id if frames else '')
        if convention is not None and frames:
            for frame in frames:
                outputs.publish_pose(frame, convention)
            outputs.publish_path()
            outputs.publish_clouds(frames[-1].stamp_ns, convention,
                                   (update.points_xyz, update.points_rgb),
                                   self._static_map(update.reset))
            # A frame that changed only now (TF extrinsic) means this window's perception
            # ran in the old one: publish from the next window on.
            changed = align_output_frame(self._perception, convention)
            if outputs.perception is not None and not changed:
                outputs.perception.publish(output.perception, convention, update.reset)
        self._publish_s += time.perf_counter() - start

    def _static_map(self, reset: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """Return the whole static map when a message is due (period, reset, final flush)."""
        now = time.monotonic()
        due = now - self._last_map_s >= self._params.map_period_s
        if not self._params.publish_static_map or not (due or reset or self.force_map):
            return None
        self._last_map_s = now
        return self._map_points()

    def warning(self, warning: EngineWarning) -> None:
        """Log an input reset."""
        self._node.get_logger().warning(warning.text)
