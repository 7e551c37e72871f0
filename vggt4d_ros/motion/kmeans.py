# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Batched, seeded k-means in torch (k-means++ seeding, Lloyd iterations), GPU friendly.

The release clusters with scikit-learn on the CPU (``KMeans(random_state=42)``). This is the
same algorithm family run on the pipeline's device: greedy k-means++ seeding (2 + ln k
candidates per step, like scikit-learn), then a fixed number of Lloyd iterations. A fixed count
means no host synchronisation; an optional tolerance stops earlier at the price of one sync per
iteration. Results are deterministic for a given seed, not bit-identical to scikit-learn.

The seeding's random numbers are drawn up front on the CPU from the seed (``seed_uniforms``)
and turned into D^2-proportional picks by inverse-CDF sampling (cumsum + searchsorted). So the
draws do not depend on the device, and with ``uniforms`` passed in the whole clustering is a
fixed sequence of device kernels without generator state: it can be captured in a CUDA graph
(``motion.graphs``), which removes the launch overhead of its ~1000 small kernels.

Batches of point sets with different sizes are padded and carry a validity mask, so the 3D
clustering of every frame of a window runs as one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import torch


@dataclass(frozen=True)
class KMeansConfig:
    """k-means settings.

    Attributes:
        clusters: k.
        iterations: Lloyd iterations (upper bound when ``tolerance`` is set).
        tolerance: stop when the largest centroid move, relative to the data's mean variance,
            falls below it (sklearn's criterion); None = always run ``iterations`` (no syncs).
        seed: seed of the k-means++ generator.

    """

    clusters: int
    iterations: int = 30
    tolerance: float | None = None
    seed: int = 42


#: Up to this many coordinates the cross term x.c is summed coordinate by coordinate: cuBLAS
#: runs [B,M,3] x [B,3,k] fp32 products with tiny-tile kernels at ~5 ms each on an H200 for
#: M = 262144 (the 3D k-means of the refinement), the element-wise sum takes well under 1 ms.
SMALL_DIM = 4


def _cross_term(base: torch.Tensor, points: torch.Tensor,
                centroids: torch.Tensor) -> torch.Tensor:
    """Compute ``base - 2 x.c`` for [B,M,C] points and [B,k,C] centroids -> [B,M,k]."""
    if points.shape[-1] > SMALL_DIM:
        return torch.baddbmm(base, points, centroids.transpose(1, 2), alpha=-2)
    scaled = centroids.transpose(1, 2).unsqueeze(1) * -2  # [B,1,C,k]
    out = base.expand(points.shape[0], points.shape[1], centroids.shape[1]).clone()
    for dim in range(points.shape[-1]):
        out.addcmul_(points[..., dim:dim + 1], scaled[:, :, dim])
    return out


def _squared_distances(points: torch.Tensor, point_norms: torch.Tensor,
                       centroids: torch.Tensor) -> torch.Tensor:
    """[B,M,C] x [B,k,C] -> [B,M,k] squared Euclidean distances (clamped at 0).

    ``point_norms`` [B,M] = ||x||^2 is passed in because it never changes between calls.
    """
    centroid_norms = (centroids * centroids).sum(-1).unsqueeze(1)  # [B,1,k]
    base = point_norms.unsqueeze(-1) + centroid_norms
    return _cross_term(base, points, centroids).clamp_min_(0)


