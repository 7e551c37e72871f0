# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Ready a VGGT for :class:`~vggt4d_ros.motion.pipeline.VGGT4DPipeline`.

This is the one step that changes the model (device, eval mode, weight cast, fused GELU,
attention backend, FP8 fast mode, torch.compile); whoever builds a pipeline runs it.

The pipeline itself never moves, patches or compiles the module it is handed; it checks that
the model is on its device and in eval mode, and fails with a message naming this step.
"""

from __future__ import annotations

import torch

from vggt4d_ros.model.fp8 import quantise_linears
from vggt4d_ros.model.layers import use_attention_backend
from vggt4d_ros.model.layers import use_fused_gelu
from vggt4d_ros.motion.pipeline import PipelineConfig


def prepare_model(model: torch.nn.Module, config: PipelineConfig,
                  device: torch.device | str, weights_dtype: torch.dtype | None = None
                  ) -> torch.nn.Module:
    """Move, patch and compile ``model`` for a pipeline built with ``config`` on ``device``.

    In place (the same module is returned): ``model.to(device).eval()``; weights cast to
    ``weights_dtype`` when given (the pipeline then runs without autocast, see its ``dtype``);
    ``config.fused_gelu`` sets the MLPs' fused fc1 + GELU flag; ``config.attention`` the
    attention backend of every attention module; ``config.precision='fast'`` replaces the
    linear layers of the aggregator's frame and global blocks with FP8 ones (weights quantised
    here, once: :func:`quantise_fast_mode`); ``config.compile_model`` on CUDA compiles the
    modules the passes run (:func:`compile_model`).

    Args:
        model: a ``vggt4d_ros.model.vggt.VGGT`` with its weights loaded.
        config: the pipeline's settings (``fused_gelu``, ``attention``, ``precision``,
            ``fp8_scaling``, ``compile_model``, ``compile_mode``).
        device: where the pipeline will run.
        weights_dtype: cast the weights to this dtype (None = keep them).

    Returns:
        ``model``, ready.

    """
    device = torch.device(device)
    model = model.to(device).eval()
    if weights_dtype is not None:
        model = model.to(weights_dtype)
    use_fused_gelu(model, config.fused_gelu)
    use_attention_backend(model, config.attention)
    if config.precision == 'fast':
        quantise_fast_mode(model, config.fp8_scaling)
    elif config.precision != 'exact':
        raise ValueError(f"precision must be 'exact' or 'fast', got {config.precision!r}")
    if config.compile_model and device.type == 'cuda':
        compile_model(model, config.compile_mode)
    return model


def quantise_fast_mode(model: torch.nn.Module, scaling: str = 'row') -> int:
    """FP8 linear layers in the aggregator's frame and global blocks, in place.

    Only the 48 alternating-attention blocks: they hold ~90 % of a window's GEMM work (both
    passes run them), while the DINOv2 embedding runs once per frame and the heads are small.
    The weight scales are computed here from the weights (once, at preparation); returns the
    number of layers quantised. Idempotent (quantised layers are left alone).
    """
    aggregator = model.aggregator
    return sum(quantise_linears(blocks, scaling)
               for blocks in (aggregator.frame_blocks, aggregator.global_blocks))


def compile_model(model: torch.nn.Module, mode: str | None = None) -> None:
    """``torch.compile`` the modules the passes run, in place (state_dict keys kept).

    The aggregator is always called with precomputed patch features, so its graph holds the
    48 blocks only; the DINOv2 embedding is compiled on its own (one graph per count of new
    frames), and the camera and depth heads too (the DPT head's channels-last bilinear
    upsampling alone took 3.7 ms eagerly on an H200).
    """
    aggregator = model.aggregator
    for module in (aggregator, aggregator.patch_embed, model.camera_head, model.depth_head):
        module.compile(dynamic=False, mode=mode)
