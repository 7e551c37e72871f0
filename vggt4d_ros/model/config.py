# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Configuration of the VGGT network (backbone and heads).

``VGGTConfig.full()`` reproduces the released checkpoints (facebook/VGGT-1B,
VGGT-1B-Commercial, VGGT_tracker_fixed): 1797 tensors, 1,256,537,516 parameters.
``VGGTConfig.tiny()`` keeps the same module tree (same key structure, fewer block indices,
narrower layers) for fast CPU tests.
"""

from dataclasses import dataclass, field
from typing import Tuple


@dataclass(frozen=True)
class VGGTConfig:
    """Sizes of every part of VGGT.

    Attributes:
        img_size: training image size; fixes DINOv2's positional-embedding grid
            (``img_size / patch_size`` squared).
        patch_size: patch side in pixels.
        embed_dim: token width ``C`` of DINOv2 and the aggregator.
        depth: number of frame blocks (= number of global blocks).
        num_heads: attention heads in the aggregator blocks.
        mlp_ratio: MLP hidden width / ``C``.
        num_register_tokens: register tokens (DINOv2 and aggregator).
        init_values: LayerScale init of the aggregator blocks (real values come from weights).
        qk_norm: LayerNorm on per-head q and k in the aggregator blocks.
        rope_freq: base frequency of the 2D RoPE.
        dino_depth: DINOv2 blocks.
        dino_num_heads: DINOv2 attention heads.
        dino_init_values: LayerScale init of DINOv2 blocks.
        intermediate_layer_idx: aggregator outputs consumed by the DPT heads; the camera head
            uses the last block's output, which is always kept too.
        camera_trunk_depth: transformer blocks of the camera head trunk (dim ``2C``).
        camera_num_heads: heads of the camera trunk blocks.
        camera_mlp_ratio: MLP ratio of the camera trunk blocks.
        camera_init_values: LayerScale init of the camera trunk blocks.
        dpt_features: DPT fusion width of the depth and point heads.
        dpt_out_channels: DPT per-layer projection widths.
        track_features: DPT feature width of the track head.
        track_iters: tracker refinement iterations.
        track_stride: tracker feature stride.
        track_corr_levels: correlation pyramid levels.
        track_corr_radius: correlation radius.
        track_hidden_size: tracker transformer width.
        track_pos_embed: UV positional embedding in the track feature extractor: False for
            VGGT-1B, True for ``model_tracker_fixed_e20.pt`` (no parameters either way).
        track_out_channels: DPT projection widths of the track feature extractor.
        track_tracker_depth: layers of the tracker's update transformer.
        track_num_heads: heads of the tracker's update transformer.
        track_num_virtual_tracks: virtual tracks of the update transformer.
    """

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    init_values: float = 0.01
    qk_norm: bool = True
    rope_freq: float = 100.0
    dino_depth: int = 24
    dino_num_heads: int = 16
    dino_init_values: float = 1.0
    intermediate_layer_idx: Tuple[int, ...] = (4, 11, 17, 23)
    camera_trunk_depth: int = 4
    camera_num_heads: int = 16
    camera_mlp_ratio: float = 4.0
    camera_init_values: float = 0.01
    dpt_features: int = 256
    dpt_out_channels: Tuple[int, ...] = field(default=(256, 512, 1024, 1024))
    track_features: int = 128
    track_iters: int = 4
    track_stride: int = 2
    track_corr_levels: int = 7
    track_corr_radius: int = 4
    track_hidden_size: int = 384
    track_pos_embed: bool = False
    track_out_channels: Tuple[int, ...] = field(default=(256, 512, 1024, 1024))
    track_tracker_depth: int = 6
    track_num_heads: int = 8
    track_num_virtual_tracks: int = 64

    @property
    def dim_in(self) -> int:
        """Width of the aggregated tokens seen by the heads (frame | global): ``2C``."""
        return 2 * self.embed_dim

    @property
    def patch_start_idx(self) -> int:
        """Index of the first patch token in a frame (after camera and registers)."""
        return 1 + self.num_register_tokens

    @property
    def kept_layers(self) -> Tuple[int, ...]:
        """Aggregator block indices whose outputs are kept for the heads."""
        return tuple(sorted(set(self.intermediate_layer_idx) | {self.depth - 1}))

    @classmethod
    def full(cls) -> 'VGGTConfig':
        """Return the checkpoint-exact VGGT-1B configuration."""
        return cls()

    @classmethod
    def tiny(cls) -> 'VGGTConfig':
        """Return the same architecture at tiny sizes: runs on CPU in milliseconds (tests).

        Inputs must still have sides that are multiples of 14 (e.g. 56x70).
        """
        return cls(
            img_size=126,
            embed_dim=64,
            depth=4,
            num_heads=4,
            dino_depth=2,
            dino_num_heads=4,
            intermediate_layer_idx=(0, 1, 2, 3),
            camera_trunk_depth=1,
            camera_num_heads=4,
            dpt_features=16,
            dpt_out_channels=(8, 16, 32, 32),
            track_features=8,
            track_iters=2,
            track_corr_levels=2,
            track_corr_radius=2,
            track_hidden_size=32,
            track_out_channels=(8, 16, 32, 32),
            track_tracker_depth=1,
            track_num_heads=2,
            track_num_virtual_tracks=4,
        )
