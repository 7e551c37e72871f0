# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node's engine sink: publishes what the engine delivers.

Per window the masks come first (``masks_ready``, right after the backend, on the worker:
masks, then the overlays), then after the mapper and the planner outputs (``window_mapped``)
TF, odometry, path, clouds and the planner messages in the frame convention of
:class:`ConventionResolver`; input resets (``warning``) are logged. With the engine's output
stage (``output_stage.run_async``) ``before_perception`` and ``window_mapped`` run on the
stage's thread, window k's possibly while the worker publishes window k+1's masks:
what both sides touch (arrival times, publish seconds, the conventions) is locked, the rest
belongs to one side (the static-map clock to the worker, which decides per window whether the
engine snapshots the map: :meth:`NodeSink.static_map_due`).

The sink also keeps the image arrival times for the image-to-mask latency, and the publish
times: per window in total (``publish_time``), per message kind (``publish_kinds``; the
planner messages are timed by the perception publisher) and what the worker itself spent
publishing, which the node subtracts from the window time.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import numpy as np

from vggt4d_ros.mapping.mapper import MapUpdate
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
#: Windows whose mask publishing time waits for their window_mapped (far more than in flight).
MASK_SECONDS_KEPT = 16


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
        self._lock = threading.Lock()  # worker, output stage and live view ask
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
        with self._lock:
            return self._convention(image_frame_id)

    def _convention(self, image_frame_id: str) -> FrameConvention | None:
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
        counters: the node's counters (``processed``, ``output_rate``, ``latency``,
            ``publish_time``, ``perception_time``, ``publish_kinds``).
        perception: the engine's planner-output tracker (None when off): its output frame is
            set to the node's world frame (``align_output_frame``).

    """

    def __init__(self, node, params: NodeParams, outputs: OutputPublisher,
                 conventions: ConventionResolver, counters: Any,
                 perception: PerceptionTracker | None = None) -> None:
        self._node = node
        self._perception = perception
        self._params = params
        self._outputs = outputs
        self._conventions = conventions
        self._counters = counters
        self._lock = threading.Lock()
        # Keyed by (stamp, frame_id): a rig's cameras may share a stamp.
        self._arrivals: collections.OrderedDict[tuple[int, str], float] = \
            collections.OrderedDict()
        self._last_map_s = -np.inf
        self._first_window_seen = False
        #: Ask for the static map with the next window whatever the period (final flush).
        self.force_map = False
        self._worker: int | None = None  # thread id of masks_ready (the engine's worker)
        #: Seconds the worker spent publishing since the last :meth:`take_publish_seconds`.
        self._publish_s = 0.0
        # Mask seconds of each window until its window_mapped adds the rest (by id(window)).
        self._mask_seconds: dict[int, float] = {}

    def arrived(self, stamp_ns: int, received_s: float, frame_id: str = '') -> None:
        """Remember the arrival time of an image (``received_s``: ``time.monotonic()``)."""
        with self._lock:
            self._arrivals[(stamp_ns, frame_id)] = received_s
            while len(self._arrivals) > ARRIVALS_KEPT:
                self._arrivals.popitem(last=False)

    def take_publish_seconds(self) -> float:
        """Seconds the worker thread spent publishing since the last call."""
        with self._lock:
            seconds, self._publish_s = self._publish_s, 0.0
        return seconds

    def _published(self, seconds: float) -> None:
        """Count publishing seconds of the calling thread (the worker's only)."""
        if threading.get_ident() == self._worker:
            with self._lock:
                self._publish_s += seconds

    def static_map_due(self, update: MapUpdate) -> bool:
        """Whether the engine snapshots the static map with this window (worker thread).

        Due after ``map_period_s``, on a map reset, when the map was rescaled (it became
        metric) and with :attr:`force_map` (final flush).
        """
        now = time.monotonic()
        due = (now - self._last_map_s >= self._params.map_period_s or update.reset
               or update.segment_rescaled or self.force_map)
        if not self._params.publish_static_map or not due:
            return False
        self._last_map_s = now
        return True

    def masks_ready(self, window: Window, masks: list[MaskOutput]) -> None:
        """Publish the masks (each with its source header), then the overlays.

        All masks go out before any overlay: the masks are what a consumer waits for, an
        overlay costs a colour blend of the whole image.
        """
        start = time.perf_counter()
        self._worker = threading.get_ident()
        with self._lock:
            received = [self._arrivals.pop((mask.stamp_ns, mask.frame_id), None)
                        for mask in masks]
        frames = [FrameMask(header=header_at(mask.stamp_ns, mask.frame_id), mask=mask.mask,
                            rgb=window.frames[mask.index], received_s=received_s,
                            camera=mask.camera)
                  for mask, received_s in zip(masks, received)]
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
        seconds = time.perf_counter() - start
        counters.publish_kinds['masks'].add(seconds)
        with self._lock:
            self._mask_seconds[id(window)] = seconds
            while len(self._mask_seconds) > MASK_SECONDS_KEPT:  # windows that failed later
                del self._mask_seconds[next(iter(self._mask_seconds))]
        self._published(seconds)

    def before_perception(self, output: EngineOutput) -> None:
        """Make the engine's planner outputs come in the node's world frame (before they run)."""
        if output.frames and self._perception is not None:
            align_output_frame(self._perception,
                               self._conventions.convention(output.frames[0].frame_id))

    def window_mapped(self, output: EngineOutput) -> None:
        """Publish TF, odometry, path, clouds and planner messages of the window's new frames."""
        if not self._first_window_seen:
            # The first live window is where anything the warm-up missed shows up.
            stages = {**output.result.timings, **output.timings}
            self._node.get_logger().info('first window after activation, ms: ' + ', '.join(
                f'{name} {seconds * 1e3:.1f}' for name, seconds in stages.items()))
            self._first_window_seen = True
        if 'perception' in output.timings:
            self._counters.perception_time.add(output.timings['perception'])
        start = time.perf_counter()
        kinds: dict[str, float] = {}
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
            tic = time.perf_counter()
            for frame in frames:
                outputs.publish_pose(frame, convention)
            outputs.publish_path()
            kinds['tf'] = time.perf_counter() - tic
            tic = time.perf_counter()
            static_map = output.static_map if self._params.publish_static_map else None
            outputs.publish_clouds(frames[-1].stamp_ns, convention,
                                   (update.points_xyz, update.points_rgb), static_map)
            kinds['static_cloud'] = time.perf_counter() - tic
            # A frame that changed only now (TF extrinsic) means this window's perception
            # ran in the old one: publish from the next window on.
            changed = align_output_frame(self._perception, convention)
            if outputs.perception is not None and not changed:
                # A rescaled map restarted the grids (as a reset does): publish them now.
                outputs.perception.publish(output.perception, convention,
                                           update.reset or update.segment_rescaled)
                kinds.update(outputs.perception.last_seconds)
        seconds = time.perf_counter() - start
        for kind, spent in kinds.items():
            self._counters.publish_kinds[kind].add(spent)
        with self._lock:
            masks_s = self._mask_seconds.pop(id(output.window), 0.0)
        self._counters.publish_time.add(masks_s + seconds)
        self._published(seconds)

    def warning(self, warning: EngineWarning) -> None:
        """Log an input reset."""
        self._node.get_logger().warning(warning.text)
