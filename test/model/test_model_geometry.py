# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Pose encoding (absT_quaR_FoV, XYZW) round trip and depth unprojection."""

import math

import torch

from vggt4d_ros.geometry.pose_encoding import (
    extri_intri_to_pose_encoding,
    matrix_to_quaternion,
    pose_encoding_to_extri_intri,
    quaternion_to_matrix,
)
from vggt4d_ros.geometry.unproject import PIXEL_CENTRE
from vggt4d_ros.geometry.unproject import PIXEL_INDEX
from vggt4d_ros.geometry.unproject import unproject_depth


def _random_rotations(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(count, 4, generator=generator, dtype=torch.float64)
    return quaternion_to_matrix(q)


def test_quaternion_is_xyzw() -> None:
    angle = 0.3
    # Rotation by `angle` about z: XYZW = (0, 0, sin(a/2), cos(a/2)).
    q = torch.tensor([0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)], dtype=torch.float64)
    rz = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0],
                       [math.sin(angle), math.cos(angle), 0.0],
                       [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(quaternion_to_matrix(q), rz, atol=1e-12)
    assert torch.allclose(matrix_to_quaternion(rz), q, atol=1e-12)


def test_rotations_round_trip_including_half_turns() -> None:
    rotations = torch.cat([
        _random_rotations(64),
        torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))[None],
        torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64))[None],
        torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64))[None],
    ])
    quats = matrix_to_quaternion(rotations)
    assert torch.allclose(quats.norm(dim=-1), torch.ones(len(quats), dtype=torch.float64))
    assert (quats[:, 3] >= 0).all()
    assert torch.allclose(quaternion_to_matrix(quats), rotations, atol=1e-10)
    # Non-unit quaternions (as the camera head emits) describe the same rotation.
    assert torch.allclose(quaternion_to_matrix(3.0 * quats), rotations, atol=1e-10)


def test_pose_encoding_round_trip() -> None:
    hw = (392, 518)
    rotations = _random_rotations(6).reshape(2, 3, 3, 3)
    translations = torch.randn(2, 3, 3, 1, dtype=torch.float64)
    extrinsics = torch.cat([rotations, translations], dim=-1)
    intrinsics = torch.zeros(2, 3, 3, 3, dtype=torch.float64)
    intrinsics[..., 0, 0] = torch.rand(2, 3, dtype=torch.float64) * 300 + 200
    intrinsics[..., 1, 1] = torch.rand(2, 3, dtype=torch.float64) * 300 + 200
    intrinsics[..., 0, 2] = hw[1] / 2
    intrinsics[..., 1, 2] = hw[0] / 2
    intrinsics[..., 2, 2] = 1
    encoding = extri_intri_to_pose_encoding(extrinsics, intrinsics, hw)
    assert encoding.shape == (2, 3, 9)
    assert torch.allclose(encoding[..., :3], translations[..., 0])
    ext2, int2 = pose_encoding_to_extri_intri(encoding, hw)
    assert torch.allclose(ext2, extrinsics, atol=1e-10)
    assert torch.allclose(int2, intrinsics, atol=1e-9)


def test_fov_to_focal() -> None:
    encoding = torch.tensor([[0, 0, 0, 0, 0, 0, 1, math.pi / 2, math.pi / 3]])
    _, k = pose_encoding_to_extri_intri(encoding, (100, 200))
    assert torch.allclose(k[0, 1, 1], torch.tensor(50.0))
    assert torch.allclose(k[0, 0, 0], torch.tensor(100.0 / math.tan(math.pi / 6)))
    assert k[0, 0, 2] == 100 and k[0, 1, 2] == 50


def test_unproject_reprojects_to_pixels() -> None:
    frames, height, width = 2, 5, 7
    depth = torch.rand(frames, height, width, dtype=torch.float64) + 1.0
    rotations = _random_rotations(frames, seed=4)
    translations = torch.randn(frames, 3, dtype=torch.float64)
    extrinsics = torch.cat([rotations, translations[..., None]], dim=-1)
    intrinsics = torch.tensor([[20.0, 0, 3.1], [0, 25.0, 2.2], [0, 0, 1]],
                              dtype=torch.float64).expand(frames, 3, 3)
    for offset in (PIXEL_INDEX, PIXEL_CENTRE):
        points = unproject_depth(depth, extrinsics, intrinsics, pixel_offset=offset)
        assert points.shape == (frames, height, width, 3)
        cam = torch.einsum('sij,shwj->shwi', rotations, points) + translations[:, None, None]
        assert torch.allclose(cam[..., 2], depth)
        pix = torch.einsum('sij,shwj->shwi', intrinsics, cam / cam[..., 2:])
        assert torch.allclose(pix[0, 3, 4, :2], torch.tensor([4 + offset, 3 + offset],
                                                             dtype=torch.float64))
    trailing = unproject_depth(depth[..., None], extrinsics, intrinsics, pixel_offset=PIXEL_INDEX)
    assert torch.equal(trailing, unproject_depth(depth, extrinsics, intrinsics,
                                                 pixel_offset=PIXEL_INDEX))
