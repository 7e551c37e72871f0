# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Metrics with known answers: ATE/RPE under Sim(3), mask J and boundary F."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vggt4d_ros.replay.metrics import boundary_f
from vggt4d_ros.replay.metrics import boundary_radius
from vggt4d_ros.replay.metrics import jaccard
from vggt4d_ros.replay.metrics import mask_metrics
from vggt4d_ros.replay.metrics import trajectory_metrics
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticScene


@pytest.fixture(scope='module')
def ground_truth():
    config = SceneConfig(num_frames=20)
    scene = SyntheticScene(config)
    poses = np.stack([scene.world_from_camera(i) for i in range(20)])
    stamps = np.array([config.stamp_ns(i) for i in range(20)])
    return stamps, poses


def _similarity(poses, scale, rotation, translation):
    """Apply world' = s R world + t to world-from-camera poses."""
    out = poses.copy()
    out[:, :3, :3] = rotation @ poses[:, :3, :3]
    out[:, :3, 3] = scale * poses[:, :3, 3] @ rotation.T + translation
    return out


def test_identical_trajectories_have_zero_error(ground_truth):
    stamps, poses = ground_truth
    result = trajectory_metrics(stamps, poses, stamps, poses)
    assert result.matched == 20
    assert result.ate_rmse < 1e-9 and result.rpe_trans_rmse < 1e-9
    assert result.rpe_rot_deg_rmse < 1e-6 and result.scale == pytest.approx(1.0)


def test_known_sim3_is_removed_by_alignment_only_with_scale(ground_truth):
    stamps, poses = ground_truth
    rotation = Rotation.from_euler('xyz', [0.3, -0.2, 1.0]).as_matrix()
    estimate = _similarity(poses, 0.3, rotation, np.array([1.0, 2.0, 3.0]))
    result = trajectory_metrics(stamps, estimate, stamps, poses)
    assert result.ate_rmse < 1e-9
    assert result.scale == pytest.approx(1 / 0.3)
    assert result.rpe_trans_rmse < 1e-9 and result.rpe_rot_deg_rmse < 1e-6
    assert result.ate_rmse_se3 > 0.1  # rigid alignment cannot undo the scale


def test_noise_gives_the_expected_ate(ground_truth):
    stamps, poses = ground_truth
    offsets = np.zeros((20, 3))
    offsets[::2, 2], offsets[1::2, 2] = 0.05, -0.05  # zero mean: alignment cannot remove it
    noisy = poses.copy()
    noisy[:, :3, 3] += offsets
    result = trajectory_metrics(stamps, noisy, stamps, poses)
    assert 0.02 < result.ate_rmse <= 0.05 + 1e-9


def test_association_by_stamp_and_too_few_poses(ground_truth):
    stamps, poses = ground_truth
    result = trajectory_metrics(stamps[::2], poses[::2], stamps, poses)
    assert result.matched == 10 and result.ate_rmse < 1e-9
    with pytest.raises(ValueError):
        trajectory_metrics(stamps[:2], poses[:2], stamps, poses)


def _square(shift=0, size=100):
    mask = np.zeros((size, size), bool)
    mask[20:60, 20 + shift:60 + shift] = True
    return mask


def test_jaccard_known_values():
    assert jaccard(_square(), _square()) == 1.0
    assert jaccard(_square(), _square(4)) == pytest.approx(36 / 44)
    assert jaccard(_square(), _square(40)) == 0.0
    empty = np.zeros((10, 10), bool)
    assert jaccard(empty, empty) == 1.0
    one = empty.copy()
    one[4, 4] = True
    assert jaccard(empty, one) == 0.0


def test_boundary_f_known_and_monotone():
    assert boundary_radius((100, 100)) == 2  # ceil(0.008 * 141.4)
    assert boundary_f(_square(), _square()) == 1.0
    assert boundary_f(_square(), _square(2)) == 1.0  # within the tolerance
    scores = [boundary_f(_square(), _square(s)) for s in (0, 3, 5, 10, 30)]
    assert all(a >= b for a, b in zip(scores, scores[1:])) and scores[-1] < 0.3
    empty = np.zeros((100, 100), bool)
    assert boundary_f(empty, empty) == 1.0
    assert boundary_f(_square(), empty) == 0.0


def test_mask_metrics_by_stamp_counts_missing():
    truth = {1: _square(), 2: _square(), 3: np.zeros((100, 100), bool)}
    predicted = {1: _square().astype(np.uint8) * 255, 3: np.zeros((100, 100), np.uint8)}
    result = mask_metrics(predicted, truth)
    assert result.stamps_ns == [1, 2, 3] and result.missing == 1
    assert result.j == [1.0, 0.0, 1.0] and result.f == [1.0, 0.0, 1.0]
    summary = result.summary()
    assert summary['j_mean'] == pytest.approx(2 / 3)
    assert summary['jf_mean'] == pytest.approx(2 / 3)
    assert summary['j_recall'] == pytest.approx(2 / 3)


def test_metric_ate_and_scale_error_of_a_too_large_estimate(ground_truth):
    from vggt4d_ros.replay.metrics import local_scale

    stamps, poses = ground_truth
    rotation = Rotation.from_euler('z', 0.4).as_matrix()
    metric = _similarity(poses, 1.0, rotation, np.array([1.0, 0.0, 0.0]))
    exact = trajectory_metrics(stamps, metric, stamps, poses)
    assert exact.ate_rmse_se3 < 1e-9 and abs(exact.scale_error) < 1e-9
    bigger = _similarity(poses, 1.05, rotation, np.zeros(3))
    result = trajectory_metrics(stamps, bigger, stamps, poses)
    assert result.scale_error == pytest.approx(0.05, abs=1e-9)
    assert result.ate_rmse_se3 > 0.01 and result.ate_rmse < 1e-9
    local = local_scale(stamps, bigger, stamps, poses, segment_s=0.5)
    assert len(local.scale) >= 3
    np.testing.assert_allclose(local.scale, 1.05, rtol=1e-9)