def _assign(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Nearest centroid [B,M]: argmin_k ||c_k||^2 - 2 x.c_k (||x||^2 does not matter)."""
    centroid_norms = (centroids * centroids).sum(-1).unsqueeze(1)
    return _cross_term(centroid_norms, points, centroids).argmin(dim=-1)


def seed_uniforms(clusters: int, batch: int, seed: int,
                  local_trials: int | None = None) -> torch.Tensor:
    """Uniform draws of the k-means++ seeding, from a CPU generator seeded with ``seed``.

    Returns:
        [k,B,L] float32 in [0,1) on the CPU: row 0 column 0 picks the first centre, row i the
        ``L = local_trials`` candidates of step i (default 2 + floor(ln k)).

    """
    trials = local_trials or 2 + int(math.log(clusters))
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(clusters, batch, trials, generator=generator)


def _sample_proportional(weights: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Draw indices with probability proportional to ``weights`` (inverse CDF).

    Args:
        weights: [B,M] >= 0 with a positive sum per row.
        uniforms: [B,L] in [0,1).

    Returns:
        [B,L] int64; an index with zero weight is never returned (its CDF step is empty).

    """
    cdf = torch.cumsum(weights, dim=1)
    total = cdf[:, -1:]
    # Keep the target strictly below the total so a pick always exists, even when u * total
    # rounds up to it.
    target = torch.minimum(uniforms * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target, right=True).clamp_max_(weights.shape[1] - 1)


def kmeans_plus_plus(
    points: torch.Tensor, valid: torch.Tensor, uniforms: torch.Tensor
) -> torch.Tensor:
    """Seed centroids with greedy k-means++ (as scikit-learn does).

    Each step draws the candidates of its row of ``uniforms`` with probability proportional to
    D^2 and keeps the one that lowers the total D^2 most.

    Args:
        points: [B,M,C] float32.
        valid: [B,M] bool; invalid points are never picked.
        uniforms: [k,B,L] from :func:`seed_uniforms`, on ``points.device``.

    Returns:
        [B,k,C] centroids. When a set has fewer distinct valid points than k, the extra
        centroids repeat existing points (their clusters stay empty).

    """
    clusters = uniforms.shape[0]
    batch = points.shape[0]
    rows = torch.arange(batch, device=points.device)
    weight = valid.float()
    # Sets without any valid point still sample (from all points) so shapes stay static.
    weight = torch.where(weight.sum(1, keepdim=True) > 0, weight, torch.ones_like(weight))
    norms = (points * points).sum(-1)  # [B,M]
    first = _sample_proportional(weight, uniforms[0, :, :1])  # [B,1]
    centroids = [points[rows.unsqueeze(1), first]]  # [B,1,C]
    closest = _squared_distances(points, norms, centroids[0]).squeeze(-1)  # [B,M]
    for step in range(1, clusters):
        # D^2 sampling; where every valid point is already a centroid (D^2 = 0 everywhere)
        # fall back to uniform over the valid points (a tiny additive weight).
        prob = closest * weight + 1e-30 * weight
        picks = _sample_proportional(prob, uniforms[step])  # [B,L]
        candidates = points[rows.unsqueeze(1), picks]  # [B,L,C]
        trial_closest = torch.minimum(closest.unsqueeze(-1),
                                      _squared_distances(points, norms, candidates))  # [B,M,L]
        # An element-wise product and a reduction, not einsum: einsum makes this a batched
        # matrix product with a huge inner dimension and a 1-wide output, which cuBLAS runs on
        # one tile per batch (~5 ms per step on an H200 at M = 262144, 30 steps per window).
        potential = (trial_closest * weight.unsqueeze(-1)).sum(dim=1)
        best = potential.argmin(dim=1, keepdim=True)  # [B,1]
        centroids.append(candidates[rows.unsqueeze(1), best])  # [B,1,C]
        closest = trial_closest[rows.unsqueeze(1), :, best].squeeze(1)  # [B,M]
    return torch.cat(centroids, dim=1)


def kmeans(
    points: torch.Tensor, config: KMeansConfig, valid: torch.Tensor | None = None,
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster each point set of a batch.

    Args:
        points: [B,M,C] (any float dtype; computed in float32).
        config: k, iterations, tolerance, seed.
        valid: [B,M] bool, or None for all valid.
        uniforms: [k,B,L] seeding draws on the points' device (``seed_uniforms(k, B,
            config.seed)``); None draws them here (a small host-to-device copy, which a
            CUDA graph capture cannot contain: pass them in when capturing).

    Returns:
        labels [B,M] int64 (-1 for invalid points) and centroids [B,k,C] float32.

    """
    points = points.float()
    batch, count, _ = points.shape
    if valid is None:
        valid = torch.ones(batch, count, dtype=torch.bool, device=points.device)
    if uniforms is None:
        uniforms = seed_uniforms(config.clusters, batch, config.seed).to(points.device)
    centroids = kmeans_plus_plus(points, valid, uniforms)
    weight = valid.float().unsqueeze(-1)  # [B,M,1]
    cluster_ids = torch.arange(config.clusters, device=points.device)
    scale = None
    if config.tolerance is not None:
        total = weight.sum(1).clamp_min(1)
        mean = (points * weight).sum(1) / total
        scale = (((points - mean.unsqueeze(1)) ** 2 * weight).sum(1) / total).mean()
    for _ in range(config.iterations):
        labels = _assign(points, centroids)
        # One-hot membership as a comparison (deterministic matmul; no scatter atomics).
        member = (labels.unsqueeze(-1) == cluster_ids).float() * weight  # [B,M,k]
        sums = torch.bmm(member.transpose(1, 2), points)  # [B,k,C]
        sizes = member.sum(1).unsqueeze(-1)  # [B,k,1]
        # Empty clusters keep their centroid (sklearn relocates them; rare with ++ seeding).
        updated = torch.where(sizes > 0, sums / sizes.clamp_min(1), centroids)
        if scale is not None:
            shift = ((updated - centroids) ** 2).sum(-1).max()
            centroids = updated
            if bool(shift <= config.tolerance * scale):
                break
        else:
            centroids = updated
    labels = _assign(points, centroids)
    labels = torch.where(valid, labels, torch.full_like(labels, -1))
    return labels, centroids
