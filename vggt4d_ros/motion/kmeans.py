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
(``motion.graphs``).

Even replayed from a graph, every kernel costs a few microseconds, and most kernels here are
tiny; so each seeding step and Lloyd iteration is written with as few kernels as the exact
arithmetic allows (in-place products, clamps with tensor bounds, no 0-dim index gathers,
point norms computed once), and on CUDA the two step functions can additionally be fused by
``torch.compile`` (``compiled=True``).

Batches of point sets with different sizes are padded and carry a validity mask, so the 3D
clustering of every frame of a window runs as one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import math
from typing import Callable

import torch
import torch.nn.functional as F

LOG = logging.getLogger(__name__)


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

#: The largest float32 below 1. For a positive normal total t, fl(LARGEST_DRAW * t) is exactly
#: the float below t (t - t 2^-24 lies within half a spacing of it), and rounding is monotonic:
#: draws clamped to it give u * t = min(u * t, nextafter(t, 0)) with one multiplication.
LARGEST_DRAW = 1.0 - 2.0 ** -24

#: Sampling weight of a valid point at D^2 = 0, so that a set whose valid points are all
#: centroids already still draws (uniformly) among its valid points.
TINY_WEIGHT = 1e-30


def _add_cross_term_(out: torch.Tensor, points: torch.Tensor,
                     scaled_centroids: torch.Tensor) -> torch.Tensor:
    """Add ``x . s`` to ``out`` in place, coordinate by coordinate (few coordinates only).

    [B,M,k] += [B,M,C] x [B,k,C]^T with s = -2 c; one multiply-add per coordinate (see
    :data:`SMALL_DIM`). ``out`` must not be a broadcast view.
    """
    for dim in range(points.shape[-1]):
        out.addcmul_(points[..., dim:dim + 1], scaled_centroids[:, :, dim].unsqueeze(1))
    return out


def _cross_term(base: torch.Tensor, points: torch.Tensor,
                centroids: torch.Tensor) -> torch.Tensor:
    """Compute ``base - 2 x.c`` for [B,M,C] points and [B,k,C] centroids -> [B,M,k].

    ``base`` broadcasts to [B,M,k] (e.g. [B,1,k] centroid norms).
    """
    shape = (points.shape[0], points.shape[1], centroids.shape[1])
    if points.shape[-1] > SMALL_DIM:
        return torch.baddbmm(base.expand(shape), points, centroids.transpose(1, 2), alpha=-2)
    # value=-2 scales exactly (a power of two): the same sums as with -2 c precomputed.
    # The first coordinate's multiply-add also materialises the broadcast base (no clone).
    out = torch.addcmul(base.expand(shape), points[..., :1], centroids[:, :, 0].unsqueeze(1),
                        value=-2)
    for dim in range(1, points.shape[-1]):
        out.addcmul_(points[..., dim:dim + 1], centroids[:, :, dim].unsqueeze(1), value=-2)
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
    if points.shape[-1] > SMALL_DIM and torch.compiler.is_compiling():
        # Inductor runs a baddbmm as a copy of the base and a product; a plain product lets it
        # fuse the addition (the same arithmetic: -2 x.c is exact) into the argmin.
        return (centroid_norms + torch.bmm(points, centroids.transpose(1, 2)) * -2).argmin(-1)
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
        weights: [B,M] >= 0 with a positive, finite sum per row.
        uniforms: [B,L] in [0,1).

    Returns:
        [B,L] int64; an index with zero weight is never returned (its CDF step is empty).

    """
    cdf = torch.cumsum(weights, dim=1)
    total = cdf[:, -1:]
    # Keep the target strictly below the total so a pick always exists, even when u * total
    # rounds up to it (or u = 1).
    target = torch.minimum(uniforms * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target, right=True).clamp_max_(weights.shape[1] - 1)


def _gather_rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``values[b, index[b, l]]``: [B,M,C] and [B,L] -> [B,L,C] (one gather kernel)."""
    return values.gather(1, index.unsqueeze(-1).expand(-1, -1, values.shape[-1]))


