# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The ONE place where dataset evaluation touches the streaming runtime (adapter).

Everything ``vggt4d-eval`` needs from the engine goes through here: reading the node's
parameter file into the node's :class:`~vggt4d_ros.runtime.config.EngineConfig` (the same
function the node uses), building the VGGT4D backend from a checkpoint with the runtime's one
builder (random weights are refused), and driving the engine over one sequence's frames in
replay mode (every frame is a keyframe, nothing is dropped), collecting per frame the pose, the
camera-resolution mask and, for reconstruction metrics, the depth and intrinsics.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
import time
from typing import Any, Callable, Iterable

import numpy as np
import torch

from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.runtime.config import EngineConfig
from vggt4d_ros.runtime.parameters import engine_config_from_parameters
from vggt4d_ros.runtime.parameters import load_parameter_file
from vggt4d_ros.runtime.parameters import replay_window_parameters
from vggt4d_ros.runtime.window import WindowConfig

#: Largest window_size the node's parameter declaration accepts (WindowConfig's range).
MAX_WINDOW_SIZE = int(next(item.metadata['range'][1] for item in fields(WindowConfig)
                           if item.name == 'window_size'))
#: Keep every 2nd camera pixel of predicted depth (about the network resolution).
DEPTH_PIXEL_STRIDE = 2

NO_WEIGHTS = ('vggt4d-eval needs a VGGT checkpoint: pass --weights PATH (or set weights in the '
              '--params file). Random weights are refused: this tool reports quality.')


def read_params(path: str | Path | None) -> dict[str, Any]:
    """Flat ``{'window.window_size': 8, ...}`` of a node parameter file (the node's loader)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ReplayError(f'parameter file {path} does not exist')
    try:
        return load_parameter_file(path)
    except ValueError as error:
        raise ReplayError(str(error)) from error


@dataclass
class EngineSettings:
    """The node's EngineConfig of a parameter file, in replay mode."""

    config: EngineConfig

    @property
    def window(self) -> WindowConfig:
        return self.config.window

    @property
    def mapper(self) -> Any:
        return self.config.mapper

    @property
    def pipeline(self) -> Any:
        return self.config.pipeline

    @property
    def weights(self) -> str:
        return self.config.backend.weights

    @property
    def device(self) -> str:
        return self.config.backend.device

    @property
    def window_size(self) -> int:
        return int(self.window.window_size)

    @property
    def stride(self) -> int:
        return int(self.window.stride)


def engine_configs(params: dict[str, Any], window_size: int | None = None,
                   stride: int | None = None) -> EngineSettings:
    """Build the node's EngineConfig of flat parameters, in replay mode (every frame a keyframe).

    Args:
        params: flat parameters (:func:`read_params`).
        window_size, stride: overrides of ``window.window_size`` / ``window.stride``.

    Raises:
        ReplayError: a parameter is not allowed (the message names it).

    """
    flat = dict(params)
    if window_size is not None:
        flat['window.window_size'] = int(window_size)
    if stride is not None:
        flat['window.stride'] = int(stride)
    # The evaluation scores every frame: the replay window policy (no gate, nothing dropped).
    flat.update(replay_window_parameters())
    if 'window.stride' in flat:
        flat['window.max_queued_frames'] = max(int(flat.get('window.max_queued_frames', 8)),
                                               int(flat['window.stride']))
    try:
        return EngineSettings(engine_config_from_parameters(flat))
    except ValueError as error:
        raise ReplayError(str(error)) from error


