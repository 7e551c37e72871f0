# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Camera head of VGGT: iterative refinement of a 9-D pose encoding per frame.

The camera token of the last aggregator layer is normalised, modulated by the current pose
estimate (adaLN: shift, scale and gate from ``SiLU -> Linear``), passed through a small
transformer trunk that attends across the frames of each sequence, and decoded to a pose update.
Encoding: ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` (camera-from-world translation,
scalar-last quaternion, field of view in radians).
"""

from typing import List, Optional

import torch
from torch import nn

from vggt4d_ros.model.heads.activations import activate_pose
from vggt4d_ros.model.layers import Block, Mlp

# Size of the 'absT_quaR_FoV' pose encoding.
POSE_ENCODING_DIM = 9


class CameraHead(nn.Module):
    """Predict a pose encoding ``[B,S,9]`` per frame from the camera tokens.

    Args:
        dim_in: token channels (2048 for the released model).
        trunk_depth: transformer blocks in the trunk (4). Shrink for tiny configs.
        pose_encoding_type: only ``'absT_quaR_FoV'`` is supported.
        num_heads: attention heads of the trunk (16). Shrink for tiny configs.
        mlp_ratio: hidden width of the trunk MLPs relative to ``dim_in``.
        init_values: LayerScale initial value (the checkpoint overrides it).
        trans_act: translation activation (``'linear'``).
        quat_act: quaternion activation (``'linear'``).
        fl_act: field-of-view activation (``'relu'`` keeps it non-negative).
    """

    def __init__(
        self,
        dim_in: int = 2048,
        trunk_depth: int = 4,
        pose_encoding_type: str = 'absT_quaR_FoV',
        num_heads: int = 16,
        mlp_ratio: float = 4,
        init_values: float = 0.01,
        trans_act: str = 'linear',
        quat_act: str = 'linear',
        fl_act: str = 'relu',
    ) -> None:
        super().__init__()
        if pose_encoding_type != 'absT_quaR_FoV':
            raise ValueError(f'unsupported camera encoding type {pose_encoding_type!r}')
        self.target_dim = POSE_ENCODING_DIM
        self.trans_act = trans_act
        self.quat_act = quat_act
        self.fl_act = fl_act
        self.trunk_depth = trunk_depth

        # Camera-trunk blocks: plain attention (no QK-norm, no RoPE), LayerNorm eps 1e-5.
        self.trunk = nn.Sequential(
            *[
                Block(dim_in, num_heads, mlp_ratio=mlp_ratio, init_values=init_values)
                for _ in range(trunk_depth)
            ]
        )
        self.token_norm = nn.LayerNorm(dim_in)
        self.trunk_norm = nn.LayerNorm(dim_in)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, self.target_dim))
        self.embed_pose = nn.Linear(self.target_dim, dim_in)
        # Index 0 is the parameter-free SiLU; the checkpoint key is 'poseLN_modulation.1'.
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim_in, 3 * dim_in))
        self.adaln_norm = nn.LayerNorm(dim_in, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim_in, hidden_features=dim_in // 2, out_features=self.target_dim)

    def forward(
        self, aggregated_tokens_list: List[Optional[torch.Tensor]], num_iterations: int = 4
    ) -> List[torch.Tensor]:
        """Refine the pose ``num_iterations`` times.

        Args:
            aggregated_tokens_list: aggregator outputs; only the last, ``[B,S,P,dim_in]``, is
                read (its token 0 is the camera token, cast to the head's parameter dtype).
            num_iterations: refinement steps.

        Returns:
            One activated pose encoding ``[B,S,9]`` per iteration; the last is the final one.
        """
        last_layer = aggregated_tokens_list[-1]
        if last_layer is None:
            raise ValueError('the camera head needs the last aggregator layer')
        camera_tokens = self.token_norm(last_layer[:, :, 0].to(self.token_norm.weight.dtype))
        return self._refine(camera_tokens, num_iterations)

    def _refine(self, camera_tokens: torch.Tensor, num_iterations: int) -> List[torch.Tensor]:
        """Iterate on normalised camera tokens ``[B,S,C]``; returns ``num_iterations`` poses."""
        batch, frames = camera_tokens.shape[:2]
        normalised = self.adaln_norm(camera_tokens)
        raw_pose: Optional[torch.Tensor] = None
        poses = []
        for _ in range(num_iterations):
            if raw_pose is None:
                condition = self.embed_pose(self.empty_pose_tokens.expand(batch, frames, -1))
            else:
                # Each step conditions on the previous estimate without backpropagating into it.
                condition = self.embed_pose(raw_pose.detach())
            shift, scale, gate = self.poseLN_modulation(condition).chunk(3, dim=-1)
            modulated = gate * (normalised * (1 + scale) + shift) + camera_tokens
            delta = self.pose_branch(self.trunk_norm(self.trunk(modulated)))
            raw_pose = delta if raw_pose is None else raw_pose + delta
            poses.append(activate_pose(raw_pose, self.trans_act, self.quat_act, self.fl_act))
        return poses
