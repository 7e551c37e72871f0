# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The sort-free kNN of the refinement's outlier removal equals a plain sort-based reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vggt4d_ros.motion.refine import mean_of_smallest
from vggt4d_ros.motion.refine import outliers

INF = float('inf')


def _sorted_mean(rows: torch.Tensor, count: int) -> torch.Tensor:
    """Reference: mean of the first ``count`` values of each sorted row, in float64."""
    return rows.double().sort(dim=-1).values[..., :count].mean(-1)


def _reference_knn(points: torch.Tensor, valid: torch.Tensor, neighbours: int,
                   radius: int) -> torch.Tensor:
    """The original formulation: im2col windows, distances, sort, mean of the k smallest."""
    frames, height, width, _ = points.shape
    size = 2 * radius + 1
    safe = torch.where(valid.unsqueeze(-1), points, torch.zeros_like(points)).permute(0, 3, 1, 2)
    windows = F.unfold(safe, size, padding=radius).view(frames, 3, size * size, -1)
    window_ok = F.unfold(valid.float().unsqueeze(1), size, padding=radius) > 0.5
    dist = (windows - safe.reshape(frames, 3, 1, -1)).pow(2).sum(1).sqrt()
    dist = dist.masked_fill(~window_ok, INF)
    take = min(neighbours, size * size)
    nearest = dist.transpose(1, 2).sort(dim=-1).values[..., :take]
    out = nearest.mean(-1).view(frames, height, width)
    return torch.where(valid, out, torch.full_like(out, INF))


def _rows_with_ties(generator: torch.Generator) -> torch.Tensor:
    """[64,81] non-negative rows: few distinct values (ties), zeros, +inf, tiny and huge values."""
    rows = torch.randint(0, 6, (64, 81), generator=generator).float() * 0.25
    rows[8:16] = torch.rand(8, 81, generator=generator) * 1e-30  # subnormal-scale values
    rows[16:24] = torch.rand(8, 81, generator=generator) * 1e30
    rows[24:32] = torch.rand(8, 81, generator=generator)
    inf_spots = torch.rand(64, 81, generator=generator) < 0.3
    return rows.masked_fill(inf_spots, INF)


@pytest.mark.parametrize('count', [1, 2, 20, 80, 81])
def test_selection_equals_the_sorted_prefix(count):
    rows = _rows_with_ties(torch.Generator().manual_seed(count))
    ours = mean_of_smallest(rows, count)
    expected = _sorted_mean(rows, count)
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(ours), finite)
    torch.testing.assert_close(ours[finite].double(), expected[finite], rtol=1e-6, atol=0)


def test_fewer_finite_values_than_k_give_inf_and_exactly_k_give_the_mean():
    rows = torch.full((3, 9), INF)
    rows[0, :4] = torch.tensor([3.0, 1.0, 2.0, 0.0])  # 4 finite < k = 5
    rows[1, :5] = torch.tensor([3.0, 1.0, 2.0, 0.0, 4.0])  # exactly k finite
    rows[2] = 7.0  # all tied
    ours = mean_of_smallest(rows, 5)
    assert ours[0] == INF
    assert ours[1] == 2.0
    assert ours[2] == 7.0


def test_nan_counts_as_inf_and_never_reaches_the_output():
    rows = torch.tensor([[1.0, float('nan'), 2.0, 3.0], [float('nan'), 1.0, INF, 5.0]])
    ours = mean_of_smallest(rows, 3)
    assert ours[0] == 2.0
    assert ours[1] == INF
    assert not torch.isnan(mean_of_smallest(rows, 4)).any()


def test_selection_refuses_other_dtypes_than_float32():
    with pytest.raises(TypeError):
        mean_of_smallest(torch.rand(4, 9, dtype=torch.float64), 3)


def test_float64_points_take_the_eager_search():
    points, valid = _surface(1, 9, 10, seed=6)
    ours = outliers.mean_knn_distance_image(points.double(), valid, 20, 4,
                                            outliers.CompiledKnn())
    assert ours.dtype == torch.float64
    expected = _reference_knn(points.double(), valid, 20, 4)
    torch.testing.assert_close(ours, expected)


def test_selection_works_on_leading_batch_dims():
    rows = _rows_with_ties(torch.Generator().manual_seed(5)).view(4, 16, 81)
    torch.testing.assert_close(mean_of_smallest(rows, 20).double(), _sorted_mean(rows, 20),
                               rtol=1e-6, atol=0)


