# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Track head of VGGT: DPT features at half resolution + iterative point tracker."""

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from vggt4d_ros.model.heads.dpt_head import DPTHead
from vggt4d_ros.model.heads.tracker import TrackerPredictor

TrackOutput = Tuple[List[torch.Tensor], torch.Tensor, Optional[torch.Tensor]]


class TrackHead(nn.Module):
    """Track query points of frame 0 through every frame of the window.

    Args:
        dim_in: token channels (2048 for the released model).
        patch_size: ViT patch size in pixels.
        features: feature-extractor / tracker feature channels (128). Shrink for tiny configs.
        iters: default refinement iterations (4).
        predict_conf: also predict per-point confidence.
        stride: tracker stride (2, matching the extractor's ``down_ratio``).
        corr_levels: correlation pyramid levels (7). Images must be large enough for
            ``corr_levels - 1`` halvings of the ``H/2 x W/2`` feature maps.
        corr_radius: correlation window radius (4).
        hidden_size: update-transformer width (384). Shrink for tiny configs.
        pos_embed: UV positional embedding in the feature extractor. ``False`` for the released
            VGGT-1B checkpoints; ``True`` for ``model_tracker_fixed_e20.pt`` (VGGT_tracker_fixed).
        out_channels: extractor projection widths (256, 512, 1024, 1024). Shrink for tiny
            configs.
        intermediate_layer_idx: aggregator layers read by the extractor (4, 11, 17, 23).
        tracker_depth: update-transformer layers (6). Shrink for tiny configs.
        num_heads: update-transformer heads (8).
        num_virtual_tracks: virtual tracks of the update transformer (64).
    """

    def __init__(
        self,
        dim_in: int,
        patch_size: int = 14,
        features: int = 128,
        iters: int = 4,
        predict_conf: bool = True,
        stride: int = 2,
        corr_levels: int = 7,
        corr_radius: int = 4,
        hidden_size: int = 384,
        pos_embed: bool = False,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        intermediate_layer_idx: Sequence[int] = (4, 11, 17, 23),
        tracker_depth: int = 6,
        num_heads: int = 8,
        num_virtual_tracks: int = 64,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.iters = iters
        self.feature_extractor = DPTHead(
            dim_in=dim_in,
            patch_size=patch_size,
            features=features,
            out_channels=out_channels,
            intermediate_layer_idx=intermediate_layer_idx,
            feature_only=True,
            down_ratio=2,
            pos_embed=pos_embed,
        )
        self.tracker = TrackerPredictor(
            latent_dim=features,
            predict_conf=predict_conf,
            stride=stride,
            corr_levels=corr_levels,
            corr_radius=corr_radius,
            hidden_size=hidden_size,
            depth=tracker_depth,
            num_heads=num_heads,
            num_virtual_tracks=num_virtual_tracks,
        )

    def forward(
        self,
        aggregated_tokens_list: List[Optional[torch.Tensor]],
        images: torch.Tensor,
        patch_start_idx: int,
        query_points: Optional[torch.Tensor] = None,
        iters: Optional[int] = None,
        frames_chunk_size: Optional[int] = 8,
    ) -> TrackOutput:
        """Track ``query_points``.

        Args:
            aggregated_tokens_list: aggregator outputs ``[B,S,P,dim_in]`` (entries not used by
                the extractor may be ``None``).
            images: ``[B,S,3,H,W]``; only its shape is used.
            patch_start_idx: index of the first patch token.
            query_points: ``[B,N,2]`` pixel ``(x, y)`` in frame 0 (network resolution).
            iters: refinement iterations (default: ``self.iters``).
            frames_chunk_size: frames per feature-extractor chunk.

        Returns:
            ``coord_preds``: per iteration ``[B,S,N,2]`` pixels (the last is final);
            ``vis_scores`` ``[B,S,N]`` in (0, 1); ``conf_scores`` ``[B,S,N]`` or ``None``.
        """
        if query_points is None:
            raise ValueError('the track head needs query_points [B,N,2]')
        feature_maps = self.feature_extractor(
            aggregated_tokens_list, images, patch_start_idx, frames_chunk_size=frames_chunk_size
        )
        return self.tracker(
            query_points=query_points,
            fmaps=feature_maps,
            iters=self.iters if iters is None else iters,
        )