def long_window(settings: EngineSettings, frames: int) -> EngineSettings:
    """Return settings for a single-pass sequence: one window as large as allowed."""
    size = max(2, min(frames, MAX_WINDOW_SIZE))
    window = replace(settings.window, window_size=size, stride=max(1, size // 2),
                     max_queued_frames=max(size, 8))
    return EngineSettings(replace(settings.config, window=window))


def build_backend(weights: str | Path | None, settings: EngineSettings,
                  device: str | None = None) -> tuple[Any, str]:
    """VGGT4D with a strictly loaded checkpoint; ReplayError without one (no random weights)."""
    from vggt4d_ros.runtime.backend import build_backend as build_runtime_backend
    from vggt4d_ros.runtime.backend import BackendError

    path = str(weights or settings.weights or '')
    if not path:
        raise ReplayError(NO_WEIGHTS)
    backend_config = replace(settings.config.backend, weights=path,
                             allow_random_weights=False, backend_factory='',
                             device=device or settings.device)
    try:
        built = build_runtime_backend(backend_config, settings.pipeline)
    except BackendError as error:
        raise ReplayError(str(error)) from error
    return built.backend, built.description


@dataclass
class FrameResult:
    """One frame out of the engine.

    Attributes:
        stamp_ns: image stamp; pose: [4,4] world_from_camera in the engine's global frame
            (VGGT's scale-free units); mask: [H,W] uint8 0/255 at camera resolution.
        depth: [H/k,W/k] float32 depth in global units at every k-th camera pixel, or None.
        intrinsics: [3,3] camera-pixel intrinsics (full resolution), or None.

    """

    stamp_ns: int
    pose: np.ndarray
    mask: np.ndarray
    depth: np.ndarray | None = None
    intrinsics: np.ndarray | None = None


@dataclass
class SequenceRun:
    """Engine outputs of one sequence (frames in time order) and what happened."""

    frames: list[FrameResult] = field(default_factory=list)
    windows: int = 0
    map_resets: int = 0
    seconds: float = 0.0

    def poses(self) -> np.ndarray:
        return np.stack([f.pose for f in self.frames]) if self.frames else np.zeros((0, 4, 4))


def _frame_depths(output: Any) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per new frame of an EngineOutput: (depth at camera pixels / k, camera intrinsics)."""
    from vggt4d_ros.geometry.image_transform import map_to_camera

    result, scale = output.result, float(output.update.window_to_global.scale)
    indices = [frame.index for frame in output.frames]
    depth = map_to_camera(result.depth[indices].float().cpu(), result.transform,
                          mode='nearest', fill=0.0)
    ks = result.intrinsics_at_camera()[indices].double().cpu().numpy()
    k = DEPTH_PIXEL_STRIDE
    return {frame.stamp_ns: ((depth[j, ::k, ::k].numpy() * scale).astype(np.float32), ks[j])
            for j, frame in enumerate(output.frames)}


def run_sequence(backend: Any, frames: Iterable[tuple[int, np.ndarray]],
                 settings: EngineSettings, with_depth: bool = False,
                 progress: Callable[[str], None] | None = None) -> SequenceRun:
    """Drive the engine over ``(stamp_ns, rgb)`` frames; every frame comes out once.

    Raises:
        ReplayError: a frame went in and did not come out (would bias the scores).

    """
    from vggt4d_ros.runtime.engine import PerceptionEngine

    engine = PerceptionEngine(backend, settings.window, settings.mapper)
    run, sent = SequenceRun(), 0
    started = time.perf_counter()

    def collect(outputs: list[Any]) -> None:
        for output in outputs:
            run.windows += 1
            depths = _frame_depths(output) if with_depth else {}
            for frame in output.frames:
                depth, k = depths.get(frame.stamp_ns, (None, None))
                run.frames.append(FrameResult(frame.stamp_ns, np.asarray(frame.pose),
                                              np.asarray(frame.mask), depth, k))
            if progress is not None:
                progress(f'{len(run.frames)}/{sent} frames out, {run.windows} windows')

    with torch.inference_mode():
        for stamp_ns, rgb in frames:
            sent += 1
            collect(engine.push(rgb, int(stamp_ns), 'camera'))
        collect(engine.flush())
    run.map_resets = int(engine.stats.map_resets)
    run.seconds = time.perf_counter() - started
    if len(run.frames) != sent:
        raise ReplayError(f'{sent} frames went into the engine, {len(run.frames)} came out')
    return run
