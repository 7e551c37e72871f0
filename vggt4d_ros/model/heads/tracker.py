# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Iterative point tracker of VGGT's track head (CoTracker / VGGSfM style).

Given dense per-frame features ``[B,S,C,h,w]`` and query points in frame 0, the tracker starts
every frame's estimate at the query position and refines it ``iters`` times: it samples local
correlation windows from a multi-scale correlation pyramid, embeds them together with the
displacement and the track features, runs the update transformer, and applies the predicted
coordinate and feature updates. Frame 0 stays pinned to the query.

Coordinates are ``(x, y)`` pixels with the pixel-centre-at-integer convention of
``grid_sample(align_corners=True)``. They are kept in float32 (float64 for float64 features)
whatever the compute dtype, and bilinear sampling runs in that precision, so bf16 features do not
quantise sub-pixel positions.
"""

import math
from typing import List, Optional, Tuple

import torch
from torch import nn
import torch.nn.functional as F

from vggt4d_ros.model.heads.embeddings import flow_embedding, sincos_embedding_1d
from vggt4d_ros.model.heads.update_former import EfficientUpdateFormer
from vggt4d_ros.model.layers import Mlp

# Base of the sin/cos table of query positions in feature-map pixels.
_POSITION_EMBED_BASE = 10000.0

TrackerOutput = Tuple[List[torch.Tensor], torch.Tensor, Optional[torch.Tensor]]


def _pixels_to_grid(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates ``[..., 2]`` to ``grid_sample``'s ``[-1, 1]`` (align_corners=True)."""
    x = xy[..., 0] * (2.0 / max(width - 1, 1)) - 1
    y = xy[..., 1] * (2.0 / max(height - 1, 1)) - 1
    return torch.stack((x, y), dim=-1)


