# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Coarse dynamic masks (VGGT4D stage 1c): feature clustering, upsampling, adaptive multi-Otsu.

1. k-means (k=64) over the DINOv2 patch features of all frames of the window jointly; every
   patch's saliency is replaced by the mean saliency of its cluster, then min-max per frame.
2. Bilinear upsampling to network resolution (align_corners=False).
3. One threshold for the whole window: multi-Otsu with K in {2,3,4} classes on a 256-bin
   histogram (as ``skimage.filters.threshold_multiotsu``), score(K) = population variance of
   the K class means / sqrt(K); the highest threshold of the best K. mask = value > tau.

A multi-camera window is one window here: the clustering and the threshold run over all
views and steps together (why: docs/method.md, section 7).

Everything stays on the device; no host synchronisation is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Sequence

import torch
import torch.nn.functional as F

from vggt4d_ros.motion.cues import minmax_per_frame
from vggt4d_ros.motion.kmeans import kmeans
from vggt4d_ros.motion.kmeans import KMeansConfig
from vggt4d_ros.motion.kmeans import KMeansSteps


@dataclass(frozen=True)
class CoarseConfig:
    """Coarse-mask settings (release defaults).

    Attributes:
        kmeans_tolerance: optional early stop (costs one host sync per iteration).
        otsu_classes: candidate numbers of classes.

    """

    clusters: int = field(default=64, metadata={
        'description': 'feature k-means clusters.', 'range': (1, 4096)})
    kmeans_iterations: int = field(default=30, metadata={
        'description': 'Lloyd iterations.', 'range': (1, 10000)})
    kmeans_tolerance: float | None = None
    seed: int = field(default=42, metadata={
        'description': 'k-means++ seed.', 'range': (0, 2147483647)})
    otsu_classes: tuple[int, ...] = (2, 3, 4)
    otsu_bins: int = field(default=256, metadata={
        'description': 'histogram bins.', 'range': (2, 65536)})
    eps: float = field(default=1e-6, metadata={
        'description': 'min-max epsilon.', 'range': (0.0, 1.0)})
    compile_kmeans: bool = field(default=False, metadata={
        'description':
            'on CUDA, run the k-means steps through ``torch.compile`` (fewer, fused kernels; '
            'compiles once per window shape on first use, which takes seconds; may round '
            'differently from the eager steps). Ignored on the CPU.'})


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
    uniforms: torch.Tensor | None = None, steps: KMeansSteps | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each patch's saliency by its feature cluster's mean, then min-max per frame.

    Args:
        saliency: [S,hp,wp].
        features: [S,N,C] patch features, N = hp*wp.
        uniforms: k-means++ draws ``seed_uniforms(k, 1, seed)`` on the device (k of
            :func:`feature_clusters`); None draws them inside (not CUDA-graph capturable).
        steps: the caller's compiled k-means steps, used with ``config.compile_kmeans`` on
            CUDA (None: compiled for this call only).

    Returns:
        smoothed [S,hp,wp] float32 and labels [S,hp,wp] int64.

    """
    frames, height, width = saliency.shape
    flat_feat = features.reshape(1, -1, features.shape[-1])
    km = feature_clusters(config, flat_feat.shape[1])
    clusters = km.clusters
    compiled = config.compile_kmeans and flat_feat.is_cuda
    labels, _ = kmeans(flat_feat, km, uniforms=uniforms, compiled=compiled,
                       steps=steps if compiled else None)
    labels = labels[0]
    values = saliency.reshape(-1).float()
    # One-hot matmul instead of index_add_: CUDA float atomics would make the sums (and so
    # the threshold) vary in the last bit from run to run. (F.one_hot would sync the host.)
    # Rows of the identity: the float one-hot in one gather kernel.
    onehot = F.embedding(labels, torch.eye(clusters, device=labels.device))
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
    low, high = torch.aminmax(flat)
    same = high <= low
    low = torch.where(same, low - 0.5, low)
    high = torch.where(same, high + 0.5, high)
    edges = torch.linspace(0, 1, bins + 1, device=flat.device, dtype=flat.dtype)
    edges = low + (high - low) * edges
    index = ((flat - low) * (bins / (high - low))).long().clamp(0, bins - 1)
    # numpy's correction step: move values that rounding put on the wrong side of an edge.
    # (No value lies below edges[0], so the index stays >= 0.)
    index = torch.add(index, flat < edges[index], alpha=-1)
    # Upper edge of every bin, +inf for the last one (numpy keeps the maximum in it).
    upper = F.pad(edges[1:-1], (0, 1), value=math.inf)
    index = index + (flat >= upper[index])
    # Float64 sums of ones are exact integers, so the atomic adds are deterministic; bincount
    # would sync the host on CUDA.
    counts = flat.new_zeros(bins).scatter_add_(0, index, flat.new_ones(()).expand_as(index))
    return counts, (edges[:-1] + edges[1:]) / 2


def _class_score_table(prob: torch.Tensor) -> torch.Tensor:
    """H[i,j] = (sum_{b=i..j} p_b b)^2 / sum_{b=i..j} p_b for i <= j (0 for empty, -inf i>j)."""
    bins = prob.shape[0]
    index = torch.arange(bins, device=prob.device, dtype=prob.dtype)
    zeroth = F.pad(torch.cumsum(prob, 0), (1, 0))
    first = F.pad(torch.cumsum(prob * index, 0), (1, 0))
    mass = zeroth[1:].unsqueeze(0) - zeroth[:-1].unsqueeze(1)  # [i,j]: bins i..j
    moment = first[1:].unsqueeze(0) - first[:-1].unsqueeze(1)
    table = torch.where(mass > 0, moment * moment / mass.clamp_min(1e-300), 0.0)
    lower = torch.ones(bins, bins, dtype=torch.bool, device=prob.device).tril_(-1)
    return table.masked_fill_(lower, -math.inf)


def _multiotsu_search(prob: torch.Tensor, classes: Sequence[int],
                      table: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Optimal threshold bin indices for several class counts, from one dynamic programme.

    After j rounds, ``best[t]`` is the best score of j + 1 classes covering bins 0..t, so the
    rounds of the largest K also serve every smaller K.

    Returns:
        for each K of ``classes``, [K-1] int64 bin indices t_1 < ... < t_{K-1}.

    """
    table = _class_score_table(prob) if table is None else table
    best = table[0]  # best[t]: best score of the classes up to and including bin t
    bests, back = [best], []
    for _ in range(max(classes) - 2):
        # cand[t', t] = best[t'] + H[t'+1, t] for t' < bins - 1; max gives the value and the
        # first maximising t' in one kernel (columns without a split are all -inf -> t' = 0).
        best, choice = (best[:-1].unsqueeze(1) + table[1:]).max(dim=0)
        bests.append(best)
        back.append(choice)
    found = []
    for count in classes:
        final = bests[count - 2][:-1] + table[1:, -1]
        # Backtrack with gather: indexing by a 0-dim device tensor would read it to the host.
        thresholds = [final.argmax().view(1)]
        for choice in reversed(back[:count - 2]):
            thresholds.append(choice.gather(0, thresholds[-1]))
        found.append(torch.cat(thresholds[::-1]))
    return found


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
    return _multiotsu_search(prob, (classes,), table)[0]


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


