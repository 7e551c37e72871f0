# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Sim(3) algebra, Umeyama and robust alignment against known transforms."""

import numpy as np
import pytest

from vggt4d_ros.geometry.rotation import quaternion_xyzw_from_rotation
from vggt4d_ros.geometry.rotation import random_rotation
from vggt4d_ros.geometry.rotation import rotation_from_axis_angle
from vggt4d_ros.geometry.rotation import rotation_from_quaternion_xyzw
from vggt4d_ros.geometry.rotation import slerp_xyzw
from vggt4d_ros.geometry.sim3 import robust_umeyama
from vggt4d_ros.geometry.sim3 import Sim3
from vggt4d_ros.geometry.sim3 import umeyama


def _random_sim3(rng: np.random.Generator) -> Sim3:
    return Sim3(rng.uniform(0.2, 5.0), random_rotation(rng), rng.normal(size=3) * 3)


def test_compose_inverse_apply_matrix_agree():
    rng = np.random.default_rng(0)
    a, b = _random_sim3(rng), _random_sim3(rng)
    pts = rng.normal(size=(50, 3))
    np.testing.assert_allclose((a @ b).apply(pts), a.apply(b.apply(pts)), atol=1e-10)
    np.testing.assert_allclose(a.inverse().apply(a.apply(pts)), pts, atol=1e-10)
    homog = np.c_[pts, np.ones(len(pts))] @ (a @ b).as_matrix().T
    np.testing.assert_allclose(homog[:, :3], a.apply(b.apply(pts)), atol=1e-10)
    back = Sim3.from_matrix(a.as_matrix())
    assert back.scale == pytest.approx(a.scale)
    np.testing.assert_allclose(back.rotation, a.rotation, atol=1e-12)
    assert a.apply(pts.astype(np.float32)).dtype == np.float32


def test_transform_poses_moves_camera_like_points():
    rng = np.random.default_rng(1)
    sim = _random_sim3(rng)
    pose = np.eye(4)
    pose[:3, :3] = random_rotation(rng)
    pose[:3, 3] = rng.normal(size=3)
    moved = sim.transform_poses(pose)
    # The camera centre moves like a point, the rotation stays orthonormal.
    np.testing.assert_allclose(moved[:3, 3], sim.apply(pose[:3, 3]), atol=1e-12)
    np.testing.assert_allclose(moved[:3, :3] @ moved[:3, :3].T, np.eye(3), atol=1e-12)
    # A point at depth d in the camera lands where the Sim3 puts the old world point.
    p_cam = np.array([0.3, -0.2, 2.0])
    old_world = pose[:3, :3] @ p_cam + pose[:3, 3]
    new_world = moved[:3, :3] @ (sim.scale * p_cam) + moved[:3, 3]
    np.testing.assert_allclose(new_world, sim.apply(old_world), atol=1e-12)


@pytest.mark.parametrize('with_scale', [True, False])
def test_umeyama_recovers_known_transform(with_scale):
    rng = np.random.default_rng(2)
    truth = _random_sim3(rng)
    if not with_scale:
        truth = Sim3(1.0, truth.rotation, truth.translation)
    src = rng.normal(size=(200, 3))
    fit = umeyama(src, truth.apply(src), with_scale=with_scale)
    assert fit.scale == pytest.approx(truth.scale, rel=1e-9)
    np.testing.assert_allclose(fit.rotation, truth.rotation, atol=1e-9)
    np.testing.assert_allclose(fit.translation, truth.translation, atol=1e-9)
    assert np.linalg.det(fit.rotation) == pytest.approx(1.0)


def test_umeyama_weights_ignore_zero_weight_points():
    rng = np.random.default_rng(3)
    truth = _random_sim3(rng)
    src = rng.normal(size=(100, 3))
    dst = truth.apply(src)
    dst[:30] += rng.normal(size=(30, 3)) * 10
    weights = np.ones(100)
    weights[:30] = 0
    fit = umeyama(src, dst, weights)
    np.testing.assert_allclose(fit.as_matrix(), truth.as_matrix(), atol=1e-9)


def test_umeyama_rejects_degenerate_input():
    with pytest.raises(ValueError):
        umeyama(np.zeros((10, 3)), np.ones((10, 3)))
    with pytest.raises(ValueError):
        umeyama(np.eye(3)[:2], np.eye(3)[:2])


def test_robust_umeyama_resists_outliers():
    rng = np.random.default_rng(4)
    truth = _random_sim3(rng)
    src = rng.uniform(-1, 1, size=(2000, 3))
    dst = truth.apply(src) + rng.normal(size=(2000, 3)) * 0.002 * truth.scale
    bad = rng.choice(2000, 300, replace=False)
    dst[bad] += rng.normal(size=(300, 3)) * 2.0 * truth.scale
    plain = umeyama(src, dst)
    robust = robust_umeyama(src, dst, huber_delta=0.01 * truth.scale, iterations=10)
    err_plain = abs(plain.scale / truth.scale - 1)
    err_robust = abs(robust.transform.scale / truth.scale - 1)
    assert err_robust < 0.01
    assert err_robust < err_plain / 3
    assert np.median(robust.residuals) < 0.01 * truth.scale
    assert robust.weights[bad].mean() < robust.weights[np.setdiff1d(np.arange(2000), bad)].mean()


def test_quaternion_round_trip_and_convention():
    rng = np.random.default_rng(5)
    rots = np.stack([random_rotation(rng) for _ in range(200)])
    # Include the 180-degree cases that break naive trace-based conversion.
    rots[:3] = [np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])]
    quats = quaternion_xyzw_from_rotation(rots)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(rotation_from_quaternion_xyzw(quats), rots, atol=1e-10)
    # 90 degrees about z is (0, 0, sin 45, cos 45) in XYZW.
    quat_z = quaternion_xyzw_from_rotation(rotation_from_axis_angle(np.array([0, 0, np.pi / 2])))
    np.testing.assert_allclose(quat_z, [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)


def test_slerp_halfway_is_half_angle():
    q0 = quaternion_xyzw_from_rotation(np.eye(3))
    q1 = quaternion_xyzw_from_rotation(rotation_from_axis_angle(np.array([0.0, 1.2, 0.0])))
    mid = slerp_xyzw(q0, q1, 0.5)
    expect = quaternion_xyzw_from_rotation(rotation_from_axis_angle(np.array([0.0, 0.6, 0.0])))
    np.testing.assert_allclose(mid, expect, atol=1e-12)
    np.testing.assert_allclose(slerp_xyzw(q0, -q1, 1.0) * np.sign(q1[3]), q1, atol=1e-12)
    np.testing.assert_allclose(slerp_xyzw(q0, q0, 0.3), q0, atol=1e-12)
