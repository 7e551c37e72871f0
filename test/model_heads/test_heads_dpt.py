# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""DPT head at small sizes: shapes, activations, chunking, the ReLU skip and the UV embedding."""

import math
from typing import List, Optional

import pytest
import torch

from vggt4d_ros.model.heads import DPTHead
from vggt4d_ros.model.heads.activations import activate_dense
from vggt4d_ros.model.heads.dpt_head import ResidualConvUnit
from vggt4d_ros.model.heads.embeddings import uv_grid, uv_position_embedding

DIM_IN = 32
PATCH = 14
SPECIAL_TOKENS = 5
LAYERS = (4, 11, 17, 23)


def _tokens(batch: int, frames: int, grid_hw, seed: int = 0) -> List[Optional[torch.Tensor]]:
    """Aggregator-like list: ``None`` where layers were not kept, as the aggregator does."""
    generator = torch.Generator().manual_seed(seed)
    tokens = SPECIAL_TOKENS + grid_hw[0] * grid_hw[1]
    out: List[Optional[torch.Tensor]] = [None] * 24
    for idx in LAYERS:
        out[idx] = torch.randn(batch, frames, tokens, DIM_IN, generator=generator)
    return out


def _head(**kwargs) -> DPTHead:
    torch.manual_seed(0)
    return DPTHead(dim_in=DIM_IN, features=16, out_channels=(8, 8, 16, 16), **kwargs).eval()


@pytest.mark.parametrize('grid_hw', [(2, 3), (3, 2)])
def test_depth_head_shapes_and_activations(grid_hw) -> None:
    head = _head(output_dim=2, activation='exp', conf_activation='expp1')
    height, width = grid_hw[0] * PATCH, grid_hw[1] * PATCH
    images = torch.rand(2, 3, 3, height, width)
    with torch.no_grad():
        depth, conf = head(_tokens(2, 3, grid_hw), images, SPECIAL_TOKENS)
    assert depth.shape == (2, 3, height, width, 1)
    assert conf.shape == (2, 3, height, width)
    assert bool((depth > 0).all())
    assert bool((conf >= 1).all())


def test_point_head_shapes() -> None:
    head = _head(output_dim=4, activation='inv_log', conf_activation='expp1')
    images = torch.rand(1, 2, 3, 28, 42)
    with torch.no_grad():
        points, conf = head(_tokens(1, 2, (2, 3)), images, SPECIAL_TOKENS)
    assert points.shape == (1, 2, 28, 42, 3)
    assert conf.shape == (1, 2, 28, 42)
    assert bool((conf >= 1).all())


def test_dense_activations() -> None:
    raw = torch.tensor([-2.0, 0.0, 0.5, 1.0]).view(1, 4, 1, 1)
    values, conf = activate_dense(raw, 'inv_log', 'expp1')
    expected = torch.tensor([-(math.e**2 - 1), 0.0, math.exp(0.5) - 1])
    torch.testing.assert_close(values.flatten(), expected)
    torch.testing.assert_close(conf.flatten(), torch.tensor([1 + math.e]))
    values, _ = activate_dense(raw, 'exp', 'expp1')
    torch.testing.assert_close(values.flatten(), torch.exp(raw.flatten()[:3]))


def test_chunked_equals_unchunked() -> None:
    head = _head(output_dim=2, activation='exp', conf_activation='expp1')
    tokens = _tokens(2, 5, (2, 3), seed=3)
    images = torch.rand(2, 5, 3, 28, 42)
    with torch.no_grad():
        full = head(tokens, images, SPECIAL_TOKENS, frames_chunk_size=None)
        chunked = head(tokens, images, SPECIAL_TOKENS, frames_chunk_size=2)
    for a, b in zip(full, chunked):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_feature_only_half_resolution() -> None:
    head = _head(feature_only=True, down_ratio=2, pos_embed=False)
    assert not hasattr(head.scratch, 'output_conv2')
    tokens = _tokens(1, 3, (4, 6))
    images = torch.rand(1, 3, 3, 56, 84)
    with torch.no_grad():
        features = head(tokens, images, SPECIAL_TOKENS, frames_chunk_size=2)
    assert features.shape == (1, 3, 16, 28, 42)


