# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Shared scenario: the synthetic scene through the oracle backend, engine and perception.

The oracle backend (mapping/testing.py) returns the synthetic scene's ground truth per window
with its per-window Sim(3) noise (random scale, pose and depth noise, outlier pixels); the
engine chains windows into one map; perception runs on every window's new frames. Ground truth
is mapped into the output frame: the output frame is the scene's world scaled by the first
window's scale ``s0`` (``output_from_world = [R0 | s0 t0]`` with the first camera's true pose).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.mapping.testing import OracleNoise
from vggt4d_ros.runtime.window import WindowConfig
from vggt4d_ros.perception.config import GridConfig
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.perception.config import TrackerConfig
from vggt4d_ros.perception.observation import observations_from_window
from vggt4d_ros.perception.perception_tracker import PerceptionOutput
from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.replay.synthetic import object_id_image
from vggt4d_ros.replay.synthetic import object_pixels_unoccluded
from vggt4d_ros.replay.synthetic import object_truth
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticOracleView
from vggt4d_ros.replay.synthetic import SyntheticScene

FPS = 15.0
NETWORK_HW = (120, 160)


@dataclass
class FrameRecord:
    """One processed frame: its output and the ground truth, in the output frame."""

    stamp_ns: int
    index: float
    camera: np.ndarray  # [3] output frame
    truth: list  # ObjectTruth with centre/velocity mapped to the output frame
    visible: dict[int, int]  # object id -> visible pixels
    unoccluded: dict[int, int]  # object id -> pixels it would cover with nothing in front
    on_border: dict[int, bool]  # object id -> its visible pixels touch the image border
    output: PerceptionOutput | None = None


@dataclass
class Run:
    scale: float
    records: list[FrameRecord] = field(default_factory=list)
    perception: PerceptionTracker | None = None
    backend: OracleBackend | None = None


def grid_config(scale: float) -> GridConfig:
    """Grid over the 8 x 8 m room, 10 cm cells, band 5 cm - 1.2 m, in map units."""
    return GridConfig(resolution=0.1 * scale, width=84, height=84,
                      origin_xy=(-4.2 * scale, -4.2 * scale), ground_z=0.0,
                      min_height=0.05 * scale, max_height=1.2 * scale,
                      max_range=10.0 * scale, dynamic_decay_s=0.5)


def run_scene(num_frames: int = 60, seed: int = 0, scene_config: SceneConfig | None = None,
              hide=None, planar_motion: bool = False, noise: OracleNoise | None = None,
              tracker: TrackerConfig | None = None) -> Run:
    """Drive the engine and perception over the scene; ``hide(t) -> bool`` blanks masks.

    ``noise``: the oracle's perturbations (default: ``OracleNoise()``); ``tracker``: the
    tracker's configuration (default: ``TrackerConfig(planar_motion=planar_motion)``).
    """
    config = scene_config or SceneConfig(num_frames=num_frames, fps=FPS, seed=seed,
                                         supersample=1)
    scene = SyntheticScene(config)
    view = SyntheticOracleView(scene)
    backend = OracleBackend(scene=view, network_hw=NETWORK_HW, seed=seed,
                            **({} if noise is None else {'noise': noise}))
    window = WindowConfig(min_parallax_px=0, max_keyframe_interval_s=0)
    engine = PerceptionEngine(backend, window, MapperConfig(pixel_stride=4))
    first = scene.world_from_camera(0)
    run = Run(scale=0.0, backend=backend)
    perception = None
    for i in range(config.num_frames):
        stamp = int(round(i * 1e9 / config.fps))
        for out in engine.push(backend.camera_image(stamp), stamp):
            if perception is None:
                run.scale = s0 = backend.window_scales[0]
                output_from_world = np.eye(4)
                output_from_world[:3, :3] = first[:3, :3]
                output_from_world[:3, 3] = s0 * first[:3, 3]
                # The output frame is the scene's world (z up) and the objects move on the
                # floor: the planar motion model would apply (off by default, as the node's).
                perception = PerceptionTracker(PerceptionConfig(
                    output_from_world=output_from_world, grid=grid_config(s0),
                    tracker=tracker or TrackerConfig(planar_motion=planar_motion)))
                run.perception = perception
            frames = observations_from_window(out.result, out.update)
            if hide is not None:
                for obs in frames:
                    if hide(obs.stamp_ns * 1e-9):
                        obs.mask = torch.zeros_like(obs.mask)
            # One frame per call: the same state as one call per window, but the tracks
            # of every frame can be compared with the ground truth.
            for obs in frames:
                result = perception.update([obs])
                if result.stamp_ns is not None:
                    run.records.append(_record(scene, backend, obs.stamp_ns, run.scale, result))
    return run


def _record(scene, backend, stamp_ns, scale, output) -> FrameRecord:
    index = stamp_ns * 1e-9 * scene.config.fps
    truth = object_truth(scene, index)
    for obj in truth:
        obj.centre = obj.centre * scale
        obj.velocity = obj.velocity * scale
    ids = object_id_image(scene, index, backend.intrinsics, NETWORK_HW)
    visible = {obj.object_id: int((ids == obj.object_id).sum()) for obj in truth}
    unoccluded = object_pixels_unoccluded(scene, index, backend.intrinsics, NETWORK_HW)
    border = np.zeros(NETWORK_HW, bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    on_border = {obj.object_id: bool((ids[border] == obj.object_id).any()) for obj in truth}
    camera = scene.world_from_camera(index)[:3, 3] * scale
    return FrameRecord(stamp_ns, index, camera, truth, visible, unoccluded, on_border, output)


def fully_visible(record: FrameRecord, object_id: int, min_fraction: float = 0.9) -> bool:
    """Seen whole: not cut by the image border and at most 10 % hidden behind something."""
    total = record.unoccluded[object_id]
    return (total > 0 and not record.on_border[object_id]
            and record.visible[object_id] >= min_fraction * total)