def sample_bilinear(maps: torch.Tensor, xy: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """Bilinearly sample ``maps[B,C,H,W]`` at pixel positions ``xy[B,Ho,Wo,2]``.

    Runs in the precision of ``xy`` (float32 or float64): ``maps`` is upcast if needed.

    Returns:
        ``[B,C,Ho,Wo]`` in the dtype of ``xy``.
    """
    grid = _pixels_to_grid(xy, maps.shape[-2], maps.shape[-1])
    return F.grid_sample(
        maps.to(xy.dtype), grid, mode='bilinear', padding_mode=padding_mode, align_corners=True
    )


def sample_points(maps: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Sample ``maps[B,C,H,W]`` at ``xy[B,R,2]`` (border padding); ``[B,R,C]``, dtype of ``xy``."""
    return sample_bilinear(maps, xy.unsqueeze(2), 'border').squeeze(3).transpose(1, 2)


def coordinate_dtype(feature_dtype: torch.dtype) -> torch.dtype:
    """Coordinates use float32, or float64 when the features do (never bf16/fp16)."""
    return torch.promote_types(feature_dtype, torch.float32)


class CorrelationPyramid:
    """Average-pooled feature pyramid; correlation windows are sampled level by level.

    Each level's full correlation volume ``[B,S,N,h_l*w_l]`` is built, sampled on a
    ``(2r+1)^2`` window around the (scaled) track position, and freed before the next level.
    """

    def __init__(self, fmaps: torch.Tensor, num_levels: int, radius: int) -> None:
        """Build the pyramid of ``fmaps[B,S,C,h,w]`` (each level halves ``h`` and ``w``)."""
        self.radius = radius
        self.levels = [fmaps]
        for _ in range(num_levels - 1):
            previous = self.levels[-1]
            pooled = F.avg_pool2d(previous.flatten(0, 1), kernel_size=2, stride=2)
            self.levels.append(pooled.unflatten(0, previous.shape[:2]))
        offsets = torch.arange(
            -radius, radius + 1, device=fmaps.device, dtype=coordinate_dtype(fmaps.dtype)
        )
        rows, cols = torch.meshgrid(offsets, offsets, indexing='ij')
        # Window cell (i, j) looks at (x + offsets[i], y + offsets[j]): the trained layout has
        # the x offset along the window's rows.
        self.window = torch.stack((rows, cols), dim=-1)

    def sample(self, targets: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Correlate ``targets[B,S,N,C]`` around ``coords[B,S,N,2]`` (level-0 pixels).

        Returns:
            ``[B,S,N,levels*(2r+1)^2]`` in the dtype of ``targets``.
        """
        batch, frames, points, channels = targets.shape
        side = 2 * self.radius + 1
        centres = coords.reshape(batch * frames * points, 1, 1, 2)
        windows = []
        for level, fmaps in enumerate(self.levels):
            height, width = fmaps.shape[-2:]
            volume = torch.matmul(targets, fmaps.reshape(batch, frames, channels, height * width))
            volume = volume / math.sqrt(channels)
            positions = centres / (2**level) + self.window.view(1, side, side, 2)
            sampled = sample_bilinear(
                volume.reshape(batch * frames * points, 1, height, width), positions, 'zeros'
            )
            windows.append(sampled.view(batch, frames, points, side * side).to(targets.dtype))
        return torch.cat(windows, dim=-1)


class TrackerPredictor(nn.Module):
    """Track refinement network (checkpoint prefix ``track_head.tracker``).

    Args:
        stride: feature-map stride relative to the coordinates given (2 in VGGT).
        corr_levels: correlation pyramid levels (7 in VGGT). Feature maps must survive
            ``corr_levels - 1`` halvings.
        corr_radius: correlation window radius (4).
        latent_dim: feature channels (128).
        hidden_size: update-transformer width (384). Shrink for tiny configs.
        use_spaceatt: enable cross-track attention through virtual tracks.
        depth: update-transformer layers (6). Shrink for tiny configs.
        max_scale: displacement normaliser in pixels (518).
        predict_conf: also predict a per-point confidence.
        num_heads: update-transformer heads (8).
        num_virtual_tracks: learned virtual tracks (64). Shrink for tiny configs.
    """

    def __init__(
        self,
        stride: int = 1,
        corr_levels: int = 5,
        corr_radius: int = 4,
        latent_dim: int = 128,
        hidden_size: int = 384,
        use_spaceatt: bool = True,
        depth: int = 6,
        max_scale: int = 518,
        predict_conf: bool = True,
        num_heads: int = 8,
        num_virtual_tracks: int = 64,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.latent_dim = latent_dim
        self.corr_levels = corr_levels
        self.corr_radius = corr_radius
        self.max_scale = max_scale
        self.predict_conf = predict_conf
        self.flows_emb_dim = latent_dim // 2
        # Token = flow embedding (2 * flows_emb_dim + 4) + correlation + track feature channels.
        self.transformer_dim = 3 * latent_dim + 4
        self.corr_mlp = Mlp(
            corr_levels * (2 * corr_radius + 1) ** 2,
            hidden_features=hidden_size,
            out_features=latent_dim,
        )
        # Token 0 marks the query frame, token 1 every other frame.
        self.query_ref_token = nn.Parameter(torch.randn(1, 2, self.transformer_dim))
        self.updateformer = EfficientUpdateFormer(
            space_depth=depth if use_spaceatt else 0,
            time_depth=depth,
            input_dim=self.transformer_dim,
            hidden_size=hidden_size,
            num_heads=num_heads,
            output_dim=latent_dim + 2,
            add_space_attn=use_spaceatt,
            num_virtual_tracks=num_virtual_tracks,
        )
        self.fmap_norm = nn.LayerNorm(latent_dim)
        self.ffeat_norm = nn.GroupNorm(1, latent_dim)
        self.ffeat_updater = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.GELU())
        self.vis_predictor = nn.Sequential(nn.Linear(latent_dim, 1))
        if predict_conf:
            self.conf_predictor = nn.Sequential(nn.Linear(latent_dim, 1))

    def forward(
        self,
        query_points: torch.Tensor,
        fmaps: torch.Tensor,
        iters: int = 6,
        down_ratio: int = 1,
        apply_sigmoid: bool = True,
    ) -> TrackerOutput:
        """Track ``query_points`` (given in frame 0) through all frames.

        Args:
            query_points: ``[B,N,2]`` pixel ``(x, y)`` in frame 0, in units of
                ``stride * down_ratio`` feature-map pixels (image pixels in VGGT).
            fmaps: ``[B,S,C,h,w]`` per-frame features.
            iters: refinement iterations.
            down_ratio: extra divisor between the query units and the feature maps.
            apply_sigmoid: return probabilities rather than logits.

        Returns:
            ``coord_preds``: one ``[B,S,N,2]`` estimate per iteration (query units; float32, or
            float64 for float64 features);
            ``vis``: ``[B,S,N]``; ``conf``: ``[B,S,N]`` or ``None``.
        """
        batch, num_points = query_points.shape[:2]
        frames, _, height, width = fmaps.shape[1:]
        fmaps = self.fmap_norm(fmaps.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        dtype = fmaps.dtype
        queries = query_points.to(coordinate_dtype(dtype))
        if down_ratio > 1:
            queries = queries / float(down_ratio)
        queries = queries / float(self.stride)
        output_scale = self.stride * down_ratio if down_ratio > 1 else self.stride

        track_feats = sample_points(fmaps[:, 0], queries).to(dtype)
        track_feats = track_feats.unsqueeze(1).expand(batch, frames, num_points, -1)
        pyramid = CorrelationPyramid(fmaps, self.corr_levels, self.corr_radius)
        position = self._query_position_embedding(queries, height, width).to(dtype)
        frame_tokens = torch.cat(
            [self.query_ref_token[:, :1], self.query_ref_token[:, 1:].expand(-1, frames - 1, -1)],
            dim=1,
        ).to(dtype)

        coords = queries.unsqueeze(1).expand(batch, frames, num_points, 2)
        coord_preds = []
        for _ in range(iters):
            tokens = self._update_tokens(pyramid, track_feats, coords) + position
            tokens = tokens + frame_tokens
            update = self.updateformer(tokens.view(batch, num_points, frames, -1))
            delta_xy, delta_feats = update[..., :2], update[..., 2:]
            track_feats = self._update_features(track_feats, delta_feats)
            coords = coords + delta_xy.to(coords.dtype).transpose(1, 2)
            # Frame 0 is the query frame: its position is given, not estimated.
            coords = torch.cat([queries.unsqueeze(1), coords[:, 1:]], dim=1)
            coord_preds.append(coords * output_scale)
        return (coord_preds,) + self._predict_scores(track_feats, apply_sigmoid)

    def _update_tokens(
        self, pyramid: CorrelationPyramid, track_feats: torch.Tensor, coords: torch.Tensor
    ) -> torch.Tensor:
        """Build the transformer input ``[B*N,S,D]`` (before position / frame tokens)."""
        batch, frames, num_points, channels = track_feats.shape
        correlation = pyramid.sample(track_feats, coords)
        correlation = self.corr_mlp(
            correlation.transpose(1, 2).reshape(batch * num_points, frames, -1)
        )
        flows = (coords - coords[:, :1]).transpose(1, 2).reshape(batch * num_points, frames, 2)
        flows_normalised = flows / self.max_scale
        flow_features = torch.cat(
            [flow_embedding(flows, self.flows_emb_dim), flows_normalised, flows_normalised], dim=-1
        )
        features = track_feats.transpose(1, 2).reshape(batch * num_points, frames, channels)
        return torch.cat([flow_features.to(correlation.dtype), correlation, features], dim=-1)

    def _update_features(self, track_feats: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Apply the feature update ``delta[B,N,S,C]`` to ``track_feats[B,S,N,C]``."""
        batch, frames, num_points, channels = track_feats.shape
        flat = track_feats.transpose(1, 2).reshape(-1, channels)
        flat = self.ffeat_updater(self.ffeat_norm(delta.reshape(-1, channels))) + flat
        return flat.view(batch, num_points, frames, channels).transpose(1, 2)

    def _predict_scores(
        self, track_feats: torch.Tensor, apply_sigmoid: bool
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Visibility and confidence ``[B,S,N]`` from the final track features."""
        features = track_feats.reshape(-1, self.latent_dim)
        shape = track_feats.shape[:3]
        visibility = self.vis_predictor(features).view(shape)
        confidence = self.conf_predictor(features).view(shape) if self.predict_conf else None
        if apply_sigmoid:
            visibility = torch.sigmoid(visibility)
            confidence = torch.sigmoid(confidence) if confidence is not None else None
        return visibility, confidence

    def _query_position_embedding(
        self, queries: torch.Tensor, height: int, width: int
    ) -> torch.Tensor:
        """Sin/cos embedding of the query positions, bilinearly sampled; ``[B*N,1,D]``.

        The trained table holds ``[emb(x) | emb(y)]`` at integer feature-map cells. Bilinear
        sampling of that 2D table equals separate linear interpolation of the x part along x
        and the y part along y, so two 1D tables are sampled instead of a ``[D,h,w]`` table.
        """
        half = self.transformer_dim // 2
        device = queries.device
        parts = []
        for axis, size in ((0, width), (1, height)):
            cells = torch.arange(size, device=device, dtype=torch.float32)
            table = sincos_embedding_1d(cells, half, _POSITION_EMBED_BASE)  # [size, half] fp32
            table = table.t().reshape(1, half, 1, size)
            xy = torch.stack((queries[..., axis], torch.zeros_like(queries[..., axis])), dim=-1)
            sampled = sample_bilinear(table, xy.reshape(1, -1, 1, 2), 'border')  # [1,half,BN,1]
            parts.append(sampled[0, :, :, 0].t())
        return torch.cat(parts, dim=-1).unsqueeze(1)
