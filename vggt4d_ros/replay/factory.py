# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Build the window backend of the replay tool without ROS: VGGT + VGGT4DPipeline.

With a weights file the checkpoint-exact ``VGGTConfig.full()`` model is built and loaded
strictly (a missing or mismatched file is a :class:`~vggt4d_ros.replay.errors.ReplayError`
naming it). Without one, the tiny configuration is initialised from a fixed seed: the run is
deterministic and fast, and its numbers say nothing about quality (callers print a warning).
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import plan_resize
from vggt4d_ros.model.runtime import resolve_device
from vggt4d_ros.model.runtime import resolve_dtype
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.prepare import prepare_model
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.replay.errors import ReplayError

WEIGHTS_ENV = 'VGGT4D_WEIGHTS'
RANDOM_INIT_SEED = 0
RANDOM_WEIGHTS_WARNING = (
    'NO WEIGHTS GIVEN: running the TINY model with RANDOM weights. Every number and mask '
    'below is a plumbing check and means NOTHING about VGGT4D quality. Pass --weights PATH '
    f'(or set {WEIGHTS_ENV}) to a VGGT checkpoint for a real evaluation.')


@dataclass
class ReplayBackend:
    """A ready backend and what it is.

    Attributes:
        backend: object with ``run(frames, stamps_ns) -> WindowResult``.
        description: one line (model size, weights, device, dtype, network width).
        random_weights: True when no checkpoint was loaded.
        device: torch device the network runs on.

    """

    backend: object
    description: str
    random_weights: bool
    device: torch.device


class FixedWidthBackend:
    """Run a pipeline at a network width other than VGGT's 518 (small models, fast tests).

    Args:
        pipeline: the VGGT4D pipeline.
        width: network width in pixels (multiple of the patch size, 14).

    """

    def __init__(self, pipeline: VGGT4DPipeline, width: int) -> None:
        self.pipeline = pipeline
        self.width = int(width)

    def run(self, frames: Sequence[np.ndarray], stamps_ns: Sequence[int]) -> WindowResult:
        """Run a window, as :meth:`VGGT4DPipeline.run` (frames [S] HxWx3 uint8 RGB)."""
        plan = plan_resize(tuple(frames[0].shape[:2]), mode=self.pipeline.config.resize_mode,
                           target=self.width, patch=self.pipeline.patch)
        return self.pipeline.run(frames, stamps_ns, plan=plan)


def resolve_weights(weights: str | Path | None) -> Path | None:
    """Return the checkpoint to use: the argument, else $VGGT4D_WEIGHTS, else None (random)."""
    value = str(weights) if weights else os.environ.get(WEIGHTS_ENV, '')
    return Path(value).expanduser() if value else None


def build_backend(weights: str | Path | None = None, device: str = 'auto',
                  pipeline_config: PipelineConfig | None = None,
                  network_width: int | None = None) -> ReplayBackend:
    """VGGT (strictly loaded, or tiny with seeded random weights) wrapped in the pipeline.

    Args:
        weights: checkpoint path; None/'' -> $VGGT4D_WEIGHTS -> tiny random model.
        device: 'auto', 'cpu', 'cuda', 'cuda:1', ...
        pipeline_config: VGGT4D settings (default: the release defaults).
        network_width: None = VGGT's 518 px; otherwise a multiple of 14 (tests).

    Raises:
        ReplayError: missing or mismatched checkpoint, unavailable device, bad width.

    """
    from vggt4d_ros.model.config import VGGTConfig
    from vggt4d_ros.model.vggt import VGGT
    from vggt4d_ros.model.weights import CheckpointError
    from vggt4d_ros.model.weights import load_model

    try:
        torch_device = resolve_device(device)
    except ValueError as error:
        raise ReplayError(f'--device: {error}') from error
    dtype = resolve_dtype('auto', torch_device)
    path = resolve_weights(weights)
    if path is not None:
        if not path.is_file():
            raise ReplayError(f'weights file {path} does not exist')
        try:
            model = load_model(path, VGGTConfig.full(), device=torch_device)
        except CheckpointError as error:
            raise ReplayError(str(error)) from error
        source = f'VGGT full, weights {path}'
    else:
        # Seeded so two replays give the same masks and trajectory; the global RNG state is
        # restored so callers' own random streams are not disturbed.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = VGGT(VGGTConfig.tiny())
        model = model.to(torch_device).eval()
        source = f'VGGT tiny, RANDOM weights (seed {RANDOM_INIT_SEED})'
    pipeline_config = pipeline_config or PipelineConfig()
    model = prepare_model(model, pipeline_config, torch_device)
    pipeline = VGGT4DPipeline(model, pipeline_config, torch_device, dtype)
    backend: object = pipeline
    width = 518
    if network_width is not None and network_width != 518:
        if network_width <= 0 or network_width % pipeline.patch:
            raise ReplayError(f'network width {network_width} is not a positive multiple of '
                              f'{pipeline.patch}')
        backend, width = FixedWidthBackend(pipeline, network_width), network_width
    description = f'{source}; device {torch_device}, {dtype}, network width {width}'
    return ReplayBackend(backend, description, path is None, torch_device)
