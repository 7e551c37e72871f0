# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""VGGT: aggregator + camera, depth, point and track heads, checkpoint-exact.

Top-level children are exactly ``aggregator``, ``camera_head``, ``point_head``, ``depth_head``
and ``track_head`` so that the released checkpoints load strictly with no key remapping.

Precision: like the reference, the heads run with autocast disabled. Two supported modes:
fp32 weights under ``torch.autocast(dtype=bfloat16)`` (reference path: bf16 matmuls, fp32
residual stream and heads), or ``model.to(torch.bfloat16)`` (everything bf16, faster, half the
weight memory).
"""

from typing import AbstractSet, Dict, List, Optional, Union

import torch
from torch import nn

from vggt4d_ros.model.aggregator import Aggregator
from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.heads import CameraHead, DPTHead, TrackHead
from vggt4d_ros.model.hooks import CaptureRequest, KeyValueMask

ALL_HEADS = frozenset({'camera', 'depth', 'point', 'track'})
# What the reference forward runs (track only when query points are given).
DEFAULT_HEADS = ALL_HEADS


def _param_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _as_dtype(tokens: list, dtype: torch.dtype) -> list:
    return [None if t is None else t.to(dtype) for t in tokens]


class VGGT(nn.Module):
    """Visual Geometry Grounded Transformer (VGGT-1B layout)."""

    def __init__(self, config: Optional[VGGTConfig] = None) -> None:
        super().__init__()
        config = config or VGGTConfig.full()
        self.config = config
        layer_idx = list(config.intermediate_layer_idx)
        self.aggregator = Aggregator(config)
        self.camera_head = CameraHead(
            dim_in=config.dim_in,
            trunk_depth=config.camera_trunk_depth,
            num_heads=config.camera_num_heads,
            mlp_ratio=config.camera_mlp_ratio,
            init_values=config.camera_init_values,
        )
        self.point_head = self._dpt(output_dim=4, activation='inv_log')
        self.depth_head = self._dpt(output_dim=2, activation='exp')
        self.track_head = TrackHead(
            dim_in=config.dim_in,
            patch_size=config.patch_size,
            features=config.track_features,
            iters=config.track_iters,
            stride=config.track_stride,
            corr_levels=config.track_corr_levels,
            corr_radius=config.track_corr_radius,
            hidden_size=config.track_hidden_size,
            pos_embed=config.track_pos_embed,
            out_channels=list(config.track_out_channels),
            intermediate_layer_idx=layer_idx,
            tracker_depth=config.track_tracker_depth,
            num_heads=config.track_num_heads,
            num_virtual_tracks=config.track_num_virtual_tracks,
        )

    def _dpt(self, output_dim: int, activation: str) -> DPTHead:
        config = self.config
        return DPTHead(
            dim_in=config.dim_in,
            patch_size=config.patch_size,
            output_dim=output_dim,
            activation=activation,
            conf_activation='expp1',
            features=config.dpt_features,
            out_channels=list(config.dpt_out_channels),
            intermediate_layer_idx=list(config.intermediate_layer_idx),
        )

    def forward(
        self,
        images: torch.Tensor,
        query_points: Optional[torch.Tensor] = None,
        *,
        capture: Optional[CaptureRequest] = None,
        kv_mask: Optional[KeyValueMask] = None,
        heads: Optional[AbstractSet[str]] = None,
        patch_tokens: Optional[torch.Tensor] = None,
    ) -> Dict[str, Union[torch.Tensor, list, object]]:
        """Predict cameras, depth, point maps (and tracks) for a window of frames.

        Args:
            images: ``[S,3,h,w]`` or ``[B,S,3,h,w]`` in [0, 1], sides multiples of 14.
            query_points: ``[Q,2]`` or ``[B,Q,2]`` pixel coordinates in frame 0 (track head).
            capture: capture q/k of global blocks and the DINOv2 patch features.
            kv_mask: remove dynamic keys/values in the first blocks (VGGT4D pass 2).
            heads: subset of ``{'camera','depth','point','track'}`` to run; default: all
                (track only with query points).
            patch_tokens: ``[B,S,N,C]`` DINOv2 features from an earlier pass of these images.

        Returns:
            Official names: ``pose_enc[B,S,9]``, ``pose_enc_list`` (4 x ``[B,S,9]``),
            ``depth[B,S,h,w,1]``, ``depth_conf[B,S,h,w]``, ``world_points[B,S,h,w,3]``,
            ``world_points_conf[B,S,h,w]``, ``images[B,S,3,h,w]``; ``track[B,S,Q,2]``, ``vis``,
            ``conf`` ``[B,S,Q]`` with query points; ``captures`` when ``capture`` is given.
        """
        heads = DEFAULT_HEADS if heads is None else frozenset(heads)
        unknown = heads - ALL_HEADS
        if unknown:
            raise ValueError(f'unknown heads {sorted(unknown)}; choose from {sorted(ALL_HEADS)}')
        if images.dim() == 4:
            images = images.unsqueeze(0)
        if query_points is not None and query_points.dim() == 2:
            query_points = query_points.unsqueeze(0)

        # Camera head alone (VGGT4D's pass 2): the last layer's camera tokens are all it reads.
        tokens, patch_start_idx, captures = self.aggregator(
            images, capture=capture, kv_mask=kv_mask, patch_tokens=patch_tokens,
            camera_only=heads == frozenset({'camera'}),
        )
        predictions = self.run_heads(tokens, images, patch_start_idx, heads)
        # The reference runs the track head outside the autocast-disabled region.
        if 'track' in heads and query_points is not None:
            dtype = _param_dtype(self.track_head)
            track_list, vis, conf = self.track_head(
                _as_dtype(tokens, dtype), images=images,
                patch_start_idx=patch_start_idx, query_points=query_points.to(dtype),
            )
            predictions['track'] = track_list[-1]
            predictions['vis'] = vis
            predictions['conf'] = conf
        predictions['images'] = images
        if captures is not None:
            predictions['captures'] = captures
        return predictions

    def run_heads(
        self,
        tokens: List[Optional[torch.Tensor]],
        images: torch.Tensor,
        patch_start_idx: int,
        heads: AbstractSet[str],
    ) -> Dict[str, Union[torch.Tensor, list, object]]:
        """Camera, depth and point heads on aggregator outputs (autocast off, as the reference).

        Split from :meth:`forward` so a caller can run the heads later or on another CUDA
        stream than the aggregator (VGGT4D overlaps pass 1's heads with pass 2).

        Args:
            tokens: the aggregator's per-layer outputs ``[B,S,P,2C]`` (None where not kept).
            images: ``[B,S,3,h,w]``.
            patch_start_idx: index of the first patch token.
            heads: which of ``{'camera','depth','point'}`` to run.

        Returns:
            ``pose_enc``, ``pose_enc_list``, ``depth``, ``depth_conf``, ``world_points``,
            ``world_points_conf`` for the heads asked for.
        """
        predictions: Dict[str, Union[torch.Tensor, list, object]] = {}
        with torch.autocast(device_type=images.device.type, enabled=False):
            if 'camera' in heads:
                head_tokens = _as_dtype(tokens, _param_dtype(self.camera_head))
                pose_enc_list = self.camera_head(head_tokens)
                predictions['pose_enc'] = pose_enc_list[-1]
                predictions['pose_enc_list'] = pose_enc_list
            for name, head, keys in (
                ('depth', self.depth_head, ('depth', 'depth_conf')),
                ('point', self.point_head, ('world_points', 'world_points_conf')),
            ):
                if name in heads:
                    dtype = _param_dtype(head)
                    # Outside the (possibly compiled) head: its embeddings are then inputs.
                    head.prepare_pos_embed(images.shape[-2:], images.device, dtype)
                    value, conf = head(
                        _as_dtype(tokens, dtype), images=images,
                        patch_start_idx=patch_start_idx,
                    )
                    predictions[keys[0]] = value
                    predictions[keys[1]] = conf
        return predictions
