# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The top-level engine configuration both front ends build: window, mapper, pipeline, backend, ...

The ROS node and the replay tool each build one :class:`EngineConfig` from a flat parameter
dict (the node from its ROS parameters, the replay tool from a node parameter file) through
:func:`vggt4d_ros.runtime.parameters.engine_config_from_parameters`, so the same parameter
file gives the same engine. Every field carries its description, allowed values (``Literal``
types) and range in ``dataclasses.field(metadata=...)``; the node declares its parameters
from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vggt4d_ros.config_fields import field_meta as _meta
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.runtime.output_stage import OutputStageConfig
from vggt4d_ros.runtime.rig import RigConfig
from vggt4d_ros.runtime.scale.config import ScaleConfig
from vggt4d_ros.runtime.window import WindowConfig

#: Patch size of VGGT's network images: the network width must be a multiple of it.
PATCH = 14
#: VGGT's network width (the checkpoint's training resolution).
VGGT_WIDTH = 518


@dataclass(frozen=True)
class BackendConfig:
    """How the window backend is built (one policy for the node and the replay tool).

    A weights path is loaded strictly into the ``model_config`` architecture. An empty path
    is an error unless ``allow_random_weights``: then the model is initialised from
    ``random_seed`` (deterministic; outputs are meaningless). Parameter names are top-level
    (``weights``, ``device``, ...), as the node has always declared them.
    """

    weights: str = field(default='', metadata=_meta(
        'VGGT checkpoint (.pt/.pth/.safetensors), loaded strictly at activate.'))
    allow_random_weights: bool = field(default=False, metadata=_meta(
        'With an empty weights path, run randomly initialised weights (seeded by '
        'random_seed; tests and demos only: outputs are meaningless).'))
    random_seed: int = field(default=0, metadata=_meta(
        'Seed of the random initialisation (allow_random_weights): the same seed gives the '
        'same model in the node and the replay tool.', (0, 2**31 - 1)))
    model_config: Literal['full', 'tiny'] = field(default='full', metadata=_meta(
        'VGGT size: full (checkpoint-exact, 1.26 B parameters) or tiny (same architecture, '
        'few blocks; CPU tests).'))
    device: str = field(default='auto', metadata=_meta(
        'Torch device: auto (cuda if available, else cpu), cpu, cuda, cuda:N.'))
    dtype: Literal['auto', 'bfloat16', 'float16', 'float32'] = field(
        default='auto', metadata=_meta(
            'Compute dtype: auto (bfloat16 on CUDA with compute capability >= 8, float16 on '
            'older CUDA, float32 on CPU), bfloat16, float16, float32.'))
    weights_dtype: Literal['float32', 'compute'] = field(default='float32', metadata=_meta(
        'float32: keep fp32 weights and run under autocast (the release mode); compute: cast '
        'the weights to the compute dtype (half the memory, ~35 % faster on an H200, pose '
        'error ~1e-2 relative).'))
    network_width: int = field(default=VGGT_WIDTH, metadata=_meta(
        "Network input width in pixels, a multiple of 14 (518: VGGT's; smaller makes CPU "
        'runs of the tiny model faster).', (PATCH, 14 * 512)))
    warmup: bool = field(default=True, metadata=_meta(
        'Run two dummy windows (the second one stride later; a rig: its steps x cameras '
        'layout) through a throwaway engine at activate, so the first real windows are not '
        'slowed by lazy CUDA initialisation, compilation or first use of the mapper.'))
    warmup_height: int = field(default=480, metadata=_meta(
        'Height of the warm-up frames (use the camera size).', (14, 8192)))
    warmup_width: int = field(default=640, metadata=_meta(
        'Width of the warm-up frames (use the camera size).', (14, 8192)))
    backend_factory: str = field(default='', metadata=_meta(
        'Advanced: "module:function" returning a window backend (object with run(frames, '
        'stamps_ns) -> WindowResult) instead of VGGT4D; called with (BackendConfig, '
        'device, dtype).'))

    def __post_init__(self) -> None:
        if self.network_width <= 0 or self.network_width % PATCH:
            raise ValueError(f'network_width={self.network_width} is not a positive multiple '
                             f'of {PATCH}')


@dataclass(frozen=True)
class EngineConfig:
    """Everything that defines the engine a front end runs.

    Attributes:
        window: sliding window and keyframe gate (``window.mode`` is the node's ``mode``).
        mapper: window chaining and the static map.
        pipeline: the VGGT4D window pipeline.
        backend: how the backend is built.
        scale: metric scale source and fusion (``source='none'``: VGGT's scale-free units).
        perception: planner outputs (dynamic cloud, grids, tracks) built per window.
        rig: the cameras of a multi-camera rig (``image_topics`` empty: one camera).
        output_stage: where the outputs after the mapper run (their own thread or in line).

    """

    window: WindowConfig = field(default_factory=WindowConfig)
    mapper: MapperConfig = field(default_factory=MapperConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    rig: RigConfig = field(default_factory=RigConfig)
    output_stage: OutputStageConfig = field(default_factory=OutputStageConfig)


__all__ = ['BackendConfig', 'EngineConfig', 'PATCH', 'VGGT_WIDTH']
