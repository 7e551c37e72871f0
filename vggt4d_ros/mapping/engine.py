# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""PerceptionEngine: frames -> windows -> backend (VGGT4D) -> mapper, one output per window.

The engine is what the ROS node and the replay tool drive. Every keyframe is output exactly
once, in the window where it is new (overlap frames were output by the previous window);
``flush`` processes what is pending at the end of a replay so no keyframe is lost. Frames the
keyframe gate skips are counted, not output (set ``min_parallax_px=0`` and
``max_keyframe_interval_s=0`` to make every frame a keyframe).

Masks do not depend on the mapper (poses do: it chains windows), so a consumer that wants them
early (the ROS node: image-to-mask latency) passes ``on_masks``: it is called once per window,
right after the backend and before ``Mapper.integrate``, with the camera-resolution masks of the
window's new frames; the same arrays are in that window's ``EngineOutput.frames``.

A backend exception propagates to the caller; that window's new frames are lost (counted
nowhere else) and the next window, whose overlap the map never saw, starts a new map segment
(reset reason 'no_overlap'). An exception raised by ``on_masks`` propagates the same way.

Threading: ``push``/``flush`` run the backend synchronously; call them from ONE worker thread.
A callback thread may instead call ``offer`` (cheap: gate + queue, lock-protected) while the
worker loops on ``process``; in live mode the window manager then drops stale keyframes when
the worker falls behind (counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import map_to_camera
from vggt4d_ros.mapping.mapper import Mapper
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.mapper import MapUpdate
from vggt4d_ros.mapping.window import Window
from vggt4d_ros.mapping.window import WindowConfig
from vggt4d_ros.mapping.window import WindowManager
from vggt4d_ros.motion.result import WindowResult


class Backend(Protocol):
    """Anything that turns a window of frames into a ``WindowResult`` (VGGT4D or an oracle)."""

    def run(self, frames: Sequence[np.ndarray], stamps_ns: Sequence[int]) -> WindowResult:
        ...


@dataclass
class MaskOutput:
    """Dynamic mask of one new frame of a window, handed to ``on_masks`` before mapping.

    Attributes:
        stamp_ns: source image stamp.
        frame_id: source frame id.
        index: index of the frame in the window.
        mask: [H,W] uint8 dynamic mask (0 static, 255 dynamic) at camera resolution.

    """

    stamp_ns: int
    frame_id: str
    index: int
    mask: np.ndarray


#: ``on_masks(window, masks)``: called once per window before the mapper (see module docstring).
MaskHook = Callable[[Window, list[MaskOutput]], None]


@dataclass
class FrameOutput(MaskOutput):
    """Per new frame of a window: its :class:`MaskOutput` and, after mapping, its pose.

    Attributes:
        pose: [4,4] float64 world-from-camera pose in the global map frame.

    """

    pose: np.ndarray


@dataclass
class EngineOutput:
    """One processed window.

    ``timings`` (seconds): ``backend``, ``masks`` (camera-resolution masks), ``on_masks`` (the
    hook, when set) and ``mapper``.
    """

    window: Window
    result: WindowResult
    update: MapUpdate
    frames: list[FrameOutput]
    timings: dict[str, float] = field(default_factory=dict)


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
        scale_source: optional metric-scale hook, called per window with the window and its
            result; returns metres per window unit (e.g. median sensor depth / predicted
            depth over confident static pixels) or None. See ``Mapper.integrate``.
        on_masks: optional hook ``(window, masks)`` called with the new frames' masks right
            after the backend, before the mapper (see the module docstring). May also be set
            later through the ``on_masks`` attribute.

    """

    def __init__(
        self,
        backend: Backend,
        window_config: WindowConfig | None = None,
        mapper_config: MapperConfig | None = None,
        scale_source: Callable[[Window, WindowResult], float | None] | None = None,
        on_masks: MaskHook | None = None,
    ) -> None:
        self.backend = backend
        self.scale_source = scale_source
        self.on_masks = on_masks
        self.windows = WindowManager(window_config or WindowConfig())
        self.mapper = Mapper(mapper_config or MapperConfig())
        self._frames_out = 0

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

    def process(self) -> list[EngineOutput]:
        """Run every window that is ready."""
        outputs = []
        while (window := self.windows.take_window()) is not None:
            outputs.append(self._run(window))
        return outputs

    def flush(self) -> list[EngineOutput]:
        """Process all pending keyframes (end of a replay): nothing pending is lost."""
        outputs = self.process()
        window = self.windows.flush()
        if window is not None:
            outputs.append(self._run(window))
        return outputs

    def _run(self, window: Window) -> EngineOutput:
        timings: dict[str, float] = {}
        tic = time.perf_counter()
        result = self.backend.run(window.frames, window.stamps_ns)
        timings['backend'] = time.perf_counter() - tic
        if [int(s) for s in result.stamps_ns] != window.stamps_ns:
            raise RuntimeError('backend returned a WindowResult for different stamps')
        masks = self._masks(window, result, timings)
        tic = time.perf_counter()
        hint = self.scale_source(window, result) if self.scale_source is not None else None
        update = self.mapper.integrate(
            result, is_new=window.is_new, new_segment=window.starts_segment, scale_hint=hint
        )
        timings['mapper'] = time.perf_counter() - tic
        frames = [
            FrameOutput(mask.stamp_ns, mask.frame_id, mask.index, mask.mask, update.poses[k])
            for k, mask in enumerate(masks)
        ]
        self._frames_out += len(frames)
        return EngineOutput(window, result, update, frames, timings)

    def _masks(self, window: Window, result: WindowResult,
               timings: dict[str, float]) -> list[MaskOutput]:
        """Camera-resolution masks of the window's new frames, handed to ``on_masks`` first."""
        tic = time.perf_counter()
        new = window.new_indices
        camera = _camera_masks(result, new)
        masks = [MaskOutput(window.stamps_ns[i], window.frame_ids[i], i, camera[k])
                 for k, i in enumerate(new)]
        timings['masks'] = time.perf_counter() - tic
        if self.on_masks is not None:
            tic = time.perf_counter()
            self.on_masks(window, masks)
            timings['on_masks'] = time.perf_counter() - tic
        return masks


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
