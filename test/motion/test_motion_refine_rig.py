# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The refinement's reprojection test in a rig window counts only pairs at other time steps.

Two cameras at one step see the same instant: a moving object agrees with itself across them
as a static one does, so such pairs are no motion evidence (docs/method.md section 7).
"""

from __future__ import annotations

import torch

from vggt4d_ros.motion.refine import refine_masks
from vggt4d_ros.motion.refine import RefineConfig
from vggt4d_ros.motion.rig import RigLayout

HEIGHT, WIDTH, FOCAL = 48, 64, 40.0
WALL_Z, BOX_HALF, BASELINE = 6.0, 0.4, 0.3
#: The box comes towards the still rig: it covers its old pixels at the next step.
BOX_Z = (3.0, 2.5)


def _view(camera_x: float, box_z: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Depth [h,w], image [3,h,w] and box mask [h,w] of a camera at (camera_x, 0, 0)."""
    v, u = torch.meshgrid(torch.arange(HEIGHT) + 0.5, torch.arange(WIDTH) + 0.5, indexing='ij')
    ray_x, ray_y = (u - WIDTH / 2) / FOCAL, (v - HEIGHT / 2) / FOCAL
    box = ((camera_x + box_z * ray_x).abs() <= BOX_HALF) & ((box_z * ray_y).abs() <= BOX_HALF)
    wall_x, wall_y = camera_x + WALL_Z * ray_x, WALL_Z * ray_y
    wall_rgb = torch.stack([0.5 + 0.3 * torch.sin(2 * wall_x), 0.5 + 0.3 * torch.cos(wall_y),
                            0.4 + 0.2 * torch.sin(wall_x + wall_y)])
    box_rgb = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1).expand(3, HEIGHT, WIDTH)
    return torch.where(box, box_z, WALL_Z), torch.where(box, box_rgb, wall_rgb), box


def _rig_window():
    """A 2-camera x 2-step window (step-major) and its coarse masks.

    Camera 1's coarse mask misses the box at step 0 (its cue did not fire there), so the
    only correspondence of camera 0's box at step 0 that is not on a coarse-dynamic pixel
    is camera 1 at the same step, where the box agrees with itself.
    """
    layout = RigLayout(num_views=2, num_steps=2)
    depth, images, boxes, poses = [], [], [], []
    for step in range(layout.num_steps):
        for view in range(layout.num_views):
            d, rgb, box = _view(BASELINE * view, BOX_Z[step])
            pose = torch.eye(4)
            pose[0, 3] = BASELINE * view
            depth.append(d)
            images.append(rgb)
            boxes.append(box)
            poses.append(pose)
    boxes = torch.stack(boxes)
    coarse = boxes.clone()
    coarse[layout.frame(0, 1)] = False
    intrinsics = torch.tensor([[FOCAL, 0, WIDTH / 2], [0, FOCAL, HEIGHT / 2], [0, 0, 1.0]])
    return (layout, torch.stack(images), torch.stack(depth), coarse, torch.stack(poses),
            intrinsics.expand(4, 3, 3).clone(), boxes)


def test_temporal_pairs_are_other_steps_and_other_frames_for_one_camera():
    pairs = RigLayout(num_views=2, num_steps=3).temporal_pairs()
    step = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.equal(pairs, step.view(-1, 1) != step.view(1, -1))
    assert torch.equal(RigLayout.single(5).temporal_pairs(), ~torch.eye(5, dtype=torch.bool))


def test_same_step_camera_pairs_would_hide_the_moving_box_and_are_excluded():
    layout, images, depth, coarse, poses, intrinsics, boxes = _rig_window()
    frame = layout.frame(0, 0)
    every = refine_masks(images, depth, coarse, poses, intrinsics, RefineConfig())
    temporal = refine_masks(images, depth, coarse, poses, intrinsics, RefineConfig(),
                            pairs=layout.temporal_pairs())
    box = boxes[frame]
    # Counting the other camera at the same instant, the box looks consistent (static) ...
    assert every.raw_masks[frame][box].float().mean() < 0.5
    # ... with other steps only, no frame keeps it (it covers its old pixels): dynamic.
    assert temporal.raw_masks[frame][box].all()
    assert not temporal.raw_masks[frame][~box].any()


def test_one_camera_pairs_equal_the_release_bit_for_bit():
    layout, images, depth, coarse, poses, intrinsics, _ = _rig_window()
    for mode in ('cluster', 'gradient'):
        config = RefineConfig(mode=mode)
        release = refine_masks(images, depth, coarse, poses, intrinsics, config)
        single = refine_masks(images, depth, coarse, poses, intrinsics, config,
                              pairs=RigLayout.single(4).temporal_pairs())
        assert torch.equal(release.raw_masks, single.raw_masks)
        assert torch.equal(release.scores, single.scores)
