# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Metres per VGGT unit from a rig's known baselines against noisy estimated camera centres."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vggt4d_ros.geometry.rotation import random_rotation
from vggt4d_ros.geometry.rotation import rotation_from_axis_angle
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.motion.rig import RigLayout
from vggt4d_ros.runtime.scale.rig_baseline import rig_baseline_scale
from vggt4d_ros.runtime.scale.rig_baseline import rig_scale_from_window
from vggt4d_ros.runtime.scale.rig_baseline import RigBaselineConfig


def _pose(rotation: np.ndarray, translation) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = translation
    return pose


def _rig() -> np.ndarray:
    """base_from_camera [3,4,4]: a 12 cm stereo pair looking forward and a side camera."""
    # base_link: x forward, y left, z up; camera: z forward, x right, y down.
    forward = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    left = rotation_from_axis_angle(np.array([0.0, 0.0, np.pi / 2])) @ forward
    return np.stack([_pose(forward, [0.20, 0.06, 0.50]),
                     _pose(forward, [0.20, -0.06, 0.50]),
                     _pose(left, [0.05, 0.15, 0.45])])


def _window(rig: np.ndarray, steps: int, metres_per_unit: float, rng: np.random.Generator,
            position_noise: float, angle_noise: float) -> np.ndarray:
    """VGGT-like world_from_camera [T*N,4,4]: gauge of frame 0, units = metres / scale."""
    truth = []
    for step in range(steps):
        base = _pose(rotation_from_axis_angle(np.array([0.0, 0.0, 0.1 * step])),
                     [0.3 * step, 0.05 * step ** 2, 0.0])
        truth.extend(base @ cam for cam in rig)
    truth = np.stack(truth)
    gauge = np.linalg.inv(truth[0])
    estimated = gauge @ truth
    estimated[:, :3, 3] /= metres_per_unit
    baseline_units = 0.12 / metres_per_unit
    estimated[:, :3, 3] += rng.normal(0.0, position_noise * baseline_units, (len(truth), 3))
    for pose in estimated:
        pose[:3, :3] = pose[:3, :3] @ random_rotation(rng, angle_noise)
    return estimated


@pytest.mark.parametrize('seed', range(5))
def test_noisy_estimates_give_scale_within_three_percent(seed):
    rng = np.random.default_rng(seed)
    rig, truth = _rig(), 3.7
    # 3 % of the stereo baseline per coordinate and 1 degree of rotation noise per camera.
    poses = _window(rig, steps=4, metres_per_unit=truth, rng=rng, position_noise=0.03,
                    angle_noise=np.radians(1.0))
    poses[5, :3, 3] += 0.5  # one gross pose failure
    estimate = rig_baseline_scale(poses, rig)
    assert estimate.ok and estimate.reason == ''
    assert abs(estimate.metres_per_unit - truth) / truth < 0.03
    assert 0 < estimate.spread < 0.03
    assert 6 <= estimate.samples <= 12  # the failed camera's pairs are rejected by direction


def test_exact_estimates_give_exact_scale():
    rig = _rig()
    poses = _window(rig, 3, 0.25, np.random.default_rng(0), 0.0, 0.0)
    estimate = rig_baseline_scale(poses, rig)
    assert estimate.metres_per_unit == pytest.approx(0.25, rel=1e-9)
    assert estimate.samples == 9 and estimate.spread == pytest.approx(0.0, abs=1e-9)


def test_failures_are_reasons_not_numbers():
    rig = _rig()
    poses = _window(rig, 2, 1.0, np.random.default_rng(1), 0.0, 0.0)
    assert rig_baseline_scale(poses[::3], rig[:1]).reason == 'single_camera'
    short = RigBaselineConfig(min_baseline_m=1.0)
    assert rig_baseline_scale(poses, rig, short).reason == 'short_baseline'
    collapsed = poses.copy()
    collapsed[:, :3, 3] = 0.0
    assert rig_baseline_scale(collapsed, rig).reason == 'degenerate_estimate'
    mirrored = poses.copy()
    mirrored[:, :3, 3] *= -1.0  # every camera on the wrong side of its partner
    assert rig_baseline_scale(mirrored, rig).reason == 'direction_mismatch'
    assert rig_baseline_scale(poses[:3], rig, RigBaselineConfig(min_pairs=4)).reason == (
        'too_few_pairs')
    with pytest.raises(ValueError, match='whole steps'):
        rig_baseline_scale(poses[:4], rig)


def test_from_window_result_uses_the_rig_layout():
    rig = _rig()
    poses = _window(rig, 2, 2.0, np.random.default_rng(2), 0.0, 0.0)
    extrinsics = torch.from_numpy(np.linalg.inv(poses)[:, :3, :]).float()
    count, height, width = 6, 28, 28
    from vggt4d_ros.geometry.image_transform import ResizeCrop
    transform = ResizeCrop(camera_hw=(height, width), resized_hw=(height, width),
                           network_hw=(height, width), offset_yx=(0, 0))
    result = WindowResult(
        stamps_ns=list(range(count)), images=torch.zeros(count, 3, height, width),
        depth=torch.ones(count, height, width), depth_conf=torch.ones(count, height, width),
        intrinsics=torch.eye(3).repeat(count, 1, 1), extrinsics=extrinsics,
        saliency=torch.zeros(count, 2, 2),
        coarse_masks=torch.zeros(count, height, width, dtype=torch.bool),
        refined_masks=torch.zeros(count, height, width, dtype=torch.bool),
        transform=transform, layout=RigLayout(num_views=3, num_steps=2))
    assert result.view_index == [0, 1, 2, 0, 1, 2] and result.step_index == [0, 0, 0, 1, 1, 1]
    assert rig_scale_from_window(result, rig).metres_per_unit == pytest.approx(2.0, rel=1e-5)
    with pytest.raises(ValueError, match='3 views'):
        rig_scale_from_window(result, rig[:2])