#: Values per piece of :func:`_at_or_above` (its [piece, T] buffers: ~1 GB in float64 with the
#: 7 thresholds of K = 2, 3, 4). An 8-frame window at 392x518 (1.6 M values) is one piece.
AT_OR_ABOVE_PIECE = 1 << 24


def _at_or_above(values: torch.Tensor, thresholds: torch.Tensor,
                 piece: int = AT_OR_ABOVE_PIECE) -> torch.Tensor:
    """Sum and count of the values >= each threshold.

    Column reductions, not a matrix product: a product with ~10^6 inner and a handful of outer
    entries is the shape cuBLAS runs on a few tiles only. A long window's values go in pieces
    of ``piece`` (summed in a fixed order), so the [N,T] buffers stay bounded.

    Args:
        values: [N] float64.
        thresholds: [T] float64.

    Returns:
        [T,2] float64: (sum, count) per threshold; counts are exact integers.

    """
    total = None
    for start in range(0, max(values.shape[0], 1), piece):
        column = values[start:start + piece].unsqueeze(1)
        above = column >= thresholds  # [n,T]
        sums = torch.where(above, column, 0.0).sum(0)
        part = torch.stack([sums, above.sum(0, dtype=values.dtype)], dim=1)
        total = part if total is None else total + part
    return total


