# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The fused k-means gives the results of the plain implementation it replaced.

``_reference_*`` below is the previous motion/kmeans.py code (one kernel per elementary
step), kept here as the oracle: same seeding picks, same Lloyd assignments, same centroids,
bit for bit on the CPU, for the coarse stage's feature clustering and the refinement's padded
3D clustering with validity masks.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from vggt4d_ros.motion import kmeans as kmeans_module
from vggt4d_ros.motion.kmeans import kmeans
from vggt4d_ros.motion.kmeans import kmeans_plus_plus
from vggt4d_ros.motion.kmeans import KMeansConfig
from vggt4d_ros.motion.kmeans import seed_uniforms


def _reference_distances(points, norms, centroids):
    base = norms.unsqueeze(-1) + (centroids * centroids).sum(-1).unsqueeze(1)
    return _reference_cross_term(base, points, centroids).clamp_min_(0)


def _reference_cross_term(base, points, centroids):
    if points.shape[-1] > kmeans_module.SMALL_DIM:
        return torch.baddbmm(base, points, centroids.transpose(1, 2), alpha=-2)
    scaled = centroids.transpose(1, 2).unsqueeze(1) * -2
    out = base.expand(points.shape[0], points.shape[1], centroids.shape[1]).clone()
    for dim in range(points.shape[-1]):
        out.addcmul_(points[..., dim:dim + 1], scaled[:, :, dim])
    return out


def _reference_sample(weights, uniforms):
    cdf = torch.cumsum(weights, dim=1)
    total = cdf[:, -1:]
    target = torch.minimum(uniforms * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target, right=True).clamp_max_(weights.shape[1] - 1)


def _reference_plus_plus(points, valid, uniforms):
    rows = torch.arange(points.shape[0], device=points.device).unsqueeze(1)
    weight = valid.float()
    weight = torch.where(weight.sum(1, keepdim=True) > 0, weight, torch.ones_like(weight))
    norms = (points * points).sum(-1)
    first = _reference_sample(weight, uniforms[0, :, :1])
    centroids = [points[rows, first]]
    closest = _reference_distances(points, norms, centroids[0]).squeeze(-1)
    for step in range(1, uniforms.shape[0]):
        prob = closest * weight + 1e-30 * weight
        picks = _reference_sample(prob, uniforms[step])
        candidates = points[rows, picks]
        trial = torch.minimum(closest.unsqueeze(-1),
                              _reference_distances(points, norms, candidates))
        best = (trial * weight.unsqueeze(-1)).sum(dim=1).argmin(dim=1, keepdim=True)
        centroids.append(candidates[rows, best])
        closest = trial[rows, :, best].squeeze(1)
    return torch.cat(centroids, dim=1)


def _reference_assign(points, centroids):
    norms = (centroids * centroids).sum(-1).unsqueeze(1)
    return _reference_cross_term(norms, points, centroids).argmin(dim=-1)


def _reference_kmeans(points, config, valid, uniforms):
    centroids = _reference_plus_plus(points, valid, uniforms)
    weight = valid.float().unsqueeze(-1)
    ids = torch.arange(config.clusters, device=points.device)
    scale = None
    if config.tolerance is not None:
        total = weight.sum(1).clamp_min(1)
        mean = (points * weight).sum(1) / total
        scale = (((points - mean.unsqueeze(1)) ** 2 * weight).sum(1) / total).mean()
    for _ in range(config.iterations):
        member = (_reference_assign(points, centroids).unsqueeze(-1) == ids).float() * weight
        sums = torch.bmm(member.transpose(1, 2), points)
        sizes = member.sum(1).unsqueeze(-1)
        updated = torch.where(sizes > 0, sums / sizes.clamp_min(1), centroids)
        shift = ((updated - centroids) ** 2).sum(-1).max()
        centroids = updated
        if scale is not None and bool(shift <= config.tolerance * scale):
            break
    labels = _reference_assign(points, centroids)
    return torch.where(valid, labels, torch.full_like(labels, -1)), centroids


def _case(batch, count, dims, fraction=1.0, padding=0, seed=0):
    """Random clustered points [B,M+padding,C] and a validity mask (padding rows invalid)."""
    generator = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(batch, 12, dims, generator=generator)
    which = torch.randint(0, 12, (batch, count), generator=generator)
    points = centres.gather(1, which.unsqueeze(-1).expand(-1, -1, dims))
    points = points + torch.randn(batch, count, dims, generator=generator)
    valid = torch.rand(batch, count, generator=generator) < fraction
    return F.pad(points, (0, 0, 0, padding)), F.pad(valid, (0, padding))


