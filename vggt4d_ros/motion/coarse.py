# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Coarse dynamic masks (VGGT4D stage 1c): feature clustering, upsampling, adaptive multi-Otsu.

1. k-means (k=64) over the DINOv2 patch features of all frames of the window jointly; every
   patch's saliency is replaced by the mean saliency of its cluster, then min-max per frame.
2. Bilinear upsampling to network resolution (align_corners=False).
3. One threshold for the whole window: multi-Otsu with K in {2,3,4} classes on a 256-bin
   histogram (as ``skimage.filters.threshold_multiotsu``), score(K) = population variance of
   the K class means / sqrt(K); the highest threshold of the best K. mask = value > tau.

Everything stays on the device; no host synchronisation is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Sequence

import torch
import torch.nn.functional as F

from vggt4d_ros.motion.cues import minmax_per_frame
from vggt4d_ros.motion.kmeans import kmeans
from vggt4d_ros.motion.kmeans import KMeansConfig


@dataclass(frozen=True)
class CoarseConfig:
    """Coarse-mask settings (release defaults).

    Attributes:
        clusters: feature k-means clusters.
        kmeans_iterations: Lloyd iterations.
        kmeans_tolerance: optional early stop (costs one host sync per iteration).
        seed: k-means++ seed.
        otsu_classes: candidate numbers of classes.
        otsu_bins: histogram bins.
        eps: min-max epsilon.

    """

    clusters: int = 64
    kmeans_iterations: int = 30
    kmeans_tolerance: float | None = None
    seed: int = 42
    otsu_classes: tuple[int, ...] = (2, 3, 4)
    otsu_bins: int = 256
    eps: float = 1e-6


@dataclass
class CoarseResult:
    """Stage-1c outputs.

    Attributes:
        smoothed: [S,hp,wp] cluster-mean saliency, min-max per frame.
        upsampled: [S,h,w] bilinear upsampling of ``smoothed``.
        threshold: 0-dim tensor tau (+inf when no multi-Otsu split exists).
        masks: [S,h,w] bool, upsampled > tau.
        labels: [S,hp,wp] int64 feature-cluster labels.

    """

    smoothed: torch.Tensor
    upsampled: torch.Tensor
    threshold: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor


def feature_clusters(config: CoarseConfig, points: int) -> KMeansConfig:
    """k-means settings of the feature clustering of ``points`` patches (all frames)."""
    return KMeansConfig(clusters=min(config.clusters, points),
                        iterations=config.kmeans_iterations,
                        tolerance=config.kmeans_tolerance, seed=config.seed)


