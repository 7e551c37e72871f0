# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Track head at small sizes: output shapes, pinned query frame, sampling helpers."""

from typing import List, Optional

import torch

from vggt4d_ros.model.heads import TrackHead
from vggt4d_ros.model.heads.embeddings import flow_embedding, sincos_embedding_1d
from vggt4d_ros.model.heads.tracker import CorrelationPyramid, sample_bilinear, TrackerPredictor

DIM_IN = 32
SPECIAL_TOKENS = 5
GRID_HW = (4, 6)  # 56 x 84 pixels -> 28 x 42 features


def _tokens(batch: int, frames: int, seed: int = 0) -> List[Optional[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out: List[Optional[torch.Tensor]] = [None] * 24
    for idx in (4, 11, 17, 23):
        out[idx] = torch.randn(batch, frames, SPECIAL_TOKENS + GRID_HW[0] * GRID_HW[1], DIM_IN,
                               generator=generator)
    return out


def _head(pos_embed: bool = False) -> TrackHead:
    torch.manual_seed(0)
    head = TrackHead(dim_in=DIM_IN, features=16, hidden_size=32, corr_levels=3,
                     out_channels=(8, 8, 16, 16), tracker_depth=2, num_heads=4,
                     num_virtual_tracks=4, pos_embed=pos_embed).eval()
    with torch.no_grad():  # larger flow head so tracks actually move
        head.tracker.updateformer.flow_head.weight.normal_(std=0.05)
    return head


def _queries(batch: int, count: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(batch, count, 2, generator=generator) * torch.tensor([83.0, 55.0])


def test_output_shapes_and_pinned_query_frame() -> None:
    head = _head()
    queries = _queries(2, 5)
    images = torch.rand(2, 3, 3, 56, 84)
    with torch.no_grad():
        coords, vis, conf = head(_tokens(2, 3), images, SPECIAL_TOKENS, query_points=queries)
        short, _, _ = head(_tokens(2, 3), images, SPECIAL_TOKENS, query_points=queries, iters=2)
    assert len(coords) == 4 and len(short) == 2
    for estimate in coords:
        assert estimate.shape == (2, 3, 5, 2)
        assert estimate.dtype == torch.float32
        torch.testing.assert_close(estimate[:, 0], queries)
    assert not torch.allclose(coords[-1][:, 1:], queries[:, None].expand(2, 2, 5, 2))
    assert vis.shape == conf.shape == (2, 3, 5)
    assert bool(((vis > 0) & (vis < 1)).all()) and bool(((conf > 0) & (conf < 1)).all())


def test_pos_embed_flag_changes_features_only_through_embedding() -> None:
    tokens, images = _tokens(1, 2), torch.rand(1, 2, 3, 56, 84)
    plain, fixed = _head(pos_embed=False), _head(pos_embed=True)
    fixed.load_state_dict(plain.state_dict())
    with torch.no_grad():
        a = plain.feature_extractor(tokens, images, SPECIAL_TOKENS)
        b = fixed.feature_extractor(tokens, images, SPECIAL_TOKENS)
    assert a.shape == b.shape == (1, 2, 16, 28, 42)
    assert not torch.allclose(a, b)


def test_bfloat16_features_keep_float32_coordinates() -> None:
    head = _head().to(torch.bfloat16)
    tokens = [t.to(torch.bfloat16) if t is not None else None for t in _tokens(1, 2)]
    with torch.no_grad():
        coords, vis, _ = head(tokens, torch.rand(1, 2, 3, 56, 84), SPECIAL_TOKENS,
                              query_points=_queries(1, 3))
    assert coords[-1].dtype == torch.float32 and vis.dtype == torch.bfloat16
    assert bool(torch.isfinite(coords[-1]).all())


def test_query_position_embedding_equals_2d_table_sampling() -> None:
    """The 1D shortcut matches bilinear sampling of the full ``[emb(x) | emb(y)]`` table."""
    tracker = TrackerPredictor(latent_dim=8, hidden_size=16, depth=1, num_heads=2,
                               num_virtual_tracks=2, corr_levels=2)
    height, width, dim = 7, 9, tracker.transformer_dim
    xs = torch.arange(width, dtype=torch.float32)
    ys = torch.arange(height, dtype=torch.float32)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    table = torch.cat([sincos_embedding_1d(grid_x.flatten(), dim // 2, 10000.0),
                       sincos_embedding_1d(grid_y.flatten(), dim // 2, 10000.0)], dim=-1)
    table = table.t().reshape(1, dim, height, width)
    queries = torch.tensor([[[0.0, 0.0], [8.0, 6.0], [3.3, 2.7], [-1.0, 9.5]]])  # incl. outside
    expected = sample_bilinear(table, queries.unsqueeze(2), 'border')[0, :, :, 0].t()
    ours = tracker._query_position_embedding(queries, height, width)[:, 0]
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_correlation_window_layout() -> None:
    """Window cell (i, j) samples at (x + i - r, y + j - r) (x offset along the rows)."""
    fmaps = torch.zeros(1, 1, 1, 9, 9)
    fmaps[0, 0, 0, 4, 6] = 1.0  # feature peak at x=6, y=4
    pyramid = CorrelationPyramid(fmaps, num_levels=1, radius=2)
    targets = torch.ones(1, 1, 1, 1)
    coords = torch.tensor([[[[4.0, 4.0]]]])  # centre (x=4, y=4)
    window = pyramid.sample(targets, coords).view(5, 5)
    peak = (window == window.max()).nonzero().tolist()
    assert peak == [[4, 2]]  # x offset +2 on the row axis, y offset 0 on the column axis


def test_flow_embedding_interleaves_sin_cos() -> None:
    flows = torch.tensor([[0.5, -1.0]])
    emb = flow_embedding(flows, 4)
    frequencies = torch.tensor([0.0, 500.0])
    expected_x = torch.stack((torch.sin(0.5 * frequencies), torch.cos(0.5 * frequencies)), -1)
    expected_y = torch.stack((torch.sin(-frequencies), torch.cos(-frequencies)), -1)
    torch.testing.assert_close(emb[0], torch.cat([expected_x.flatten(), expected_y.flatten()]))
