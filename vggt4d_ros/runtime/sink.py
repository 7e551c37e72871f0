# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What the engine delivers, and the one sink it delivers it to.

Per processed window the engine calls:

1. ``masks_ready(window, masks)`` right after the backend, before the mapper, with the
   camera-resolution masks of the window's new frames (masks do not depend on the mapper, so a
   consumer that cares about image-to-mask latency publishes them here), on the thread that
   runs ``push``/``process``/``flush`` (the worker);
2. ``before_perception(output)`` (optional method; only with planner outputs on) right
   before the window's planner outputs are built (a sink that sets their output frame does it
   here), then
3. ``window_mapped(output)`` after the mapper and the planner outputs, with the poses of the
   same frames, the window's static points and the map update.

2 and 3 run on the engine's output thread when ``output_stage.run_async`` is on (else on the
worker): window k's may then come after ``masks_ready`` of window k+1, so a sink guards state
it shares between 1 and 2/3 (windows still arrive in order within each method).

Between windows, ``warning(warning)`` reports an input reset (stamps went backwards, image size
changed): the window and the map restarted and a new map segment begins. It comes on the
worker, before the masks of the first window after the reset (with the output stage on,
possibly before ``window_mapped`` of windows before it).

An exception raised by a sink method propagates out of the engine call (see
:mod:`vggt4d_ros.runtime.engine` for what is lost then).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from vggt4d_ros.mapping.mapper import MapUpdate
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.perception.perception_tracker import PerceptionOutput
from vggt4d_ros.runtime.scale.estimate import ScaleEstimate
from vggt4d_ros.runtime.window import Window


@dataclass
class MaskOutput:
    """Dynamic mask of one new frame of a window, delivered before mapping.

    Attributes:
        stamp_ns: source image stamp.
        frame_id: source frame id.
        index: index of the frame in the window.
        mask: [H,W] uint8 dynamic mask (0 static, 255 dynamic) at camera resolution.
        view: camera of the frame (0: the single camera, or a rig's reference camera).
        camera: the camera's name in a rig ('' for a single camera).

    """

    stamp_ns: int
    frame_id: str
    index: int
    mask: np.ndarray
    view: int = field(default=0, kw_only=True)
    camera: str = field(default='', kw_only=True)


@dataclass
class FrameOutput(MaskOutput):
    """Per new frame of a window: its :class:`MaskOutput` and, after mapping, its pose.

    Attributes:
        pose: [4,4] float64 world-from-camera pose (this frame's own camera) in the global
            map frame (OpenCV camera axes, VGGT's scale-free units unless a scale source gave
            metres). A rig's pose is its reference camera's (``view`` 0) frames' pose
            (``runtime.rig.base_poses`` turns them into base_link poses).

    """

    pose: np.ndarray


@dataclass
class EngineOutput:
    """One processed window.

    ``timings`` (seconds): ``backend``, ``masks`` (camera-resolution masks), ``sink_masks``
    (the sink's ``masks_ready``), ``scale`` (the metric-scale estimate, when a source is set),
    ``mapper`` and ``perception`` (planner outputs, when enabled).
    ``scale`` is this window's metric-scale estimate (None without a scale source);
    ``perception`` the planner outputs of its new frames (None when perception is off).
    ``static_map`` the whole static map (points [M,3] float32, colours [M,3] uint8) right
    after this window, when ``PerceptionEngine.static_map_due`` asked for it (else None).
    With the output stage, ``timings`` gains ``perception`` and ``sink_mapped`` (the sink's
    ``window_mapped``) on the stage's thread.
    """

    window: Window
    result: WindowResult
    update: MapUpdate
    frames: list[FrameOutput]
    timings: dict[str, float] = field(default_factory=dict)
    scale: ScaleEstimate | None = None
    perception: PerceptionOutput | None = None
    static_map: tuple[np.ndarray, np.ndarray] | None = None


#: Why the input restarted the window and the map.
ResetKind = Literal['time_backwards', 'size_change']


@dataclass(frozen=True)
class EngineWarning:
    """An input reset, with a line to log.

    Attributes:
        kind: what happened.
        text: one line saying what happened and what follows.

    """

    kind: ResetKind
    text: str


class EngineSink(Protocol):
    """Receiver of the engine's results (see the module docstring for the call order)."""

    def masks_ready(self, window: Window, masks: list[MaskOutput]) -> None:
        """Receive the masks of the window's new frames, before the mapper."""

    def window_mapped(self, output: EngineOutput) -> None:
        """Receive the mapped window: poses of the new frames, static points, map update."""

    def warning(self, warning: EngineWarning) -> None:
        """Receive an input reset (counted in the engine's stats as well)."""


class NullSink:
    """A sink that ignores everything (callers that only use the returned outputs)."""

    def masks_ready(self, window: Window, masks: list[MaskOutput]) -> None:
        """Ignore the masks."""

    def window_mapped(self, output: EngineOutput) -> None:
        """Ignore the window."""

    def warning(self, warning: EngineWarning) -> None:
        """Ignore the warning."""


class TeeSink:
    """Deliver every call to several sinks, in the order given.

    Put the sink whose latency matters first (the node's publisher before a live view): each
    call reaches the next sink only after the previous one returned. An exception stops the
    call there and propagates (the sinks after it miss that call).
    """

    def __init__(self, *sinks: EngineSink) -> None:
        self.sinks = sinks

    def masks_ready(self, window: Window, masks: list[MaskOutput]) -> None:
        """Hand the masks to every sink."""
        for sink in self.sinks:
            sink.masks_ready(window, masks)

    def before_perception(self, output: EngineOutput) -> None:
        """Hand the coming perception to every sink that has ``before_perception``."""
        for sink in self.sinks:
            before = getattr(sink, 'before_perception', None)
            if before is not None:
                before(output)

    def window_mapped(self, output: EngineOutput) -> None:
        """Hand the mapped window to every sink."""
        for sink in self.sinks:
            sink.window_mapped(output)

    def warning(self, warning: EngineWarning) -> None:
        """Hand the warning to every sink."""
        for sink in self.sinks:
            sink.warning(warning)


__all__ = ['EngineOutput', 'EngineSink', 'EngineWarning', 'FrameOutput', 'MaskOutput',
           'NullSink', 'ResetKind', 'TeeSink']