def _surface(frames: int, height: int, width: int, seed: int):
    """Points of a wavy surface with a box in front, a few holes and spikes."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width),
                            indexing='ij')
    jitter = 0.05 * torch.rand(frames, height, width, generator=generator)
    depth = 3 + 0.3 * torch.sin(3 * xs) + jitter
    depth[:, height // 4:height // 2, width // 4:width // 2] -= 1.0
    depth[:, 2, 3] = 30.0
    points = torch.stack([xs * depth, ys * depth, depth], dim=-1)
    valid = torch.rand(frames, height, width, generator=generator) > 0.1
    return points, valid


@pytest.mark.parametrize('radius,neighbours', [(4, 20), (1, 9), (2, 30)])
def test_eager_and_fused_searches_equal_the_sort_reference(radius, neighbours):
    points, valid = _surface(2, 17, 23, seed=radius)
    expected = _reference_knn(points, valid, neighbours, radius)
    finite = torch.isfinite(expected)
    for ours in (outliers.mean_knn_distance_image(points, valid, neighbours, radius, None),
                 outliers.mean_knn_distance_eager(points, valid, neighbours, radius, True),
                 outliers.mean_knn_distance_fused(points, valid, neighbours, radius)):
        assert ours.shape == expected.shape
        assert torch.equal(torch.isfinite(ours), finite)
        torch.testing.assert_close(ours[finite], expected[finite], rtol=1e-5, atol=1e-7)
    assert finite.any() and not finite.all()  # both cases exercised


def test_window_distance_layouts_agree():
    points, valid = _surface(2, 9, 11, seed=1)
    views = outliers.window_distances(points, valid, 2)  # [S,h*w,L]
    shifted = outliers.window_distances_shifted(points, valid, 2)  # [S,L,h,w]
    torch.testing.assert_close(views, shifted.flatten(2).transpose(1, 2), rtol=0, atol=0)


def test_fused_search_traces_as_one_graph():
    points, valid = _surface(2, 12, 14, seed=2)
    # fullgraph=True raises on any graph break; aot_eager also runs the decompositions.
    compiled = torch.compile(outliers.mean_knn_distance_fused, backend='aot_eager',
                             fullgraph=True, dynamic=False)
    ours = compiled(points, valid, 20, 4)
    expected = outliers.mean_knn_distance_fused(points, valid, 20, 4)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_inductor_compiled_search_matches_the_reference_on_cpu():
    # One inductor compilation (C++ on the CPU; ~30 s cold, seconds with a warm cache): the
    # lowering of the bit-pattern views and the unrolled selection, checked end to end.
    points, valid = _surface(1, 9, 12, seed=7)
    compiled = torch.compile(outliers.mean_knn_distance_fused, dynamic=False)
    ours = compiled(points, valid, 20, 4)
    expected = _reference_knn(points, valid, 20, 4)
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(ours), finite)
    torch.testing.assert_close(ours[finite], expected[finite], rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA (inductor + triton)')
def test_compiled_search_on_cuda_matches_the_reference():
    points, valid = _surface(2, 60, 80, seed=3)
    points, valid = points.cuda(), valid.cuda()
    expected = _reference_knn(points, valid, 20, 4)
    search = outliers.CompiledKnn()
    ours = outliers.mean_knn_distance_image(points, valid, 20, 4, search)
    assert not search.failed
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(ours), finite)
    torch.testing.assert_close(ours[finite], expected[finite], rtol=1e-5, atol=1e-7)


def test_a_failing_compilation_falls_back_to_the_eager_search(caplog):
    points, valid = _surface(2, 10, 12, seed=4)
    search = outliers.CompiledKnn()

    def broken(*args: object) -> torch.Tensor:
        raise RuntimeError('no triton here')

    search.fn = broken
    ours = search(points, valid, 20, 4)
    assert search.failed and 'running eagerly' in caplog.text
    expected = outliers.mean_knn_distance_eager(points, valid, 20, 4)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    search.fn = None  # stays eager: no new compilation is attempted
    torch.testing.assert_close(search(points, valid, 20, 4), expected, rtol=0, atol=0)
    assert search.fn is None


def test_out_of_memory_is_not_taken_for_a_compiler_failure():
    points, valid = _surface(1, 6, 7, seed=5)
    search = outliers.CompiledKnn()

    def out_of_memory(*args: object) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError('CUDA out of memory')

    search.fn = out_of_memory
    with pytest.raises(torch.cuda.OutOfMemoryError):
        search(points, valid, 20, 4)
    assert not search.failed


def test_a_failed_search_switches_only_its_owner_to_eager(caplog):
    # No process-wide switch: each pipeline (or caller) owns its compiled search.
    points, valid = _surface(1, 6, 7, seed=8)
    failing, other = outliers.CompiledKnn(), outliers.CompiledKnn()

    def broken(*args: object) -> torch.Tensor:
        raise RuntimeError('no triton here')

    failing.fn = broken
    failing(points, valid, 20, 4)
    assert failing.failed and not other.failed and other.fn is None