def test_missing_layer_is_reported() -> None:
    head = _head(output_dim=2, activation='exp', conf_activation='expp1')
    tokens = _tokens(1, 1, (2, 3))
    tokens[11] = None
    with pytest.raises(ValueError, match='11'):
        head(tokens, torch.rand(1, 1, 3, 28, 42), SPECIAL_TOKENS)


def test_unknown_activation_is_rejected() -> None:
    with pytest.raises(ValueError, match='activation'):
        DPTHead(dim_in=DIM_IN, activation='softplus')


def test_residual_unit_skip_carries_relu_of_input() -> None:
    """The checkpoint was trained with ``relu(x)`` (in-place ReLU) on the skip branch."""
    unit = ResidualConvUnit(4)
    with torch.no_grad():
        unit.conv2.weight.zero_()
        unit.conv2.bias.zero_()
    x = torch.randn(2, 4, 5, 6)
    x_before = x.clone()
    out = unit(x)
    torch.testing.assert_close(out, torch.relu(x_before))
    torch.testing.assert_close(x, x_before)  # the caller's tensor is not modified


def test_uv_grid_is_centred_and_diagonal_normalised() -> None:
    grid = uv_grid(4, 6, aspect_ratio=1.5)
    assert grid.shape == (4, 6, 2)
    torch.testing.assert_close(grid.mean(dim=(0, 1)), torch.zeros(2), atol=1e-6, rtol=0)
    # Cell centres: the extreme samples sit half a cell inside the diagonal-normalised span.
    span_u, span_v = 1.5 / (1.5**2 + 1) ** 0.5, 1 / (1.5**2 + 1) ** 0.5
    assert grid[0, -1, 0].item() == pytest.approx(span_u * 5 / 6)
    assert grid[-1, 0, 1].item() == pytest.approx(span_v * 3 / 4)
    assert bool((grid[:, 1:, 0] > grid[:, :-1, 0]).all())  # u grows to the right
    assert bool((grid[1:, :, 1] > grid[:-1, :, 1]).all())  # v grows downwards


def test_uv_position_embedding_layout() -> None:
    embedding = uv_position_embedding(3, 5, 8, aspect_ratio=5 / 3)
    assert embedding.shape == (8, 3, 5)
    # channels 0..3 depend on u only (constant down a column), 4..7 on v only.
    torch.testing.assert_close(embedding[:4], embedding[:4, :1].expand(4, 3, 5))
    torch.testing.assert_close(embedding[4:], embedding[4:, :, :1].expand(4, 3, 5))
    grid = uv_grid(3, 5, 5 / 3)
    torch.testing.assert_close(embedding[0], torch.sin(grid[..., 0]))  # frequency 1
    torch.testing.assert_close(embedding[2], torch.cos(grid[..., 0]))


def test_bfloat16_keeps_dtype() -> None:
    head = _head(output_dim=2, activation='exp', conf_activation='expp1').to(torch.bfloat16)
    tokens = [t.to(torch.bfloat16) if t is not None else None for t in _tokens(1, 2, (2, 3))]
    with torch.no_grad():
        depth, conf = head(tokens, torch.rand(1, 2, 3, 28, 42), SPECIAL_TOKENS)
    assert depth.dtype == torch.bfloat16 and conf.dtype == torch.bfloat16
    assert bool(torch.isfinite(depth).all())


def test_float32_head_accepts_bfloat16_tokens() -> None:
    head = _head(output_dim=2, activation='exp', conf_activation='expp1')
    tokens = [t.to(torch.bfloat16) if t is not None else None for t in _tokens(1, 2, (2, 3))]
    upcast = [t.float() if t is not None else None for t in tokens]
    images = torch.rand(1, 2, 3, 28, 42)
    with torch.no_grad():
        depth, _ = head(tokens, images, SPECIAL_TOKENS)
        expected, _ = head(upcast, images, SPECIAL_TOKENS)
    assert depth.dtype == torch.float32
    torch.testing.assert_close(depth, expected)
