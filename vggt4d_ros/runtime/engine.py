# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""PerceptionEngine: frames -> windows -> backend (VGGT4D) -> mapper, results to one sink.

The engine is what the ROS node and the replay tool drive. Every keyframe is output exactly
once, in the window where it is new (overlap frames were output by the previous window);
``flush`` processes what is pending at the end of a replay so no keyframe is lost. Frames the
keyframe gate skips are counted, not output (:func:`vggt4d_ros.runtime.window.replay_window`
makes every frame a keyframe).

Results go to one :class:`~vggt4d_ros.runtime.sink.EngineSink`: per window
``masks_ready`` right after the backend and before ``Mapper.integrate`` (masks do not depend on
the mapper; the ROS node publishes them there for image-to-mask latency), then
``window_mapped`` with the poses; input resets go to ``warning``. ``push``/``process``/
``flush`` also return the windows they completed, for callers that drive the engine
synchronously (tests, benchmarks).

A backend exception propagates to the caller; that window's new frames are lost (counted
nowhere else) and the next window, whose overlap the map never saw, starts a new map segment
(reset reason 'no_overlap'). An exception raised by the sink propagates the same way.

Threading: ``push``/``process``/``flush`` run the backend, the masks and the mapper on the
calling thread; call them from ONE worker thread. A callback thread may instead call ``offer``
(cheap: gate + queue, lock-protected) while the worker loops on ``process``; in live mode the
window manager then drops stale keyframes when the worker falls behind (counted).

