# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Both pixel conventions of the one unprojection home, torch and NumPy paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vggt4d_ros.geometry.unproject import backproject
from vggt4d_ros.geometry.unproject import camera_points
from vggt4d_ros.geometry.unproject import PIXEL_CENTRE
from vggt4d_ros.geometry.unproject import PIXEL_INDEX
from vggt4d_ros.geometry.unproject import unproject_grid

FX, FY, CX, CY = 40.0, 50.0, 6.0, 4.0


def _intrinsics(frames: int) -> np.ndarray:
    k = np.array([[FX, 0.0, CX], [0.0, FY, CY], [0.0, 0.0, 1.0]], np.float32)
    return np.repeat(k[None], frames, axis=0)


def test_conventions_are_named_and_distinct():
    assert PIXEL_INDEX == 0.0 and PIXEL_CENTRE == 0.5


@pytest.mark.parametrize('offset', [PIXEL_INDEX, PIXEL_CENTRE])
def test_camera_points_put_pixel_u_v_at_u_plus_offset(offset):
    depth = torch.full((1, 8, 12), 2.0)
    points = camera_points(depth, torch.from_numpy(_intrinsics(1)), pixel_offset=offset)
    assert points.shape == (1, 8, 12, 3) and points.dtype == torch.float32
    # Pixel (u=5, v=3): x = d (5 + o - cx) / fx, y = d (3 + o - cy) / fy.
    expected = [2.0 * (5 + offset - CX) / FX, 2.0 * (3 + offset - CY) / FY, 2.0]
    np.testing.assert_allclose(points[0, 3, 5].numpy(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('offset', [PIXEL_INDEX, PIXEL_CENTRE])
def test_numpy_grid_and_torch_paths_agree(offset):
    rng = np.random.default_rng(5)
    frames, height, width, stride = 2, 9, 13, 2
    depth = rng.uniform(1.0, 3.0, size=(frames, height, width)).astype(np.float32)
    poses = np.repeat(np.eye(4)[None], frames, axis=0)
    poses[1, :3, 3] = [0.5, -0.2, 1.0]
    poses[1, :3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    intr = _intrinsics(frames)
    dense = backproject(torch.from_numpy(depth), torch.from_numpy(intr),
                        torch.from_numpy(poses), pixel_offset=offset).numpy()
    grid = unproject_grid(depth[:, ::stride, ::stride], intr, poses, stride,
                          pixel_offset=offset)
    assert grid.dtype == np.float32
    np.testing.assert_allclose(grid, dense[:, ::stride, ::stride], rtol=1e-5, atol=1e-5)


def test_the_two_conventions_differ_by_half_a_pixel():
    depth = torch.full((1, 4, 4), 1.0)
    k = torch.from_numpy(_intrinsics(1))
    index = camera_points(depth, k, pixel_offset=PIXEL_INDEX)
    centre = camera_points(depth, k, pixel_offset=PIXEL_CENTRE)
    np.testing.assert_allclose((centre - index)[..., 0].numpy(), 0.5 / FX, rtol=1e-5)
    np.testing.assert_allclose((centre - index)[..., 1].numpy(), 0.5 / FY, rtol=1e-5)
