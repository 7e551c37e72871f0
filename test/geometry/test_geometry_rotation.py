# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The one quaternion conversion: canonical sign (half-turns included), round trips, rigid ops."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
import torch

from vggt4d_ros.geometry.packed_rgb import pack_rgb
from vggt4d_ros.geometry.packed_rgb import unpack_rgb
from vggt4d_ros.geometry.rigid import cam_to_world_from_extrinsics
from vggt4d_ros.geometry.rigid import invert_rigid
from vggt4d_ros.geometry.rigid import pose_from_translation_quaternion
from vggt4d_ros.geometry.rigid import translation_quaternion_from_pose
from vggt4d_ros.geometry.rotation import canonical_sign
from vggt4d_ros.geometry.rotation import quaternion_xyzw_from_rotation
from vggt4d_ros.geometry.rotation import rotation_from_quaternion_xyzw


def _is_canonical(quat: np.ndarray) -> bool:
    if quat[3] != 0:
        return bool(quat[3] > 0)
    return bool(quat[np.flatnonzero(quat)[0]] > 0)


def _half_turn(axis: np.ndarray) -> np.ndarray:
    """Exactly symmetric rotation 2 a a^T - I by pi about the unit ``axis`` (w is exactly 0)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    return 2.0 * np.outer(axis, axis) - np.eye(3)


HALF_TURN_AXES = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, -1, 0), (-0.6, 0.8, 0), (0, -3, 4),
                  (-1, 2, -2), (0.3, -0.2, -0.9), (-1, -1, -1)]


@pytest.mark.parametrize('axis', HALF_TURN_AXES)
def test_half_turns_have_one_quaternion_whichever_sign_built_them(axis):
    unit = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    rotation = _half_turn(unit)
    quat = quaternion_xyzw_from_rotation(rotation)
    assert quat[3] == 0.0 and not np.signbit(quat[3])  # +0.0, not -0.0
    assert _is_canonical(quat)
    np.testing.assert_allclose(np.abs(quat[:3]), np.abs(unit), atol=1e-12)
    # A half-turn given as -R's transpose (the same matrix, other rounding path) and as the
    # matrix of -q both come back with the canonical sign.
    for matrix in (rotation.T.copy(), rotation_from_quaternion_xyzw(-np.append(unit, 0.0))):
        again = quaternion_xyzw_from_rotation(matrix)
        assert _is_canonical(again)
        np.testing.assert_allclose(again, quat, atol=1e-12)
    np.testing.assert_allclose(rotation_from_quaternion_xyzw(quat), rotation, atol=1e-12)


def test_canonical_sign_picks_one_of_each_pair():
    rng = np.random.default_rng(0)
    quats = rng.normal(size=(200, 4))
    quats[:50, 3] = 0.0  # half-turns
    quats[50:60, 3] = -0.0
    quats[60:70, :2] = 0.0
    quats[60:70, 3] = 0.0
    for quat in quats:
        ours, theirs = canonical_sign(quat), canonical_sign(-quat)
        np.testing.assert_array_equal(ours, theirs)
        assert _is_canonical(ours)
        assert np.array_equal(ours, quat) or np.array_equal(ours, -quat + 0.0)
    # Batched form: same answer row by row.
    np.testing.assert_array_equal(canonical_sign(quats),
                                  np.stack([canonical_sign(q) for q in quats]))


def test_matches_scipy_up_to_the_sign_and_is_canonical():
    rotations = Rotation.random(500, random_state=3)
    ours = quaternion_xyzw_from_rotation(rotations.as_matrix())
    theirs = rotations.as_quat()
    theirs[theirs[:, 3] < 0] *= -1.0  # scipy keeps whatever sign its branch gives
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert (ours[:, 3] >= 0).all()
    np.testing.assert_allclose(rotation_from_quaternion_xyzw(ours), rotations.as_matrix(),
                               atol=1e-12)
    # One at a time equals batched, to the bit (TF and the trajectory agree exactly).
    single = np.stack([quaternion_xyzw_from_rotation(m) for m in rotations.as_matrix()[:20]])
    np.testing.assert_array_equal(single, ours[:20])


def test_rigid_inverse_and_translation_quaternion_round_trip():
    rng = np.random.default_rng(1)
    quat = rng.normal(size=4)
    pose = pose_from_translation_quaternion([0.3, -1.0, 2.5], quat)
    np.testing.assert_allclose(invert_rigid(pose) @ pose, np.eye(4), atol=1e-12)
    translation, back = translation_quaternion_from_pose(pose)
    np.testing.assert_array_equal(translation, [0.3, -1.0, 2.5])
    np.testing.assert_allclose(back, canonical_sign(quat / np.linalg.norm(quat)), atol=1e-12)
    # Torch: camera-from-world [S,3,4] -> world-from-camera [S,4,4], dtype kept.
    extrinsics = torch.from_numpy(invert_rigid(pose)[None, :3, :]).float()
    cam_to_world = cam_to_world_from_extrinsics(extrinsics)
    assert cam_to_world.dtype == torch.float32 and cam_to_world.shape == (1, 4, 4)
    np.testing.assert_allclose(cam_to_world[0].numpy(), pose, atol=1e-6)


def test_packed_rgb_round_trips_bits():
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3], [255, 255, 255]],
                      np.uint8)
    packed = pack_rgb(colors)
    assert packed.dtype == np.float32
    assert packed.view(np.uint32)[3] == 0x010203
    np.testing.assert_array_equal(unpack_rgb(packed), colors)
    np.testing.assert_array_equal(unpack_rgb(packed[::2]), colors[::2])  # strided input
