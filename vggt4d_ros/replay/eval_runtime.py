# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The ONE place where dataset evaluation touches the streaming runtime (adapter).

Everything ``vggt4d-eval`` needs from the engine goes through here: reading the node's
parameter file into configs, building the VGGT4D backend from a checkpoint (random weights are
refused), and driving the engine over one sequence's frames in replay mode (every frame is a
keyframe, nothing is dropped), collecting per frame the pose, the camera-resolution mask and,
for reconstruction metrics, the depth and intrinsics.

MERGE NOTE: today this builds on ``replay.factory.build_backend`` and
``mapping.engine.PerceptionEngine``; once ``runtime/`` lands, replace :func:`read_params` /
:func:`engine_configs` by ``runtime.config`` (EngineConfig from the parameter file) and
:func:`build_backend` by ``runtime.backend``'s builder. Nothing else in the evaluation imports
the engine, the factory or the configs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
import time
from typing import Any, Callable, Iterable

import numpy as np
import torch

from vggt4d_ros.replay.errors import ReplayError

#: Largest window_size the node's parameter declaration accepts today (ros/params.py limit).
MAX_WINDOW_SIZE = 512
#: Keep every 2nd camera pixel of predicted depth (about the network resolution).
DEPTH_PIXEL_STRIDE = 2

NO_WEIGHTS = ('vggt4d-eval needs a VGGT checkpoint: pass --weights PATH (or set weights in the '
              '--params file). Random weights are refused: this tool reports quality.')


def read_params(path: str | Path | None) -> dict[str, Any]:
    """Flat ``{'window.window_size': 8, ...}`` of a ROS 2 parameter YAML (``ros__parameters``).

    REPLACE at merge with the runtime's EngineConfig builder. The first node entry holding
    ``ros__parameters`` is used (``/**`` in config/vggt4d.yaml).
    """
    if path is None:
        return {}
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ReplayError(f'parameter file {path} does not exist')
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ReplayError(f'cannot parse parameter file {path}: {error}') from error
    node = next((v for v in document.values()
                 if isinstance(v, dict) and 'ros__parameters' in v), None) \
        if isinstance(document, dict) else None
    if node is None:
        raise ReplayError(f'parameter file {path} has no <node>: ros__parameters: section')
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f'{prefix}{key}.', item)
        else:
            flat[prefix[:-1]] = value

    walk('', node['ros__parameters'] or {})
    return flat


def _config(cls: type, flat: dict[str, Any], prefix: str) -> Any:
    """Build a dataclass config from the scalar fields found under ``prefix`` in ``flat``."""
    values: dict[str, Any] = {}
    default = cls()
    for item in fields(cls):
        current = getattr(default, item.name)
        key = prefix + item.name
        if is_dataclass(current):
            values[item.name] = _config(type(current), flat, key + '.')
        elif key in flat and isinstance(current, (bool, int, float, str)):
            if isinstance(current, bool) != isinstance(flat[key], bool):
                raise ReplayError(f'parameter {key}: {flat[key]!r} is not a '
                                  f'{type(current).__name__}')
            try:
                values[item.name] = type(current)(flat[key])
            except (TypeError, ValueError) as error:
                raise ReplayError(f'parameter {key}: {error}') from error
    try:
        return replace(default, **values)
    except (TypeError, ValueError) as error:
        raise ReplayError(f'parameters {prefix}*: {error}') from error


@dataclass
class EngineSettings:
    """Window, mapper and pipeline configs plus the model settings of a parameter file."""

    window: Any
    mapper: Any
    pipeline: Any
    weights: str = ''
    device: str = 'auto'

    @property
    def window_size(self) -> int:
        return int(self.window.window_size)

    @property
    def stride(self) -> int:
        return int(self.window.stride)


def engine_configs(params: dict[str, Any], window_size: int | None = None,
                   stride: int | None = None) -> EngineSettings:
    """Configs from the flat parameters, in replay mode (every frame a keyframe).

    Args:
        params: flat parameters (:func:`read_params`).
        window_size, stride: overrides of ``window.window_size`` / ``window.stride``.

    """
    from vggt4d_ros.mapping.mapper import MapperConfig
    from vggt4d_ros.mapping.window import WindowConfig
    from vggt4d_ros.motion.pipeline import PipelineConfig

    flat = dict(params)
    if window_size is not None:
        flat['window.window_size'] = int(window_size)
    if stride is not None:
        flat['window.stride'] = int(stride)
    # The evaluation scores every frame: no keyframe gate, no dropping.
    flat.update({'window.mode': 'replay', 'window.min_parallax_px': 0.0,
                 'window.min_keyframe_interval_s': 0.0, 'window.max_keyframe_interval_s': 0.0})
    if 'window.stride' in flat:
        flat['window.max_queued_frames'] = max(int(flat.get('window.max_queued_frames', 8)),
                                               int(flat['window.stride']))
    window = _config(WindowConfig, flat, 'window.')
    return EngineSettings(window, _config(MapperConfig, flat, 'mapper.'),
                          _config(PipelineConfig, flat, 'pipeline.'),
                          str(params.get('weights', '') or ''), str(params.get('device', 'auto')))


def long_window(settings: EngineSettings, frames: int) -> EngineSettings:
    """Return settings for a single-pass sequence: one window as large as allowed."""
    size = max(2, min(frames, MAX_WINDOW_SIZE))
    return replace(settings, window=replace(settings.window, window_size=size,
                                            stride=max(1, size // 2),
                                            max_queued_frames=max(size, 8)))


def build_backend(weights: str | Path | None, settings: EngineSettings,
                  device: str | None = None) -> tuple[Any, str]:
    """VGGT4D with a strictly loaded checkpoint; ReplayError without one (no random weights).

    REPLACE at merge with ``runtime.backend``'s builder.
    """
    from vggt4d_ros.replay.factory import build_backend as build_replay_backend

    path = str(weights or settings.weights or '')
    if not path:
        raise ReplayError(NO_WEIGHTS)
    built = build_replay_backend(path, device or settings.device, settings.pipeline)
    if built.random_weights:  # defensive: the factory only does this without a path
        raise ReplayError(NO_WEIGHTS)
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
    from vggt4d_ros.mapping.engine import PerceptionEngine

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