CASES = {
    'features': dict(batch=1, count=1500, dims=64),
    'features-wide': dict(batch=1, count=600, dims=256),
    'features-odd-dims': dict(batch=2, count=400, dims=9, fraction=0.6),
    'points3d-padded': dict(batch=4, count=1500, dims=3, fraction=0.7, padding=548),
    'points3d-sparse': dict(batch=3, count=300, dims=3, fraction=0.04, padding=212),
    'points2d': dict(batch=2, count=200, dims=2, fraction=0.5),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_kmeans_matches_the_reference_bit_for_bit(name):
    points, valid = _case(**CASES[name])
    clusters = 30 if points.shape[-1] <= 3 else 24
    config = KMeansConfig(clusters=clusters, iterations=8)
    uniforms = seed_uniforms(clusters, points.shape[0], config.seed)
    seeds = kmeans_plus_plus(points, valid, uniforms)
    assert torch.equal(seeds, _reference_plus_plus(points, valid, uniforms))
    labels, centroids = kmeans(points, config, valid, uniforms)
    ref_labels, ref_centroids = _reference_kmeans(points, config, valid, uniforms)
    assert torch.equal(labels, ref_labels)
    assert torch.equal(centroids, ref_centroids)
    assert (labels[~valid] == -1).all() and (labels[valid] >= 0).all()


def test_degenerate_sets_match_the_reference():
    """Duplicates (fewer distinct points than k), one constant set, one set without points."""
    generator = torch.Generator().manual_seed(5)
    distinct = torch.randn(2, 4, 3, generator=generator)
    points = distinct.repeat(1, 50, 1)  # [2,200,3], 4 distinct points per set
    points = torch.cat([points, torch.full((1, 200, 3), 0.7), torch.randn(1, 200, 3)])
    valid = torch.ones(4, 200, dtype=torch.bool)
    valid[3] = False
    config = KMeansConfig(clusters=10, iterations=5)
    uniforms = seed_uniforms(10, 4, 3)
    labels, centroids = kmeans(points, config, valid, uniforms)
    ref_labels, ref_centroids = _reference_kmeans(points, config, valid, uniforms)
    assert torch.equal(labels, ref_labels) and torch.equal(centroids, ref_centroids)
    assert labels[0].unique().numel() == 4 and (labels[3] == -1).all()


def test_tolerance_stop_matches_the_reference():
    points, valid = _case(batch=2, count=800, dims=16, fraction=0.8, seed=4)
    config = KMeansConfig(clusters=12, iterations=50, tolerance=1e-4)
    uniforms = seed_uniforms(12, 2, config.seed)
    labels, centroids = kmeans(points, config, valid, uniforms)
    ref_labels, ref_centroids = _reference_kmeans(points, config, valid, uniforms)
    assert torch.equal(labels, ref_labels) and torch.equal(centroids, ref_centroids)


def test_largest_draw_times_a_total_is_the_float_below_the_total():
    """The identity that replaces the reference's nextafter clamp in every seeding step."""
    largest = torch.tensor(kmeans_module.LARGEST_DRAW)
    assert largest == torch.tensor(1.0).nextafter(torch.tensor(0.0))
    generator = torch.Generator().manual_seed(0)
    scales = 10.0 ** torch.randint(-30, 30, (20000,), generator=generator).float()
    totals = torch.cat([torch.rand(20000, generator=generator) * scales,
                        2.0 ** torch.arange(-90.0, 90.0)])
    assert torch.equal(largest * totals, torch.nextafter(totals, torch.zeros_like(totals)))


def test_draws_of_one_match_the_reference():
    """u = 1 (outside rand's range) still picks like the reference's clamped target."""
    points, valid = _case(batch=3, count=400, dims=3, fraction=0.5, padding=112, seed=7)
    config = KMeansConfig(clusters=12, iterations=3)
    uniforms = seed_uniforms(12, 3, config.seed)
    uniforms[::2] = 1.0
    labels, centroids = kmeans(points, config, valid, uniforms)
    ref_labels, ref_centroids = _reference_kmeans(points, config, valid, uniforms)
    assert torch.equal(labels, ref_labels) and torch.equal(centroids, ref_centroids)


def test_non_finite_points_do_not_index_out_of_range():
    points, valid = _case(batch=2, count=300, dims=3)
    points[0, 5] = float('inf')
    points[1, 7] = float('nan')
    labels, _ = kmeans(points, KMeansConfig(clusters=8, iterations=2), valid)
    assert labels.shape == (2, 300) and (labels < 8).all()


def _has_cxx_compiler() -> bool:
    return any(shutil.which(name) for name in ('g++', 'c++', 'clang++'))


@pytest.mark.skipif(not _has_cxx_compiler(), reason='CPU torch.compile needs a C++ compiler')
def test_compiled_steps_match_the_eager_steps():
    """The torch.compile path (inductor, here its CPU backend) clusters like the eager one."""
    for dims, fraction in ((24, 1.0), (3, 0.6)):
        points, valid = _case(batch=2, count=300, dims=dims, fraction=fraction, seed=dims)
        config = KMeansConfig(clusters=10, iterations=4)
        uniforms = seed_uniforms(10, 2, config.seed)
        steps = kmeans_module.KMeansSteps(compiled=True)
        labels, centroids = kmeans(points, config, valid, uniforms, steps=steps)
        eager_labels, eager_centroids = kmeans(points, config, valid, uniforms)
        assert not steps.seed_step.failed, steps.seed_step.error
        assert not steps.lloyd_step.failed, steps.lloyd_step.error
        assert torch.equal(labels, eager_labels)
        torch.testing.assert_close(centroids, eager_centroids, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not _has_cxx_compiler(), reason='CPU torch.compile needs a C++ compiler')
def test_dynamic_compiled_steps_serve_every_point_count_with_one_compilation():
    """The refinement's 3D k-means: one compilation for all candidate buckets, eager results."""
    from torch._dynamo.utils import counters

    config = KMeansConfig(clusters=10, iterations=4)
    uniforms = seed_uniforms(10, 2, config.seed)
    steps = kmeans_module.KMeansSteps(compiled=True, dynamic=True)
    seed_step, lloyd_step = steps.seed_step, steps.lloyd_step
    graphs = []
    for count, padding in ((300, 212), (700, 324), (1500, 548)):  # three padded buckets
        points, valid = _case(batch=2, count=count, dims=3, fraction=0.6, padding=padding,
                              seed=count)
        labels, centroids = kmeans(points, config, valid, uniforms, steps=steps)
        eager_labels, eager_centroids = kmeans(points, config, valid, uniforms)
        assert not seed_step.failed and not lloyd_step.failed, (seed_step.error,
                                                                lloyd_step.error)
        assert (labels == eager_labels).float().mean() >= 0.999
        torch.testing.assert_close(centroids, eager_centroids, rtol=1e-4, atol=1e-4)
        graphs.append(counters['stats']['unique_graphs'])
    # Whatever the first size compiled serves the other two (no new graph per size).
    assert graphs[0] > 0 and graphs[1] == graphs[0] and graphs[2] == graphs[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('compiled', [False, True])
def test_cuda_matches_the_reference(compiled):
    """On CUDA: the seeding picks and labels of the reference (fp32 rounding ties aside)."""
    points, valid = _case(batch=4, count=3000, dims=3, fraction=0.7, padding=1096)
    features, _ = _case(batch=1, count=8288, dims=1024, seed=1)
    for data, mask, clusters in ((points, valid, 30), (features, None, 64)):
        data = data.cuda()
        mask = torch.ones(data.shape[:2], dtype=torch.bool) if mask is None else mask
        mask = mask.cuda()
        config = KMeansConfig(clusters=clusters)
        uniforms = seed_uniforms(clusters, data.shape[0], config.seed).cuda()
        labels, _ = kmeans(data, config, mask, uniforms, compiled=compiled)
        ref_labels, _ = _reference_kmeans(data, config, mask, uniforms)
        agree = (labels == ref_labels).float().mean().item()
        assert agree >= (0.999 if not compiled else 0.99), agree


def test_all_valid_default_matches_the_reference():
    points, valid = _case(batch=1, count=900, dims=32, seed=9)
    config = KMeansConfig(clusters=20, iterations=6)
    uniforms = seed_uniforms(20, 1, config.seed)
    labels, centroids = kmeans(points, config, None, uniforms)
    ref_labels, ref_centroids = _reference_kmeans(points, config, valid, uniforms)
    assert valid.all()
    assert torch.equal(labels, ref_labels) and torch.equal(centroids, ref_centroids)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_graph_of_the_compiled_coarse_stage_replays_the_compiled_run():
    """compile_kmeans under GraphedFunction: the replay equals the compiled eager run."""
    from vggt4d_ros.motion.coarse import coarse_mask_tensors
    from vggt4d_ros.motion.coarse import CoarseConfig
    from vggt4d_ros.motion.graphs import GraphedFunction
    generator = torch.Generator().manual_seed(11)
    features = torch.randn(4, 28 * 37, 1024, generator=generator).cuda()
    saliency = torch.rand(4, 28, 37, generator=generator).cuda()
    uniforms = seed_uniforms(64, 1, 42).cuda()
    config = CoarseConfig(compile_kmeans=True)
    kwargs = dict(image_hw=(392, 518), config=config)
    graphed = GraphedFunction(coarse_mask_tensors)
    replayed = graphed(saliency, features, uniforms, **kwargs)
    replayed = graphed(saliency, features, uniforms, **kwargs)  # a replay, not the capture
    compiled = coarse_mask_tensors(saliency, features, uniforms, **kwargs)
    eager = coarse_mask_tensors(saliency, features, uniforms, image_hw=(392, 518),
                                config=CoarseConfig())
    assert not graphed.failed and graphed.captures == 1
    assert torch.equal(replayed[4], compiled[4]) and torch.equal(replayed[3], compiled[3])
    assert (compiled[4] == eager[4]).float().mean() >= 0.99


def test_chunked_cluster_sums_equal_one_product():
    from vggt4d_ros.motion.kmeans import _member_sums, SUM_CHUNK
    generator = torch.Generator().manual_seed(7)
    for count in (SUM_CHUNK, SUM_CHUNK + 1, 3 * SUM_CHUNK - 5):
        labels = torch.randint(0, 6, (2, count), generator=generator)
        member = torch.nn.functional.one_hot(labels, 6).float()
        points = torch.randn(2, count, 3, generator=generator, dtype=torch.float64).float()
        expected = torch.bmm(member.double().transpose(1, 2), points.double())
        torch.testing.assert_close(_member_sums(member, points).double(), expected,
                                   rtol=1e-5, atol=1e-4)
