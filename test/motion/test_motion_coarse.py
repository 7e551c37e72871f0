# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Coarse masks: torch multi-Otsu vs scikit-image, k-means, cluster smoothing, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.filters import threshold_multiotsu as sk_threshold_multiotsu
import torch

from vggt4d_ros.motion.coarse import _class_score_table
from vggt4d_ros.motion.coarse import adaptive_multiotsu
from vggt4d_ros.motion.coarse import cluster_smooth
from vggt4d_ros.motion.coarse import coarse_masks
from vggt4d_ros.motion.coarse import CoarseConfig
from vggt4d_ros.motion.coarse import histogram_like_numpy
from vggt4d_ros.motion.coarse import threshold_multiotsu
from vggt4d_ros.motion.kmeans import kmeans
from vggt4d_ros.motion.kmeans import KMeansConfig


def _mixture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [rng.normal(0.2, 0.05, 3000), rng.normal(0.7, 0.1, 500 * (seed % 4 + 1)),
             rng.uniform(0, 1, 300)]
    return np.clip(np.concatenate(parts), 0, 1).astype(np.float32)


def _objective(values: np.ndarray, thresholds: np.ndarray) -> float:
    """Between-class objective (sum of m1^2/m0 over classes) of thresholds, in float64."""
    counts, centres = histogram_like_numpy(torch.from_numpy(values), 256)
    table = _class_score_table(counts / counts.sum())
    index = [int(np.argmin(np.abs(centres.numpy() - t))) for t in thresholds]
    starts, stops = [0] + [i + 1 for i in index], index + [255]
    return sum(table[a, b].item() for a, b in zip(starts, stops))


def test_histogram_matches_numpy():
    values = _mixture(3)
    counts, centres = histogram_like_numpy(torch.from_numpy(values), 256)
    np_counts, np_edges = np.histogram(values, 256, range=(values.min(), values.max()))
    assert np.array_equal(counts.numpy(), np_counts)
    np.testing.assert_allclose(centres.numpy(), (np_edges[1:] + np_edges[:-1]) / 2, atol=1e-6)


def test_multiotsu_matches_skimage():
    """Equal thresholds, except where skimage's float32 search misses the float64 optimum."""
    equal, total = 0, 0
    for seed in range(12):
        values = _mixture(seed)
        for classes in (2, 3, 4):
            ours = threshold_multiotsu(torch.from_numpy(values), classes).numpy()
            ref = sk_threshold_multiotsu(values, classes=classes)
            total += 1
            if np.allclose(ours, ref, atol=1e-6):
                equal += 1
            else:
                # Never worse than skimage on the exact objective, and at most 4 bins away.
                assert _objective(values, ours) >= _objective(values, ref) - 1e-9
                assert np.abs(ours - ref).max() <= 4 * (values.max() - values.min()) / 256
    assert equal >= 0.85 * total


def _release_style_adaptive(values: np.ndarray) -> float:
    """The release's rule written with skimage and numpy (independent of our code)."""
    best_score, best = -np.inf, None
    for classes in (2, 3, 4):
        thresholds = sk_threshold_multiotsu(values, classes=classes)
        region = np.digitize(values, bins=thresholds)
        score = np.var([values[region == i].mean() for i in range(classes)]) / np.sqrt(classes)
        if score > best_score:
            best_score, best = score, thresholds[-1]
    return float(best)


@pytest.mark.parametrize('seed', [0, 1, 2, 5])
def test_adaptive_multiotsu_matches_release_rule(seed):
    values = _mixture(seed)
    ours = adaptive_multiotsu(torch.from_numpy(values)).item()
    assert abs(ours - _release_style_adaptive(values)) <= 4 / 256


def test_adaptive_multiotsu_constant_and_two_value_inputs():
    assert adaptive_multiotsu(torch.full((5, 7), 0.3)).item() == float('inf')
    two = torch.tensor([0.0] * 10 + [1.0] * 3)
    tau = adaptive_multiotsu(two).item()
    # Only K=2 is possible; the split separates the two values.
    assert 0.0 <= tau < 1.0
    ref = sk_threshold_multiotsu(two.numpy(), classes=2)[-1]
    assert abs(tau - ref) < 1e-6


def test_kmeans_recovers_separated_blobs_and_is_deterministic():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = torch.cat([c + 0.1 * torch.randn(50, 2, generator=gen) for c in centres])
    config = KMeansConfig(clusters=3, iterations=10)
    labels, found = kmeans(points.unsqueeze(0), config)
    again, _ = kmeans(points.unsqueeze(0), config)
    assert torch.equal(labels, again)
    for block in range(3):
        assert labels[0, block * 50:(block + 1) * 50].unique().numel() == 1
    assert labels[0].unique().numel() == 3
    assert torch.cdist(found[0], centres).min(dim=0).values.max() < 0.1


def test_kmeans_batch_with_invalid_points_and_too_few_points():
    points = torch.randn(2, 40, 3)
    valid = torch.zeros(2, 40, dtype=torch.bool)
    valid[0, :3] = True  # fewer points than clusters
    labels, centroids = kmeans(points, KMeansConfig(clusters=5, iterations=5), valid)
    assert (labels[0, 3:] == -1).all() and (labels[1] == -1).all()
    assert labels[0, :3].unique().numel() == 3  # each point its own cluster
    assert torch.isfinite(centroids).all()