def cluster_smooth(
    saliency: torch.Tensor, features: torch.Tensor, config: CoarseConfig = CoarseConfig(),
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each patch's saliency by its feature cluster's mean, then min-max per frame.

    Args:
        saliency: [S,hp,wp].
        features: [S,N,C] patch features, N = hp*wp.
        uniforms: k-means++ draws ``seed_uniforms(k, 1, seed)`` on the device (k of
            :func:`feature_clusters`); None draws them inside (not CUDA-graph capturable).

    Returns:
        smoothed [S,hp,wp] float32 and labels [S,hp,wp] int64.

    """
    frames, height, width = saliency.shape
    flat_feat = features.reshape(1, -1, features.shape[-1])
    km = feature_clusters(config, flat_feat.shape[1])
    clusters = km.clusters
    labels, _ = kmeans(flat_feat, km, uniforms=uniforms)
    labels = labels[0]
    values = saliency.reshape(-1).float()
    # One-hot matmul instead of index_add_: CUDA float atomics would make the sums (and so
    # the threshold) vary in the last bit from run to run. (F.one_hot would sync the host.)
    onehot = (labels.unsqueeze(1) == torch.arange(clusters, device=labels.device)).float()
    sums = onehot.t() @ values
    counts = onehot.sum(0)
    means = sums / counts.clamp_min(1)
    smoothed = means[labels].view(frames, height, width)
    return minmax_per_frame(smoothed, config.eps), labels.view(frames, height, width)


def histogram_like_numpy(values: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``np.histogram(values, bins, range=(min, max))`` in torch, with its bin centres.

    A constant input gets numpy's range (v - 0.5, v + 0.5).

    Args:
        values: any shape, finite.

    Returns:
        counts [bins] float64 and bin centres [bins] float64.

    """
    flat = values.reshape(-1).double()
    low, high = flat.min(), flat.max()
    same = high <= low
    low = torch.where(same, low - 0.5, low)
    high = torch.where(same, high + 0.5, high)
    edges = torch.linspace(0, 1, bins + 1, device=flat.device, dtype=flat.dtype)
    edges = low + (high - low) * edges
    index = ((flat - low) * (bins / (high - low))).long().clamp(0, bins - 1)
    # numpy's correction step: move values that rounding put on the wrong side of an edge.
    index = index - (flat < edges[index]).long()
    index = index + ((flat >= edges[index + 1]) & (index != bins - 1)).long()
    # scatter_add_ of integers: exact and deterministic; bincount would sync the host on CUDA.
    counts = torch.zeros(bins, dtype=torch.long, device=flat.device)
    counts = counts.scatter_add_(0, index, torch.ones_like(index)).double()
    return counts, (edges[:-1] + edges[1:]) / 2


def _class_score_table(prob: torch.Tensor) -> torch.Tensor:
    """H[i,j] = (sum_{b=i..j} p_b b)^2 / sum_{b=i..j} p_b for i <= j (0 for empty, -inf i>j)."""
    bins = prob.shape[0]
    index = torch.arange(bins, device=prob.device, dtype=prob.dtype)
    zeroth = torch.cat([prob.new_zeros(1), torch.cumsum(prob, 0)])
    first = torch.cat([prob.new_zeros(1), torch.cumsum(prob * index, 0)])
    mass = zeroth[1:].unsqueeze(0) - zeroth[:-1].unsqueeze(1)  # [i,j]: bins i..j
    moment = first[1:].unsqueeze(0) - first[:-1].unsqueeze(1)
    table = torch.where(mass > 0, moment * moment / mass.clamp_min(1e-300), mass.new_zeros(()))
    upper = torch.ones(bins, bins, dtype=torch.bool, device=prob.device).triu()
    return torch.where(upper, table, torch.full_like(table, -math.inf))


def multiotsu_indices(prob: torch.Tensor, classes: int,
                      table: torch.Tensor | None = None) -> torch.Tensor:
    """Threshold bin indices maximising the between-class variance (exact search by DP).

    Classes are [0,t1], [t1+1,t2], ..., [t_{K-1}+1, bins-1], as in skimage's LUT search;
    ties go to the smallest indices.

    Args:
        prob: [bins] normalised histogram (float64).
        classes: K >= 2.
        table: ``_class_score_table(prob)`` if already computed.

    Returns:
        [K-1] int64 bin indices t_1 < ... < t_{K-1}.

    """
    table = _class_score_table(prob) if table is None else table
    bins = prob.shape[0]
    best = table[0]  # best[t]: best score of the classes up to and including bin t
    back = []
    for _ in range(classes - 2):
        # cand[t', t] = best[t'] + H[t'+1, t]; t' < t.
        cand = best[:-1].unsqueeze(1) + table[1:]
        cand = torch.cat([cand, torch.full((1, bins), -math.inf, dtype=cand.dtype,
                                           device=cand.device)])
        choice = cand.argmax(dim=0)
        best = cand.gather(0, choice.unsqueeze(0)).squeeze(0)
        back.append(choice)
    final = best[:-1] + table[1:, -1]
    # Backtrack with gather: indexing by a 0-dim device tensor would read it to the host.
    thresholds = [final.argmax().view(1)]
    for choice in reversed(back):
        thresholds.append(choice.gather(0, thresholds[-1]))
    return torch.cat(thresholds[::-1])


def threshold_multiotsu(values: torch.Tensor, classes: int, bins: int = 256) -> torch.Tensor:
    """Torch version of ``skimage.filters.threshold_multiotsu`` (float input).

    Returns NaN thresholds where skimage raises (fewer than ``classes`` occupied bins).

    Args:
        values: any shape, finite.

    Returns:
        [classes-1] float64 thresholds (bin centres).

    """
    counts, centres = histogram_like_numpy(values, bins)
    prob = counts / counts.sum()
    occupied = (counts > 0).sum()
    thresholds = centres[multiotsu_indices(prob, classes)]
    return torch.where(occupied >= classes, thresholds, torch.full_like(thresholds, math.nan))


def adaptive_multiotsu(
    values: torch.Tensor, classes: Sequence[int] = (2, 3, 4), bins: int = 256
) -> torch.Tensor:
    """Release's adaptive multi-Otsu: the highest threshold of the best-scoring K.

    score(K) = population variance of the K class means (classes from ``np.digitize`` of the
    values by the thresholds) / sqrt(K). K without a valid split, or with an empty class,
    never wins; if no K is valid the threshold is +inf (nothing exceeds it).

    Args:
        values: any shape, finite.

    Returns:
        0-dim float64 threshold.

    """
    flat = values.reshape(-1).double()
    counts, centres = histogram_like_numpy(flat, bins)
    prob = counts / counts.sum()
    occupied = (counts > 0).sum()
    table = _class_score_table(prob)  # shared by every K
    scores, tops = [], []
    for count in classes:
        thresholds = centres[multiotsu_indices(prob, count, table)]
        thresholds = torch.where(occupied >= count, thresholds,
                                 torch.full_like(thresholds, math.nan))
        region = torch.bucketize(flat, thresholds.nan_to_num(math.inf), right=True)
        # Per-class reductions (deterministic on CUDA, unlike float index_add_).
        means = torch.stack([torch.where(region == c, flat, 0.0).sum() / (region == c).sum()
                             for c in range(count)])
        score = means.var(correction=0) / math.sqrt(count)
        ok = torch.isfinite(score) & ~torch.isnan(thresholds).any()
        scores.append(torch.where(ok, score, torch.full_like(score, -math.inf)))
        tops.append(thresholds[-1])
    scores_t, tops_t = torch.stack(scores), torch.stack(tops)
    # First maximum, like the release's strict '>'; gathered, not indexed (no host read).
    best = scores_t.argmax().view(1)
    best_score, best_top = scores_t.gather(0, best)[0], tops_t.gather(0, best)[0]
    return torch.where(torch.isfinite(best_score), best_top, torch.full_like(best_top, math.inf))


def coarse_masks(
    saliency: torch.Tensor,
    features: torch.Tensor,
    image_hw: tuple[int, int],
    config: CoarseConfig = CoarseConfig(),
    uniforms: torch.Tensor | None = None,
) -> CoarseResult:
    """Stage 1c of VGGT4D.

    Args:
        saliency: [S,hp,wp] dynamic saliency D.
        features: [S,N,C] DINOv2 patch features of the same frames.
        image_hw: network resolution (h, w).
        uniforms: k-means++ draws on the device (see :func:`cluster_smooth`); pass them to
            make this function CUDA-graph capturable (:func:`coarse_mask_tensors`).

    Returns:
        CoarseResult with masks [S,h,w] bool.

    """
    saliency = torch.nan_to_num(saliency.float(), nan=0.0, posinf=0.0, neginf=0.0)
    smoothed, labels = cluster_smooth(saliency, features, config, uniforms)
    upsampled = F.interpolate(smoothed.unsqueeze(1), size=image_hw, mode='bilinear',
                              align_corners=False).squeeze(1)
    threshold = adaptive_multiotsu(upsampled, config.otsu_classes, config.otsu_bins)
    masks = upsampled > threshold.to(upsampled.dtype)
    return CoarseResult(smoothed=smoothed, upsampled=upsampled, threshold=threshold,
                        masks=masks, labels=labels)


def coarse_mask_tensors(saliency: torch.Tensor, features: torch.Tensor, uniforms: torch.Tensor,
                        *, image_hw: tuple[int, int], config: CoarseConfig
                        ) -> tuple[torch.Tensor, ...]:
    """:func:`coarse_masks` as a tuple (the form :class:`motion.graphs.GraphedFunction` takes).

    Returns:
        (smoothed, upsampled, threshold, masks, labels), the fields of :class:`CoarseResult`.

    """
    result = coarse_masks(saliency, features, image_hw, config, uniforms)
    return (result.smoothed, result.upsampled, result.threshold, result.masks, result.labels)
