# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The backend builder applies the attention and precision parameters and says fast mode."""

from vggt4d_ros.model.fp8 import Fp8Linear
from vggt4d_ros.model.layers import Attention
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.runtime.backend import build_backend, FAST_MODE_WARNING
from vggt4d_ros.runtime.config import BackendConfig
from vggt4d_ros.runtime.parameters import engine_config_from_parameters


def _tiny(pipeline: PipelineConfig):
    return build_backend(BackendConfig(allow_random_weights=True, model_config='tiny',
                                       device='cpu'), pipeline)


def test_parameters_reach_the_model_and_fast_mode_is_named():
    config = engine_config_from_parameters({'pipeline.precision': 'fast',
                                            'pipeline.attention': 'flex',
                                            'pipeline.fp8_scaling': 'tensor'})
    loaded = _tiny(config.pipeline)
    model = loaded.backend.model
    layers = [m for m in model.modules() if isinstance(m, Fp8Linear)]
    assert layers and all(layer.scaling == 'tensor' for layer in layers)
    assert all(m.backend == 'flex' for m in model.modules() if isinstance(m, Attention))
    assert 'FP8 fast mode' in loaded.description
    assert 'deviate' in FAST_MODE_WARNING and 'checkpoint' in FAST_MODE_WARNING


def test_defaults_build_the_exact_model():
    loaded = _tiny(engine_config_from_parameters({}).pipeline)
    assert not any(isinstance(m, Fp8Linear) for m in loaded.backend.model.modules())
    assert 'fast' not in loaded.description
