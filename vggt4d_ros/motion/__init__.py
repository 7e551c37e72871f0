# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""VGGT4D on windows of frames: the names a user imports.

    from vggt4d_ros.model import VGGTConfig, load_model
    from vggt4d_ros.motion import PipelineConfig, VGGT4DPipeline, prepare_model

    config = PipelineConfig()
    model = prepare_model(load_model('model.pt', VGGTConfig.full()), config, 'cuda')
    result = VGGT4DPipeline(model, config, 'cuda', torch.bfloat16).run(frames, stamps_ns)

Stage modules: ``cues``, ``coarse``, ``kmeans``, ``refine``, ``graphs``.
"""

from vggt4d_ros.motion.coarse import CoarseConfig
from vggt4d_ros.motion.cues import CueConfig
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.prepare import prepare_model
from vggt4d_ros.motion.refine import RefineConfig
from vggt4d_ros.motion.result import WindowResult

__all__ = [
    'CoarseConfig',
    'CueConfig',
    'PipelineConfig',
    'prepare_model',
    'RefineConfig',
    'VGGT4DPipeline',
    'WindowResult',
]