What follows the mapper (the planner outputs, ``sink.before_perception`` and
``sink.window_mapped``) runs either in line or, with ``OutputStageConfig.run_async``, on the
engine's :class:`~vggt4d_ros.runtime.output_stage.OutputStage` thread while the worker starts
the next window: windows in order, at most ``queue_depth`` waiting (the worker blocks beyond
that). Then ``masks_ready`` of window k+1 (and an input-reset ``warning`` before it, which
stays on the worker) may come before ``window_mapped`` of window k; the outputs
``process`` returns get their ``perception`` once the stage ran them (:meth:`drain`;
``flush`` drains); a stage error is re-raised by the next ``process``/``flush``/``drain``/
``close``. The device tensors perception reads are copied on the worker before the hand-over
(a compiled model's heads may hand out CUDA-graph memory that the next window's replay
overwrites), and the stage's device work waits for those copies on its own CUDA stream.
Sinks read the static map of a window from ``EngineOutput.static_map`` (taken on the worker
when ``static_map_due`` says so) or through :meth:`PerceptionEngine.static_map` (locked; it
may already hold later windows), never from ``mapper.map`` directly. Call :meth:`close` when
done with an engine (it ends the stage's thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
import threading
import time
from typing import Callable, Protocol, Sequence, TYPE_CHECKING

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import map_to_camera
from vggt4d_ros.mapping.mapper import Mapper
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.mapper import MapUpdate
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.perception.observation import observations_from_window
from vggt4d_ros.perception.perception_tracker import PerceptionOutput
from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.runtime.output_stage import OutputStage
from vggt4d_ros.runtime.output_stage import OutputStageConfig
from vggt4d_ros.runtime.output_stage import StreamHandoff
from vggt4d_ros.runtime.rig import RigSetup
from vggt4d_ros.runtime.scale.config import ScaleConfig
from vggt4d_ros.runtime.scale.estimate import ScaleEstimate
from vggt4d_ros.runtime.scale.runtime import MetricScale
from vggt4d_ros.runtime.sink import EngineOutput
from vggt4d_ros.runtime.sink import EngineSink
from vggt4d_ros.runtime.sink import EngineWarning
from vggt4d_ros.runtime.sink import FrameOutput
from vggt4d_ros.runtime.sink import MaskOutput
from vggt4d_ros.runtime.sink import NullSink
from vggt4d_ros.runtime.window import Window
from vggt4d_ros.runtime.window import WindowConfig
from vggt4d_ros.runtime.window import WindowManager

if TYPE_CHECKING:
    from vggt4d_ros.runtime.config import EngineConfig


class Backend(Protocol):
    """Anything that turns a window of frames into a ``WindowResult`` (VGGT4D or an oracle).

    Defined here, by its consumer: the backend builder (``runtime.backend``) imports the engine
    for its warm-up, so the protocol living there would make the two modules import each other.
    """

    def run(self, frames: Sequence[np.ndarray], stamps_ns: Sequence[int]) -> WindowResult:
        """Process one window: S frames [H,W,3] uint8 RGB with their stamps.

        A backend that takes rig windows also accepts ``layout=RigLayout`` (T steps x N views,
        frames step-major, as ``VGGT4DPipeline.run``); the engine passes it only when N > 1,
        so a single-camera backend keeps this two-argument call.
        """


#: Warning of each input reset kind (window-manager counter -> what to log).
RESET_WARNINGS = (
    ('time_backwards', 'resets_time_backwards',
     'image stamps went backwards (bag loop or clock jump): window and map reset, a new map '
     'segment starts'),
    ('size_change', 'resets_size_change',
     'image size changed mid-stream: window and map reset, a new map segment starts'),
)


@dataclass
class EngineStats:
    """Counters over the engine's life (window-manager and mapper counters combined)."""

    frames_in: int = 0
    keyframes: int = 0
    skipped: int = 0
    duplicates: int = 0
    dropped: int = 0
    windows: int = 0
    frames_out: int = 0
    window_resets: int = 0
    map_resets: int = 0


class PerceptionEngine:
    """Glue between the window manager, a backend and the mapper.

    Args:
        backend: object with ``run(frames, stamps_ns) -> WindowResult``.
        window_config: sliding-window settings (default: ``WindowConfig()``).
        mapper_config: mapper settings (default: ``MapperConfig()``).
        scale: metric-scale settings (default / ``source='none'``: VGGT's scale-free units).
            With a source, ``self.metric`` holds the side-data buffers the front end feeds
            (``add_depth``, ``add_odometry``, ...), each window's estimate is fused by the
            mapper and every output is in metres.
        perception: planner-output settings (default / ``enabled=False``: none).
        sink: receiver of the results (see the module docstring; default: ignore them).
        rig: the cameras of a multi-camera rig (None: one camera). With N > 1 cameras, feed
            steps (``offer_step``/``push_step``, one frame per camera, grouped by
            :class:`~vggt4d_ros.runtime.rig.RigGrouper`); windows are T steps x N views,
            masks carry their camera, and the rig's extrinsics (when known) feed the
            ``rig_baseline`` scale source.
        output_stage: where the outputs after the mapper run (default: in line; see the
            module docstring).

    """

    def __init__(
        self,
        backend: Backend,
        window_config: WindowConfig | None = None,
        mapper_config: MapperConfig | None = None,
        scale: ScaleConfig | None = None,
        perception: PerceptionConfig | None = None,
        sink: EngineSink | None = None,
        rig: RigSetup | None = None,
        output_stage: OutputStageConfig | None = None,
    ) -> None:
        self.backend = backend
        self.sink: EngineSink = sink if sink is not None else NullSink()
        self.rig = rig
        self.windows = WindowManager(window_config or WindowConfig(),
                                     rig.num_views if rig is not None else 1)
        scale = scale or ScaleConfig()
        self.metric: MetricScale | None = None if scale.source == 'none' else MetricScale(scale)
        if self.metric is not None and rig is not None and rig.base_from_camera is not None:
            self.metric.set_rig_extrinsics(rig.base_from_camera)
        self.mapper = Mapper(mapper_config or MapperConfig(),
                             scale_fusion=self.metric.fusion if self.metric else None)
        self.perception: PerceptionTracker | None = (
            PerceptionTracker(perception) if perception is not None and perception.enabled
            else None)
        self._frames_out = 0
        self._resets_reported = {counter: 0 for _, counter, _ in RESET_WARNINGS}
        #: Held by the worker while the mapper changes the map (see :meth:`static_map`).
        self.map_lock = threading.Lock()
        #: Asked on the worker after each window's mapper: whether ``EngineOutput.static_map``
        #: gets the whole static map of that moment (None: never).
        self.static_map_due: Callable[[MapUpdate], bool] | None = None
        stage = output_stage or OutputStageConfig(run_async=False)
        #: The output thread (None: the outputs run in line on the calling thread).
        self.stage: OutputStage | None = (OutputStage(stage.queue_depth) if stage.run_async
                                          else None)
        self._handoff = StreamHandoff()

    @classmethod
    def from_config(cls, backend: Backend, config: EngineConfig,
                    sink: EngineSink | None = None,
                    rig: RigSetup | None = None) -> PerceptionEngine:
        """Engine with the window, mapper, scale and perception settings of ``config``."""
        return cls(backend, config.window, config.mapper, config.scale, config.perception,
                   sink=sink, rig=rig, output_stage=config.output_stage)

    @property
    def stats(self) -> EngineStats:
        win = self.windows.stats
        return EngineStats(
            frames_in=win.frames_in,
            keyframes=win.keyframes,
            skipped=win.skipped,
            duplicates=win.duplicates,
            dropped=win.dropped,
            windows=self.mapper.stats.windows,
            frames_out=self._frames_out,
            window_resets=win.resets_time_backwards + win.resets_size_change,
            map_resets=sum(self.mapper.stats.resets.values()),
        )

    def push(self, frame: np.ndarray, stamp_ns: int, frame_id: str = '') -> list[EngineOutput]:
        """Add a frame; returns the windows it completed (zero or one in practice)."""
        self.offer(frame, stamp_ns, frame_id)
        return self.process()

    def offer(self, frame: np.ndarray, stamp_ns: int, frame_id: str = '') -> bool:
        """Queue a frame without running anything heavy (see the module docstring)."""
        return self.windows.offer(frame, stamp_ns, frame_id)

    def push_step(self, frames: Sequence[np.ndarray], stamps_ns: Sequence[int],
                  frame_ids: Sequence[str] | None = None) -> list[EngineOutput]:
        """Add a rig step (one frame per camera, view order); returns the windows completed."""
        self.offer_step(frames, stamps_ns, frame_ids)
        return self.process()

    def offer_step(self, frames: Sequence[np.ndarray], stamps_ns: Sequence[int],
                   frame_ids: Sequence[str] | None = None) -> bool:
        """Queue a rig step without running anything heavy (as ``offer``)."""
        return self.windows.offer_step(list(frames), list(stamps_ns),
                                       None if frame_ids is None else list(frame_ids))

    def process(self) -> list[EngineOutput]:
        """Report input resets, then run every window that is ready."""
        self._report_resets()
        outputs = []
        while (window := self.windows.take_window()) is not None:
            outputs.append(self._run(window))
        return outputs

    def flush(self) -> list[EngineOutput]:
        """Process all pending keyframes (end of a replay) and drain the output stage.

        Nothing pending is lost; when it returns every window's outputs were delivered.
        """
        outputs = self.process()
        window = self.windows.flush()
        if window is not None:
            outputs.append(self._run(window))
        self.drain()
        return outputs

    def drain(self) -> None:
        """Wait until the output stage delivered every window handed to it (no-op in line).

        Raises:
            Exception: an error of the stage not reported yet.

        """
        if self.stage is not None:
            self.stage.drain()

    def close(self) -> None:
        """Deliver what the output stage holds and end its thread (idempotent).

        Raises:
            Exception: an error of the stage not reported yet.

        """
        if self.stage is not None:
            self.stage.close()

    def static_map(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the whole static map now (points [M,3] float32, colours [M,3] uint8), locked.

        From the output stage this may already include windows after the one being
        delivered; ``EngineOutput.static_map`` is the map right after its window.
        """
        with self.map_lock:
            return self.mapper.map.points()

    def _run(self, window: Window) -> EngineOutput:
        timings: dict[str, float] = {}
        tic = time.perf_counter()
        if window.num_views == 1:
            result = self.backend.run(window.frames, window.stamps_ns)
        else:
            result = self.backend.run(window.frames, window.stamps_ns, layout=window.layout)
            if result.num_views != window.num_views:
                raise RuntimeError('backend returned a WindowResult with another rig layout')
        timings['backend'] = time.perf_counter() - tic
        if [int(s) for s in result.stamps_ns] != window.stamps_ns:
            raise RuntimeError('backend returned a WindowResult for different stamps')
        masks = self._masks(window, result, timings)
        scale = self._estimate_scale(result, timings)
        tic = time.perf_counter()
        with self.map_lock:
            update = self.mapper.integrate(
                result, is_new=window.is_new, new_segment=window.starts_segment,
                scale_hint=scale.metres_per_unit if scale is not None else None,
                scale_spread=scale.spread if scale is not None else None,
            )
            static_map = (self.mapper.map.points() if self.static_map_due is not None
                          and self.static_map_due(update) else None)
        timings['mapper'] = time.perf_counter() - tic
        frames = [
            FrameOutput(mask.stamp_ns, mask.frame_id, mask.index, mask.mask, update.poses[k],
                        view=mask.view, camera=mask.camera)
            for k, mask in enumerate(masks)
        ]
        self._frames_out += len(frames)
        if self.stage is None:
            output = EngineOutput(window, result, update, frames, timings, scale,
                                  static_map=static_map)
            self._deliver(output, None)
            return output
        if self.perception is not None:
            result = _perception_copy(result)
            event = self._handoff.record(result.depth.device)
        else:
            event = None
        output = EngineOutput(window, result, update, frames, timings, scale,
                              static_map=static_map)
        # The wait is the stage's (stats.wait_s): the timings dict is the stage's from here on.
        self.stage.submit(lambda: self._deliver(output, event))
        return output

    def _deliver(self, output: EngineOutput, event) -> None:
        """After the mapper: the planner outputs, then ``window_mapped`` (stage or in line)."""
        timings = output.timings
        if self.perception is not None:
            before = getattr(self.sink, 'before_perception', None)
            if before is not None:
                before(output)
            with self._handoff.run(output.result.depth.device, event):
                output.perception = self._perceive(output.result, output.update, timings)
        tic = time.perf_counter()
        self.sink.window_mapped(output)
        timings['sink_mapped'] = time.perf_counter() - tic

    def _estimate_scale(self, result: WindowResult,
                        timings: dict[str, float]) -> ScaleEstimate | None:
        """Estimate this window's metres per unit with the configured source (None: no source)."""
        if self.metric is None:
            return None
        tic = time.perf_counter()
        estimate = self.metric.estimate(result)
        timings['scale'] = time.perf_counter() - tic
        return estimate

    def _perceive(self, result: WindowResult, update: MapUpdate,
                  timings: dict[str, float]) -> PerceptionOutput | None:
        """Build the planner outputs of the window's new frames (after mapping: final poses)."""
        if self.perception is None:
            return None
        tic = time.perf_counter()
        change = update.metric.change
        if change is not None and not update.reset:  # the tracks follow the map's scale
            self.perception.rescale(change, whole_segment=update.segment_rescaled)
        output = self.perception.update(observations_from_window(result, update))
        timings['perception'] = time.perf_counter() - tic
        return output

    def _report_resets(self) -> None:
        """One sink warning per input reset the window manager counted since the last call."""
        stats = self.windows.stats
        for kind, counter, text in RESET_WARNINGS:
            count = getattr(stats, counter)
            for _ in range(count - self._resets_reported[counter]):
                self.sink.warning(EngineWarning(kind, text))
            self._resets_reported[counter] = count

    def _masks(self, window: Window, result: WindowResult,
               timings: dict[str, float]) -> list[MaskOutput]:
        """Camera-resolution masks of the window's new frames, handed to the sink first."""
        tic = time.perf_counter()
        new = window.new_indices
        camera = _camera_masks(result, new)
        views = window.views
        names = self.rig.camera_names if self.rig is not None else ('',)
        masks = [MaskOutput(window.stamps_ns[i], window.frame_ids[i], i, camera[k],
                            view=views[i], camera=names[views[i]] if window.num_views > 1
                            else '')
                 for k, i in enumerate(new)]
        timings['masks'] = time.perf_counter() - tic
        tic = time.perf_counter()
        self.sink.masks_ready(window, masks)
        timings['sink_masks'] = time.perf_counter() - tic
        return masks


def _perception_copy(result: WindowResult) -> WindowResult:
    """Return the result with its own copy of every tensor perception reads (on its device).

    The output stage reads them while the worker runs the next window: a compiled model's
    heads (CUDA-graph trees) hand out depth and confidence in a pool the next replay reuses.
    A few MB per window; the rest of the result is shared.
    """
    return replace(result, images=result.images.clone(), depth=result.depth.clone(),
                   depth_conf=result.depth_conf.clone(),
                   refined_masks=result.refined_masks.clone(),
                   intrinsics=result.intrinsics.clone(), timings=dict(result.timings))


def _camera_masks(result: WindowResult, indices: list[int]) -> np.ndarray:
    """Refined masks of the selected frames at camera resolution, [K,H,W] uint8 0/255.

    Same as ``result.masks_at_camera()[indices]`` without resampling the overlap frames.
    """
    if not indices:
        height, width = result.transform.camera_hw
        return np.zeros((0, height, width), np.uint8)
    # Resample on the result's device (on this project's 2-core CPU it costs ~4 ms per 640x480
    # frame; GPU time not measured), then copy only the camera-size uint8 masks to the host.
    selected = result.refined_masks[indices]
    camera = map_to_camera(selected, result.transform, mode='nearest', fill=0)
    return camera.to(torch.uint8).mul_(255).cpu().numpy()
