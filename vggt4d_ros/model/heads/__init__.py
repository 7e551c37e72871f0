# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""VGGT prediction heads, checkpoint-exact with facebookresearch/vggt (commit 44b3afb).

Constructor arguments follow the upstream names and defaults; the extra size arguments let a
tiny configuration shrink the heads while keeping the same module tree:

* ``CameraHead(dim_in, trunk_depth=4, num_heads=16, mlp_ratio=4, ...)``
* ``DPTHead(dim_in, output_dim, activation, conf_activation, features=256,
  out_channels=(256, 512, 1024, 1024), intermediate_layer_idx=(4, 11, 17, 23), pos_embed=True,
  feature_only=False, down_ratio=1)``
* ``TrackHead(dim_in, patch_size=14, features=128, iters=4, corr_levels=7, corr_radius=4,
  hidden_size=384, pos_embed=False, out_channels=(256, 512, 1024, 1024),
  intermediate_layer_idx=(4, 11, 17, 23), tracker_depth=6, num_heads=8, num_virtual_tracks=64)``;
  ``pos_embed=True`` for the ``VGGT_tracker_fixed`` checkpoint.

Calls (as in upstream ``VGGT.forward``):

* ``CameraHead(tokens_list, num_iterations=4) -> list of [B,S,9]``
* ``DPTHead(tokens_list, images[B,S,3,H,W], patch_start_idx, frames_chunk_size=8)
  -> (values[B,S,H,W,C-1], conf[B,S,H,W])``
* ``TrackHead(tokens_list, images, patch_start_idx, query_points[B,N,2], iters=None)
  -> (list of [B,S,N,2], vis[B,S,N], conf[B,S,N])``
"""

from vggt4d_ros.model.heads.camera_head import CameraHead
from vggt4d_ros.model.heads.dpt_head import DPTHead
from vggt4d_ros.model.heads.track_head import TrackHead

__all__ = ['CameraHead', 'DPTHead', 'TrackHead']