def test_cluster_smoothing_uses_cluster_means():
    frames, hp, wp = 2, 3, 4
    feats = torch.zeros(frames, hp * wp, 2)
    feats[:, :6] = torch.tensor([5.0, 0.0])  # cluster 'a' in both frames
    feats[:, 6:] = torch.tensor([0.0, 5.0])  # cluster 'b'
    saliency = torch.rand(frames, hp, wp, generator=torch.Generator().manual_seed(1))
    smoothed, labels = cluster_smooth(saliency, feats, CoarseConfig(clusters=2))
    flat = saliency.reshape(frames, -1)
    mean_a, mean_b = flat[:, :6].mean(), flat[:, 6:].mean()
    expected = torch.where(torch.arange(12) < 6, mean_a, mean_b).repeat(frames, 1)
    expected = (expected - expected.min(1, keepdim=True).values)
    expected = expected / (expected.max(1, keepdim=True).values + 1e-6)
    torch.testing.assert_close(smoothed.reshape(frames, -1), expected)
    assert labels.shape == (frames, hp, wp)


def test_coarse_masks_shapes_and_separation():
    frames, hp, wp = 3, 4, 5
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(frames, hp * wp, 8, generator=gen)
    saliency = 0.05 * torch.rand(frames, hp, wp, generator=gen)
    saliency[:, 1:3, 1:3] = 1.0
    feats.view(frames, hp, wp, 8)[:, 1:3, 1:3] += 20.0  # the salient patches share features
    out = coarse_masks(saliency, feats, (hp * 14, wp * 14), CoarseConfig(clusters=6))
    assert out.masks.shape == (frames, hp * 14, wp * 14) and out.masks.dtype == torch.bool
    assert out.upsampled.shape == out.masks.shape
    centre = out.masks[:, 28, 28]
    corner = out.masks[:, 0, 0]
    assert centre.all() and not corner.any()


def test_coarse_masks_constant_and_nan_saliency_give_empty_masks():
    feats = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(0))
    out = coarse_masks(torch.zeros(2, 2, 3), feats, (28, 42), CoarseConfig(clusters=3))
    assert not out.masks.any()
    nan = torch.full((2, 2, 3), float('nan'))
    out = coarse_masks(nan, feats, (28, 42), CoarseConfig(clusters=3))
    assert not out.masks.any() and torch.isfinite(out.upsampled).all()


def test_small_dimension_distances_match_the_matrix_product():
    # The 3D k-means sums x.c per coordinate instead of a cuBLAS product; same distances.
    from vggt4d_ros.motion import kmeans as kmeans_module
    generator = torch.Generator().manual_seed(3)
    for dim in (3, 8):
        points = torch.randn(2, 500, dim, generator=generator)
        centroids = torch.randn(2, 6, dim, generator=generator)
        norms = (points * points).sum(-1)
        distances = kmeans_module._squared_distances(points, norms, centroids)
        reference = torch.cdist(points.double(), centroids.double()) ** 2
        torch.testing.assert_close(distances.double(), reference, atol=1e-4, rtol=1e-5)
        assert torch.equal(kmeans_module._assign(points, centroids), reference.argmin(-1))


def _plain_adaptive_multiotsu(values: torch.Tensor) -> float:
    """The adaptive rule with one boolean mask per class (the implementation it replaced)."""
    flat = values.reshape(-1).double()
    counts, _ = histogram_like_numpy(flat, 256)
    best_score, best = -np.inf, np.inf
    for classes in (2, 3, 4):
        if int((counts > 0).sum()) < classes:
            continue
        thresholds = threshold_multiotsu(flat, classes)
        region = torch.bucketize(flat, thresholds, right=True)
        if any(not (region == c).any() for c in range(classes)):
            continue
        means = torch.stack([flat[region == c].mean() for c in range(classes)])
        score = means.var(correction=0).item() / np.sqrt(classes)
        if score > best_score:
            best_score, best = score, thresholds[-1].item()
    return best


@pytest.mark.parametrize('kind', ['uniform', 'mixture', 'levels', 'skewed', 'spike'])
def test_adaptive_multiotsu_matches_the_per_class_masks(kind):
    """Class means from sums at or above each threshold equal the per-class-mask means."""
    generator = torch.Generator().manual_seed(len(kind))
    for trial in range(8):
        count = 200 + 1500 * trial
        values = {
            'uniform': lambda: torch.rand(count, generator=generator),
            'mixture': lambda: torch.cat([0.1 * torch.randn(count, generator=generator),
                                          1 + 0.2 * torch.randn(count // 3, generator=generator)]),
            'levels': lambda: torch.randint(0, trial + 2, (count,), generator=generator) / 4.0,
            'skewed': lambda: torch.rand(count, generator=generator) ** 6,
            'spike': lambda: torch.cat([torch.zeros(count), torch.rand(trial + 1,
                                                                       generator=generator)]),
        }[kind]()
        assert adaptive_multiotsu(values).item() == _plain_adaptive_multiotsu(values)


def test_coarse_benchmark_prints_a_table_on_cpu(capsys):
    from vggt4d_ros.tools import bench
    assert bench.main(['coarse', '--device', 'cpu', '--frames', '2', '--height', '42',
                       '--width', '56', '--dim', '16', '--points', '500', '--repeats', '1']) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| ')]
    assert table[0].startswith('| stage | variant | frames |')
    rows = [line.split(' | ') for line in table[1:]]
    assert [(row[0][2:], row[1]) for row in rows] == [('coarse', 'eager'), ('kmeans3d', 'eager')]
    assert all(float(row[4]) > 0 and int(row[5]) > 100 for row in rows)