def adaptive_multiotsu(
    values: torch.Tensor, classes: Sequence[int] = (2, 3, 4), bins: int = 256
) -> torch.Tensor:
    """Release's adaptive multi-Otsu: the highest threshold of the best-scoring K.

    score(K) = population variance of the K class means (classes from ``np.digitize`` of the
    values by the thresholds) / sqrt(K). K without a valid split, or with an empty class,
    never wins; if no K is valid the threshold is +inf (nothing exceeds it).

    Class c of K holds the values v with t_c <= v < t_{c+1} (t_0 = -inf, t_K = +inf), so its
    sum and count are differences of the sums and counts at or above each threshold: one pass
    over the values for every K at once, instead of one per class.

    Args:
        values: any shape, finite.

    Returns:
        0-dim float64 threshold.

    """
    flat = values.reshape(-1).double()
    counts, centres = histogram_like_numpy(flat, bins)
    prob = counts / counts.sum()
    occupied = (counts > 0).sum()
    indices = _multiotsu_search(prob, classes, _class_score_table(prob))
    # Row 0: every value (threshold -inf); then the thresholds of each K in turn.
    thresholds = F.pad(centres[torch.cat(indices)], (1, 0), value=-math.inf)
    above = _at_or_above(flat, thresholds)  # [1+T,2]
    scores, tops, enough, offset = [], [], [], 1
    for count in classes:
        lower = torch.cat([above[:1], above[offset:offset + count - 1]])  # [K,2]
        stats = lower - F.pad(lower[1:], (0, 0, 0, 1))  # class sums and counts
        means = stats[:, 0] / stats[:, 1]  # NaN for an empty class
        scores.append(means.var(correction=0) / math.sqrt(count))
        tops.append(thresholds[offset + count - 2])
        enough.append(occupied >= count)  # else skimage raises
        offset += count - 1
    scores_t = torch.stack(scores)
    valid = torch.isfinite(scores_t) & torch.stack(enough)
    # First maximum, like the release's strict '>'; gathered, not indexed (no host read).
    # Without any valid K, index 0 is picked and its top is +inf.
    best = torch.where(valid, scores_t, -math.inf).argmax().view(1)
    return torch.where(valid, torch.stack(tops), math.inf).gather(0, best)[0]


def coarse_masks(
    saliency: torch.Tensor,
    features: torch.Tensor,
    image_hw: tuple[int, int],
    config: CoarseConfig = CoarseConfig(),
    uniforms: torch.Tensor | None = None,
    steps: KMeansSteps | None = None,
) -> CoarseResult:
    """Stage 1c of VGGT4D.

    Args:
        saliency: [S,hp,wp] dynamic saliency D.
        features: [S,N,C] DINOv2 patch features of the same frames.
        image_hw: network resolution (h, w).
        uniforms: k-means++ draws on the device (see :func:`cluster_smooth`); pass them to
            make this function CUDA-graph capturable (:func:`coarse_mask_tensors`).
        steps: compiled k-means steps the caller keeps (see :func:`cluster_smooth`).

    Returns:
        CoarseResult with masks [S,h,w] bool.

    """
    saliency = torch.nan_to_num(saliency.float(), nan=0.0, posinf=0.0, neginf=0.0)
    smoothed, labels = cluster_smooth(saliency, features, config, uniforms, steps)
    upsampled = F.interpolate(smoothed.unsqueeze(1), size=image_hw, mode='bilinear',
                              align_corners=False).squeeze(1)
    threshold = adaptive_multiotsu(upsampled, config.otsu_classes, config.otsu_bins)
    masks = upsampled > threshold.to(upsampled.dtype)
    return CoarseResult(smoothed=smoothed, upsampled=upsampled, threshold=threshold,
                        masks=masks, labels=labels)


def coarse_mask_tensors(saliency: torch.Tensor, features: torch.Tensor, uniforms: torch.Tensor,
                        *, image_hw: tuple[int, int], config: CoarseConfig,
                        steps: KMeansSteps | None = None) -> tuple[torch.Tensor, ...]:
    """:func:`coarse_masks` as a tuple (the form :class:`motion.graphs.GraphedFunction` takes).

    Returns:
        (smoothed, upsampled, threshold, masks, labels), the fields of :class:`CoarseResult`.

    """
    result = coarse_masks(saliency, features, image_hw, config, uniforms, steps)
    return (result.smoothed, result.upsampled, result.threshold, result.masks, result.labels)
