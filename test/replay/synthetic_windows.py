# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The exact WindowResult of rendered synthetic views (test helper of the stand-in backends).

Poses as VGGT expresses them: in the window's frame-0 camera with an arbitrary scale; depth in
the same units; the ground-truth dynamic masks; network resolution = camera resolution.
"""

from __future__ import annotations

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import ResizeCrop
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.replay.synthetic import SceneConfig


def exact_window(views: list, stamps_ns: list[int], config: SceneConfig, scale: float,
                 layout=None) -> WindowResult:
    """Build the WindowResult of S rendered views (``SyntheticScene.render``) at ``scale``.

    Args:
        views: S rendered frames (rgb [H,W,3] uint8, depth [H,W], dynamic_mask [H,W],
            world_from_camera [4,4]).
        stamps_ns: the S stamps.
        config: the scene (camera intrinsics, size).
        scale: map units per metre of this window (poses and depth).
        layout: the window's RigLayout (None: one camera).

    """
    hw = (config.height, config.width)
    plan = ResizeCrop(hw, hw, hw, (0, 0), 'crop')
    world_from_first = views[0].world_from_camera
    extrinsics = []
    for view in views:
        first_from_camera = np.linalg.inv(world_from_first) @ view.world_from_camera
        first_from_camera[:3, 3] *= scale
        extrinsics.append(np.linalg.inv(first_from_camera)[:3])
    count, (height, width) = len(views), plan.network_hw
    masks = torch.from_numpy(np.stack([v.dynamic_mask > 0 for v in views]))
    return WindowResult(
        stamps_ns=[int(s) for s in stamps_ns],
        images=torch.from_numpy(np.stack([v.rgb for v in views])).permute(0, 3, 1, 2) / 255,
        depth=torch.from_numpy(np.stack([v.depth for v in views]) * scale),
        depth_conf=torch.full((count, height, width), 5.0),
        intrinsics=torch.from_numpy(np.stack([config.intrinsics()] * count)).float(),
        extrinsics=torch.from_numpy(np.stack(extrinsics)).float(),
        saliency=torch.zeros(count, height // 14, width // 14),
        coarse_masks=masks, refined_masks=masks, transform=plan, layout=layout)