def _candidate_table(points: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """[B,M+1,C'] rows that one gather turns into candidates: coordinates, ..., norm.

    Few coordinates (:data:`SMALL_DIM`): ``[x, -2 x, ||x||^2]`` (-2 x is exact; the step adds
    it coordinate by coordinate). Otherwise ``[x, 0.., ||x||^2]`` with the row length a
    multiple of 4, so that the candidates' coordinates, a strided view, keep a 16-byte
    aligned leading dimension for the batched product. Row M is a zero row: the index
    ``searchsorted`` returns when no CDF step holds the target, which only non-finite weights
    cause, so the gathers stay in range without a clamp kernel per step.
    """
    dims = points.shape[-1]
    if dims <= SMALL_DIM:
        table = torch.cat([points, points * -2, norms.unsqueeze(-1)], dim=-1)
        return F.pad(table, (0, 0, 0, 1))
    table = points.new_zeros(points.shape[0], points.shape[1] + 1, dims + 4 - dims % 4)
    table[:, :-1, :dims] = points
    table[:, :-1, -1] = norms
    return table


def _seed_step(points: torch.Tensor, table: torch.Tensor, norms: torch.Tensor,
               prob: torch.Tensor, cdf: torch.Tensor, tiny: torch.Tensor,
               uniforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One greedy k-means++ step: draw L candidates by D^2, keep the one that lowers D^2 most.

    The state is ``prob`` = D^2 * valid + ``tiny`` (the sampling weights, tiny = 1e-30 on valid
    points, 0 on invalid ones). The candidates' D^2 after adding a candidate is
    ``min(max(d, tiny), prob)``, which equals ``min(max(d, 0), D^2) + tiny`` for every D^2
    that is 0 or >= 1e-22, and is 0 on invalid points: one clamp with tensor bounds.

    Args:
        points: [B,M,C].
        table: [B,M+1,C'] rows gathered for the candidates (:func:`_candidate_table`).
        norms: [B,M] squared point norms.
        prob: [B,M] sampling weights (state).
        cdf: [B,M] ``torch.cumsum(prob, 1)``, computed by the caller: outside compiled code,
            so that compiled steps draw the candidates eager ones draw (another summation
            order shifts every CDF step by a few ulps, which moves a draw to the neighbouring
            point several times per clustering).
        tiny: [B,M] ``TINY_WEIGHT`` on valid points, 0 on invalid ones.
        uniforms: [B,L] draws of this step, clamped to :data:`LARGEST_DRAW`.

    Returns:
        new ``prob`` [B,M], the candidates [B,L] (row indices of ``table``) and the kept one
        [B,1] (index into the candidates).

    """
    # Inverse-CDF draws as _sample_proportional, with uniforms <= LARGEST_DRAW: the target
    # stays below the total without a nextafter; an index M (past the end) can only come from
    # non-finite weights and lands on the table's zero row, without a clamp.
    picks = torch.searchsorted(cdf, uniforms * cdf[:, -1:], right=True)  # [B,L]
    rows = _gather_rows(table, picks)  # [B,L,C'], coordinates and norms in one gather
    dims = points.shape[-1]
    dist = norms.unsqueeze(-1) + rows[..., -1].unsqueeze(1)  # [B,M,L]
    if dims > SMALL_DIM and torch.compiler.is_compiling():
        # As in _assign: a plain product, its additions fused into the clamp and the sum.
        dist = dist + torch.bmm(points, rows[..., :dims].transpose(1, 2)) * -2
    elif dims > SMALL_DIM:
        dist.baddbmm_(points, rows[..., :dims].transpose(1, 2), alpha=-2)
    else:
        _add_cross_term_(dist, points, rows[..., dims:2 * dims])  # -2 x from the table
    trial = dist.clamp_(min=tiny.unsqueeze(-1), max=prob.unsqueeze(-1))  # [B,M,L]
    # An element-wise reduction, not einsum: einsum makes this a batched matrix product with a
    # huge inner dimension and a 1-wide output, which cuBLAS runs on one tile per batch
    # (~5 ms per step on an H200 at M = 262144, 30 steps per window).
    potential = trial.sum(dim=1)  # [B,L]
    best = potential.argmin(dim=1, keepdim=True)  # [B,1]
    new_prob = trial.gather(2, best.unsqueeze(1).expand(-1, trial.shape[1], 1)).squeeze(2)
    return new_prob, picks, best


def kmeans_plus_plus(
    points: torch.Tensor, valid: torch.Tensor, uniforms: torch.Tensor,
    compiled: bool = False, dynamic: bool = False, steps: KMeansSteps | None = None,
) -> torch.Tensor:
    """Seed centroids with greedy k-means++ (as scikit-learn does).

    Each step draws the candidates of its row of ``uniforms`` with probability proportional to
    D^2 and keeps the one that lowers the total D^2 most.

    Args:
        points: [B,M,C] float32.
        valid: [B,M] bool; invalid points are never picked.
        uniforms: [k,B,L] from :func:`seed_uniforms`, on ``points.device``.
        compiled: run the step through ``torch.compile`` (:class:`KMeansSteps`).
        dynamic: compile for any point count (:class:`KMeansSteps`).
        steps: the step functions to use (overrides ``compiled`` and ``dynamic``).

    Returns:
        [B,k,C] centroids. When a set has fewer distinct valid points than k, the extra
        centroids repeat existing points (their clusters stay empty).

    """
    clusters = uniforms.shape[0]
    weight = valid.float()
    # Sets without any valid point still sample (from all points) so shapes stay static.
    weight = torch.where(weight.sum(1, keepdim=True) > 0, weight, torch.ones_like(weight))
    norms = (points * points).sum(-1)  # [B,M]
    first = _sample_proportional(weight, uniforms[0, :, :1])  # [B,1]
    closest = _squared_distances(points, norms, _gather_rows(points, first)).squeeze(-1)
    tiny = weight * TINY_WEIGHT
    # D^2 sampling weights; where every valid point is already a centroid (D^2 = 0 everywhere)
    # the tiny weight falls back to uniform over the valid points.
    prob = torch.addcmul(tiny, closest, weight)
    table = _candidate_table(points, norms)
    steps = _steps_for(steps, compiled, dynamic)
    step = steps.seed_step
    draws = _draw_rows(uniforms.clamp_max(LARGEST_DRAW), aligned=steps.compiled)
    picks, kept = [], []
    for row in range(1, clusters):
        cdf = torch.cumsum(prob, dim=1)
        prob, candidates, best = step(points, table, norms, prob, cdf, tiny, draws[row])
        picks.append(candidates)
        kept.append(best)
    # The kept candidates' rows, gathered once for all steps.
    indices = first  # [B,k]
    if kept:
        chosen = torch.stack(picks).gather(2, torch.stack(kept))  # [k-1,B,1]
        indices = torch.cat([first, chosen.squeeze(-1).t()], dim=1)
    return _gather_rows(table, indices)[..., :points.shape[-1]].contiguous()


#: Point sets with at most this many coordinates sum their clusters in chunks of
#: ``SUM_CHUNK`` points (see :func:`_member_sums`).
SPLIT_SUM_MAX_DIM = 8
SUM_CHUNK = 4096


def _member_sums(member: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Per-cluster sums ``member^T @ points``: [B,M,k], [B,M,C] -> [B,k,C].

    For 3D points ([B,k,M] x [B,M,3]) cuBLAS runs the product on one 32x32 tile per batch
    element, walking the whole inner dimension serially: 4.2 ms per Lloyd iteration on an H200
    for 8 x 262144 candidates, 131 of the refinement's 172 ms. Splitting M into chunks of
    ``SUM_CHUNK`` gives one tile per chunk, run in parallel, then a sum over chunks (fixed
    order: deterministic, not bit-identical to the single product).
    """
    batch, count, clusters = member.shape
    channels = points.shape[-1]
    if channels > SPLIT_SUM_MAX_DIM or count <= SUM_CHUNK:
        return torch.bmm(member.transpose(1, 2), points)
    padding = -count % SUM_CHUNK
    if padding:  # zero rows: members of no cluster
        member = F.pad(member, (0, 0, 0, padding))
        points = F.pad(points, (0, 0, 0, padding))
    parts = (count + padding) // SUM_CHUNK
    partial = torch.bmm(member.reshape(batch * parts, SUM_CHUNK, clusters).transpose(1, 2),
                        points.reshape(batch * parts, SUM_CHUNK, channels))
    return partial.view(batch, parts, clusters, channels).sum(1)


def _fused_cluster_sums(labels: torch.Tensor, points: torch.Tensor,
                        clusters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster sums [B,k,C] and sizes [B,k,1], for compiled few-coordinate steps.

    Written as one reduction over the points of a one-hot product, which inductor fuses into
    a (split) reduction kernel without ever storing the [B,M,k] membership: eagerly that
    buffer is written and read three times per Lloyd iteration (about 0.7 ms of memory traffic
    per iteration at 8 x 262144 candidates on an H200). Labels equal to ``clusters`` (invalid
    points) belong to no cluster.
    """
    member = labels.unsqueeze(-1) == torch.arange(clusters, device=labels.device)  # [B,M,k]
    values = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)  # [B,M,C+1]
    both = (member.unsqueeze(-1) * values.unsqueeze(-2)).sum(1)  # [B,k,C+1]
    return both[..., :-1], both[..., -1:]


def _lloyd_step(points: torch.Tensor, centroids: torch.Tensor, identity: torch.Tensor,
                invalid: torch.Tensor | None) -> torch.Tensor:
    """One Lloyd iteration: assign, then move every non-empty cluster to its valid mean.

    Args:
        points: [B,M,C].
        centroids: [B,k,C].
        identity: [k+1,k] float32, the identity matrix and a zero row.
        invalid: [B,M] bool, or None when every point is valid.

    Returns:
        [B,k,C] updated centroids; empty clusters keep theirs (sklearn relocates them; rare
        with ++ seeding).

    """
    labels = _assign(points, centroids)
    clusters = identity.shape[1]
    if invalid is not None:
        labels = labels.masked_fill(invalid, clusters)  # -> the zero row
    if points.shape[-1] <= SPLIT_SUM_MAX_DIM and torch.compiler.is_compiling():
        sums, sizes = _fused_cluster_sums(labels, points, clusters)
    else:
        # One-hot membership as rows of the identity (one float gather; deterministic matmul,
        # no scatter atomics).
        member = F.embedding(labels, identity)  # [B,M,k]
        sums = _member_sums(member, points)  # [B,k,C]
        # A reduction, not a product: cuBLAS runs a 1-wide output with a huge inner dimension
        # on one tile per batch.
        sizes = member.sum(1).unsqueeze(-1)  # [B,k,1]
    # Where a cluster is empty the quotient is 0/0 and the old centroid is kept.
    return torch.where(sizes > 0, sums / sizes, centroids)


def _draw_rows(uniforms: torch.Tensor, aligned: bool) -> list[torch.Tensor]:
    """Split the [k,B,L] draws into [B,L] row views.

    ``aligned``: copy them once into rows padded to 16 bytes first. Compiled code expects
    16-byte aligned inputs and copies any other one before every call (an extra kernel per
    seeding step).
    """
    if not aligned:
        return list(uniforms.unbind(0))
    clusters, batch, trials = uniforms.shape
    width = batch * trials
    padded = F.pad(uniforms.reshape(clusters, width), (0, -width % 4))
    return [padded[row, :width].view(batch, trials) for row in range(clusters)]


class _CompiledOrEager:
    """``torch.compile(fn)`` that falls back to ``fn`` for good when compiling fails."""

    def __init__(self, fn: Callable, dynamic: bool = False) -> None:
        self.eager = fn
        self.compiled = torch.compile(fn, dynamic=dynamic, fullgraph=True)
        self.failed = False
        self.error: Exception | None = None

    def __call__(self, *args: torch.Tensor) -> object:
        if not self.failed:
            try:
                return self.compiled(*args)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as error:  # inductor fails with many error types
                LOG.warning('torch.compile of %s failed (%s); running it eagerly',
                            self.eager.__name__, error)
                self.failed, self.error = True, error
        return self.eager(*args)


class KMeansSteps:
    """The seeding step and the Lloyd step: the eager functions, or ``torch.compile``-d ones.

    Compiled steps fuse each step's element-wise and reduction chains (about 12 kernels each
    eagerly) into a few; they compile on the first call per shape, which runs outside CUDA-graph
    capture in :class:`motion.graphs.GraphedFunction` (its warm-up), so the inductor kernels
    are what the graph records. No ``mode='reduce-overhead'``: its own CUDA graphs would clash.
    The compiled code sums the potentials and centroid norms in other orders than the eager
    one, so a choice between two nearly equal candidates or centroids can differ; the CDF of
    the draws stays an eager cumsum (see :func:`_seed_step`). When compiling fails, a warning
    is logged and the eager functions run instead (for this object only).

    One object per owner, nothing process-wide: the pipeline keeps one for the coarse
    clustering and one for the refinement's, so each compiles once for its lifetime.

    Args:
        compiled: compile the steps (else they run eagerly).
        dynamic: compile with symbolic sizes, once for every point count (the refinement's
            candidate buckets change from window to window; static shapes would compile each
            new bucket in the middle of a stream).

    """

    def __init__(self, compiled: bool = False, dynamic: bool = False) -> None:
        self.compiled = compiled
        self.dynamic = dynamic
        if compiled:
            self.seed_step: Callable[..., tuple[torch.Tensor, ...]] = _CompiledOrEager(
                _seed_step, dynamic)
            self.lloyd_step: Callable[..., torch.Tensor] = _CompiledOrEager(_lloyd_step,
                                                                            dynamic)
        else:
            self.seed_step, self.lloyd_step = _seed_step, _lloyd_step

    @property
    def failed(self) -> bool:
        """True when a compiled step fell back to the eager function."""
        return any(getattr(step, 'failed', False) for step in (self.seed_step, self.lloyd_step))


#: The eager steps (stateless; shared).
EAGER_STEPS = KMeansSteps()


def _steps_for(steps: KMeansSteps | None, compiled: bool, dynamic: bool) -> KMeansSteps:
    """Return ``steps`` if given; else eager steps, or steps compiled for this call only."""
    if steps is not None:
        return steps
    return KMeansSteps(compiled=True, dynamic=dynamic) if compiled else EAGER_STEPS


def kmeans(
    points: torch.Tensor, config: KMeansConfig, valid: torch.Tensor | None = None,
    uniforms: torch.Tensor | None = None, compiled: bool = False, dynamic: bool = False,
    steps: KMeansSteps | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster each point set of a batch.

    Args:
        points: [B,M,C] (any float dtype; computed in float32).
        config: k, iterations, tolerance, seed.
        valid: [B,M] bool, or None for all valid.
        uniforms: [k,B,L] seeding draws on the points' device (``seed_uniforms(k, B,
            config.seed)``); None draws them here (a small host-to-device copy, which a
            CUDA graph capture cannot contain: pass them in when capturing).
        compiled: run the seeding step and the Lloyd iteration through ``torch.compile``
            (:class:`KMeansSteps`); same algorithm, possibly other fp32 rounding. Without
            ``steps`` the compilation serves this call only.
        dynamic: with ``compiled``, one compilation for every point count.
        steps: the owner's step functions (overrides ``compiled`` and ``dynamic``); an owner
            that clusters repeatedly keeps one :class:`KMeansSteps` so it compiles once.

    Returns:
        labels [B,M] int64 (-1 for invalid points) and centroids [B,k,C] float32.

    """
    points = points.float()
    batch, count, _ = points.shape
    all_valid = valid is None
    if valid is None:
        valid = torch.ones(batch, count, dtype=torch.bool, device=points.device)
    if uniforms is None:
        uniforms = seed_uniforms(config.clusters, batch, config.seed).to(points.device)
    steps = _steps_for(steps, compiled, dynamic)
    centroids = kmeans_plus_plus(points, valid, uniforms, steps=steps)
    clusters = config.clusters
    identity = torch.eye(clusters + 1, clusters, device=points.device)  # + a zero row
    invalid = None if all_valid else ~valid
    lloyd_step = steps.lloyd_step
    scale = None
    if config.tolerance is not None:
        weight = valid.float().unsqueeze(-1)  # [B,M,1]
        total = weight.sum(1).clamp_min(1)
        mean = (points * weight).sum(1) / total
        scale = (((points - mean.unsqueeze(1)) ** 2 * weight).sum(1) / total).mean()
    for _ in range(config.iterations):
        updated = lloyd_step(points, centroids, identity, invalid)
        if scale is not None:
            shift = ((updated - centroids) ** 2).sum(-1).max()
            centroids = updated
            if bool(shift <= config.tolerance * scale):
                break
        else:
            centroids = updated
    labels = _assign(points, centroids)
    if invalid is not None:
        labels.masked_fill_(invalid, -1)
    return labels, centroids
