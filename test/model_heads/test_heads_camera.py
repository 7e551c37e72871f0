# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Camera head at small sizes: iterations, shapes, inputs used, activations."""

from typing import List, Optional

import torch

from vggt4d_ros.model.heads import CameraHead

DIM_IN = 32


def _head() -> CameraHead:
    torch.manual_seed(0)
    head = CameraHead(dim_in=DIM_IN, trunk_depth=2, num_heads=4).eval()
    with torch.no_grad():  # non-zero start token and gates so every path contributes
        head.empty_pose_tokens.normal_()
        head.poseLN_modulation[1].bias.normal_()
    return head


def _tokens(batch: int = 2, frames: int = 3, seed: int = 0) -> List[Optional[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out: List[Optional[torch.Tensor]] = [None] * 23
    out.append(torch.randn(batch, frames, 11, DIM_IN, generator=generator))
    return out


def test_iterations_and_shapes() -> None:
    head = _head()
    with torch.no_grad():
        poses = head(_tokens(), num_iterations=4)
        short = head(_tokens(), num_iterations=2)
    assert len(poses) == 4 and len(short) == 2
    for pose in poses:
        assert pose.shape == (2, 3, 9)
    # Iterations are a prefix-stable refinement, and each step changes the estimate.
    for a, b in zip(short, poses[:2]):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(poses[0], poses[-1])


def test_field_of_view_is_non_negative() -> None:
    head = _head()
    with torch.no_grad():
        head.pose_branch.fc2.bias[7:].fill_(-5.0)
        poses = head(_tokens(), num_iterations=3)
    for pose in poses:
        assert bool((pose[..., 7:] >= 0).all())
    assert bool((poses[0][..., 7:] == 0).any())  # relu clipped something


def test_only_camera_token_of_last_layer_is_read() -> None:
    head = _head()
    tokens = _tokens()
    edited = [t.clone() if t is not None else None for t in tokens]
    edited[-1][:, :, 1:] = torch.randn_like(edited[-1][:, :, 1:])
    with torch.no_grad():
        reference = head(tokens)[-1]
        other = head(edited)[-1]
        # frame 1's camera token (not a constant shift, which LayerNorm would remove)
        edited[-1][:, 1, 0] += torch.randn(DIM_IN)
        moved = head(edited)[-1]
    torch.testing.assert_close(reference, other)
    assert not torch.allclose(reference[:, 0], moved[:, 0])


def test_bfloat16_runs() -> None:
    head = _head().to(torch.bfloat16)
    tokens = [t.to(torch.bfloat16) if t is not None else None for t in _tokens()]
    with torch.no_grad():
        poses = head(tokens)
    assert poses[-1].dtype == torch.bfloat16
    assert bool(torch.isfinite(poses[-1]).all())
