# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Stage-3 orchestration: candidates, 3D clusters, reprojection scores, refined masks.

See the package docstring for the steps; this module chains the subject modules
(:mod:`.outliers`, :mod:`.reprojection`, :mod:`.morphology`) and the k-means.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from vggt4d_ros.geometry.unproject import camera_points
from vggt4d_ros.geometry.unproject import PIXEL_CENTRE
from vggt4d_ros.geometry.unproject import points_to_world
from vggt4d_ros.motion.kmeans import kmeans
from vggt4d_ros.motion.kmeans import KMeansConfig
from vggt4d_ros.motion.kmeans import seed_uniforms
from vggt4d_ros.motion.refine.config import RefineConfig
from vggt4d_ros.motion.refine.config import RefineResult
from vggt4d_ros.motion.refine.morphology import close_then_dilate
from vggt4d_ros.motion.refine.outliers import CompiledKnn
from vggt4d_ros.motion.refine.outliers import statistical_inliers
from vggt4d_ros.motion.refine.reprojection import cluster_sums
from vggt4d_ros.motion.refine.reprojection import project_chunk


def compact_candidates(candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel indices of each frame's candidates, padded to the largest count.

    Reads the largest count back to the host once (the only sync of the refinement).

    Args:
        candidates: [S,M] bool.

    Returns:
        index [S,C] int64 (pixel index, padding points at a non-candidate) and valid [S,C].

    """
    frames, pixels = candidates.shape
    rank = candidates.cumsum(1)  # [S,M] candidates up to and including each pixel
    counts = rank[:, -1] if pixels else candidates.sum(1)
    width = int(counts.max()) if candidates.numel() else 0
    # The stable partition a stable sort of ~candidates would give (candidates first, then
    # the others, both in raster order), from prefix counts: a scan and a scatter.
    raster = torch.arange(pixels, device=candidates.device).expand(frames, pixels)
    slot = torch.where(candidates, rank - 1, counts.unsqueeze(1) + raster - rank)
    order = torch.empty_like(slot).scatter_(1, slot, raster)
    index = order[:, :width]
    valid = torch.arange(width, device=candidates.device).unsqueeze(0) < counts.unsqueeze(1)
    return index, valid


#: ``(points[B,C,3], valid[B,C], KMeansConfig, uniforms[k,B,L] or None) -> labels[B,C]``.
ClusterFn = Callable[..., torch.Tensor]


def cluster_eagerly(points: torch.Tensor, valid: torch.Tensor, config: KMeansConfig,
                    uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """Labels [B,C] of the candidates' 3D k-means (-1 on padding).

    ``uniforms``: the k-means++ draws of these B sets (None: drawn for a batch of B).
    """
    return kmeans(points, config, valid, uniforms)[0]


def frame_chunks(frames: int, frame_chunk: int | None) -> list[tuple[int, int]]:
    """``[start, stop)`` chunks of a window's frames; one chunk when ``frame_chunk`` is None.

    A window of at most ``frame_chunk`` frames is one chunk: the short-window path.
    """
    size = frames if frame_chunk is None else max(1, frame_chunk)
    return [(start, min(start + size, frames)) for start in range(0, frames, size)] or [(0, 0)]


def _cluster_in_chunks(points: torch.Tensor, valid: torch.Tensor, km: KMeansConfig,
                       cluster_fn: ClusterFn, frame_chunk: int | None) -> torch.Tensor:
    """Cluster every frame's candidates in 3D, ``frame_chunk`` frames per batch.

    Each frame is clustered on its own (the batch is only for speed), with the k-means++ draws
    it has in the whole-window batch (its column of ``seed_uniforms(k, S, seed)``), so chunks
    give the whole-window labels; the [chunk,C,k] distance and membership buffers replace
    [S,C,k] ones (about 63 MB per frame at 392x518, 30 clusters).
    """
    frames = points.shape[0]
    chunks = frame_chunks(frames, frame_chunk)
    if len(chunks) == 1:
        return cluster_fn(points, valid, km)
    uniforms = seed_uniforms(km.clusters, frames, km.seed).to(points.device)
    return torch.cat([cluster_fn(points[start:stop], valid[start:stop], km,
                                 uniforms[:, start:stop]) for start, stop in chunks])


@dataclass
class RefinePlan:
    """The pose-free half of stage 3: candidates and their 3D clusters, in camera coordinates.

    Statistical outlier removal and k-means see only Euclidean distances between the points
    of one frame, which a rigid camera-to-world motion preserves: computed on camera-frame
    points they give the release's inliers and clusters (up to float rounding) without the
    pass-2 poses (see :func:`prepare_refinement`).

    Attributes:
        valid_depth: [S,h,w] bool, finite positive depth.
        inliers: [S,h,w] bool statistical-outlier-removal inliers.
        index: [S,C] int64 pixel index of each candidate slot (padding at a non-candidate).
        valid: [S,C] bool real candidate slots.
        points: [S,C,3] candidate points in their own camera's frame.
        colours: [S,C,3] candidate RGB in [0,1].
        labels: [S,C] int64 3D cluster of each slot (-1 on padding).

    """

    valid_depth: torch.Tensor
    inliers: torch.Tensor
    index: torch.Tensor
    valid: torch.Tensor
    points: torch.Tensor
    colours: torch.Tensor
    labels: torch.Tensor


@dataclass
class Candidates:
    """Outlier removal and coarse-mask candidates of every pixel (no host synchronisation).

    Attributes:
        valid_depth: [S,h,w] bool, finite positive depth.
        inliers: [S,h,w] bool statistical-outlier-removal inliers.
        points: [S,h,w,3] camera-frame points.
        candidates: [S,h*w] bool, inlier and coarse-dynamic (every inlier as
            :func:`find_inliers` returns it, before :func:`keep_coarse`).

    """

    valid_depth: torch.Tensor
    inliers: torch.Tensor
    points: torch.Tensor
    candidates: torch.Tensor


def find_candidates(depth: torch.Tensor, coarse: torch.Tensor, intrinsics: torch.Tensor,
                    config: RefineConfig = RefineConfig(),
                    search: CompiledKnn | None = None) -> Candidates:
    """Stage 3, steps 1-2 in camera coordinates: points, outlier removal, candidates.

    Queues device work only (no host read), so a caller can queue it and go on.
    :func:`find_inliers` then :func:`keep_coarse`.

    Args:
        depth: [S,h,w] pass-1 depth (non-finite or <= 0 values are never candidates).
        coarse: [S,h,w] bool coarse masks.
        intrinsics: [S,3,3] pass-1, network pixels.
        search: the compiled kNN search the outlier removal uses on CUDA (see
            :func:`~vggt4d_ros.motion.refine.outliers.statistical_inliers`).

    """
    return keep_coarse(find_inliers(depth, intrinsics, config, search), coarse)


def find_inliers(depth: torch.Tensor, intrinsics: torch.Tensor,
                 config: RefineConfig = RefineConfig(),
                 search: CompiledKnn | None = None) -> Candidates:
    """Run steps 1-2 without the coarse mask: every inlier a candidate (no host read).

    The outlier removal needs pass 1's depth and intrinsics only, so a caller can queue it
    before the coarse mask exists (the pipeline's side stream does) and apply the mask with
    :func:`keep_coarse` later. Arguments as :func:`find_candidates`.
    """
    frames = depth.shape[0]
    depth = depth.float()
    valid_depth = torch.isfinite(depth) & (depth > 0)
    clean_depth = torch.where(valid_depth, depth, torch.ones_like(depth))
    points = camera_points(clean_depth, intrinsics, pixel_offset=PIXEL_CENTRE)
    inliers = statistical_inliers(points, valid_depth, config, search=search)
    return Candidates(valid_depth, inliers, points, inliers.reshape(frames, -1))


def keep_coarse(found: Candidates, coarse: torch.Tensor) -> Candidates:
    """Restrict the candidates to the coarse-dynamic pixels ``coarse`` [S,h,w] bool."""
    candidates = found.candidates & coarse.bool().reshape(found.candidates.shape)
    return replace(found, candidates=candidates)


def candidate_kmeans(config: RefineConfig) -> KMeansConfig:
    """Return the 3D k-means settings :func:`cluster_candidates` clusters candidates with."""
    return KMeansConfig(config.clusters, config.kmeans_iterations, None, config.seed)


def cluster_candidates(found: Candidates, images: torch.Tensor,
                       config: RefineConfig = RefineConfig(),
                       cluster_fn: ClusterFn = cluster_eagerly,
                       frame_chunk: int | None = None) -> RefinePlan:
    """Stage 3, step 3: compact the candidates (one host read) and cluster them in 3D.

    Args:
        found: from :func:`find_candidates`.
        images: [S,3,h,w] in [0,1].
        cluster_fn: ``(points[B,C,3], valid[B,C], KMeansConfig, uniforms=None) ->
            labels[B,C]``, the 3D k-means (the pipeline passes a CUDA-graphed one).
        frame_chunk: frames clustered per batch (None = all at once).

    """
    frames = images.shape[0]
    index, valid = compact_candidates(found.candidates)  # [S,C]
    gather3 = index.unsqueeze(-1).expand(-1, -1, 3)
    cand_points = found.points.reshape(frames, -1, 3).gather(1, gather3)
    cand_colours = images.float().permute(0, 2, 3, 1).reshape(frames, -1, 3).gather(1, gather3)
    km = candidate_kmeans(config)
    if index.shape[1]:
        labels = _cluster_in_chunks(cand_points, valid, km, cluster_fn,
                                    frame_chunk)  # [S,C], -1 on padding
    else:
        labels = index.clone()  # no candidate anywhere: nothing to cluster
    return RefinePlan(found.valid_depth, found.inliers, index, valid, cand_points, cand_colours,
                      labels)


def prepare_refinement(images: torch.Tensor, depth: torch.Tensor, coarse: torch.Tensor,
                       intrinsics: torch.Tensor, config: RefineConfig = RefineConfig(),
                       cluster_fn: ClusterFn = cluster_eagerly,
                       search: CompiledKnn | None = None,
                       frame_chunk: int | None = None) -> RefinePlan:
    """Stage 3, first half (no poses): :func:`find_candidates` then :func:`cluster_candidates`.

    Args:
        images: [S,3,h,w] in [0,1].
        depth: [S,h,w] pass-1 depth (non-finite or <= 0 values are never candidates).
        coarse: [S,h,w] bool coarse masks.
        intrinsics: [S,3,3] pass-1, network pixels.
        cluster_fn: the 3D k-means, as :func:`cluster_candidates`.
        search: the compiled kNN search, as :func:`find_candidates`.
        frame_chunk: as :func:`cluster_candidates`.

    Returns:
        RefinePlan for :func:`finish_refinement`.

    """
    found = find_candidates(depth, coarse, intrinsics, config, search)
    return cluster_candidates(found, images, config, cluster_fn, frame_chunk)


def refine_masks(images: torch.Tensor, depth: torch.Tensor, coarse: torch.Tensor,
                 cam_to_world: torch.Tensor, intrinsics: torch.Tensor,
                 config: RefineConfig = RefineConfig(),
                 cluster_fn: ClusterFn = cluster_eagerly,
                 search: CompiledKnn | None = None,
                 frame_chunk: int | None = None,
                 pairs: torch.Tensor | None = None) -> RefineResult:
    """Stage 3 of VGGT4D (:func:`prepare_refinement` then :func:`finish_refinement`).

    Args:
        images: [S,3,h,w] in [0,1].
        depth: [S,h,w] pass-1 depth (non-finite or <= 0 values are never candidates).
        coarse: [S,h,w] bool coarse masks.
        cam_to_world: [S,4,4] pass-2 poses.
        intrinsics: [S,3,3] pass-1, network pixels.
        cluster_fn: ``(points[S,C,3], valid[S,C], KMeansConfig) -> labels[S,C]``, the 3D
            k-means (the pipeline passes a CUDA-graphed one).
        search: the compiled kNN search, as :func:`find_candidates`.
        frame_chunk: frames per chunk of a long window (:func:`cluster_candidates`,
            :func:`finish_refinement`); None = the whole window at once.
        pairs: as :func:`finish_refinement`.

    Returns:
        RefineResult with masks [S,h,w] bool.

    """
    plan = prepare_refinement(images, depth, coarse, intrinsics, config, cluster_fn, search,
                              frame_chunk)
    return finish_refinement(plan, images, depth, coarse, cam_to_world, intrinsics, config,
                             frame_chunk, pairs)


def finish_refinement(plan: RefinePlan, images: torch.Tensor, depth: torch.Tensor,
                      coarse: torch.Tensor, cam_to_world: torch.Tensor,
                      intrinsics: torch.Tensor, config: RefineConfig = RefineConfig(),
                      frame_chunk: int | None = None,
                      pairs: torch.Tensor | None = None) -> RefineResult:
    """Stage 3, second half: project the clustered candidates with the pass-2 poses and decide.

    Args:
        plan: from :func:`prepare_refinement` on the same images, depth, masks and intrinsics.
        images, depth, coarse, intrinsics: as :func:`refine_masks`.
        cam_to_world: [S,4,4] pass-2 poses.
        frame_chunk: a window of more frames projects its candidates into ranges of views
            (``config.point_budget`` candidate-view pairs at a time) and sums its clusters
            ``frame_chunk`` frames at a time, so memory stays linear in S (the projection's
            work is S x (S-1) x candidates either way). None = the whole window at once.
        pairs: [S,S] bool, (i, j) True when frame j tests frame i (a rig window passes
            ``RigLayout.temporal_pairs``: other steps only); None: every j != i (the release).
            The kept ratio's denominator counts the allowed pairs of each frame.

    Returns:
        RefineResult with masks [S,h,w] bool.

    """
    frames, height, width = depth.shape
    count = height * width
    depth = depth.float()
    images = images.float()
    intrinsics = intrinsics.float()
    cam_to_world = cam_to_world.float()
    index, valid, labels = plan.index, plan.valid, plan.labels
    cand_points = points_to_world(plan.points, cam_to_world)
    world_to_cam = torch.linalg.inv_ex(cam_to_world).inverse
    sample_depth = torch.where(plan.valid_depth, depth, torch.full_like(depth, float('nan')))
    gradient_mode = config.mode == 'gradient'
    slots = index.shape[1]
    chunk = max(1, config.point_budget // max(frames * slots, 1))
    clusters = config.clusters
    # Per candidate, summed over the other views: kept count, geometric and photometric error.
    per_point = torch.zeros(frames, slots, 3, device=depth.device)
    long_window = len(frame_chunks(frames, frame_chunk)) > 1
    for start in range(0, frames if slots else 0, chunk):
        ref = torch.arange(start, min(start + chunk, frames), device=depth.device)
        view_step = frames
        if long_window:
            view_step = max(1, config.point_budget // max(ref.shape[0] * slots, 1))
        sums = None
        for view_start in range(0, frames, view_step):
            view_range = None if view_step >= frames else (
                view_start, min(view_start + view_step, frames))
            views = project_chunk(ref, cand_points, plan.colours, sample_depth, coarse, images,
                                  intrinsics, world_to_cam, config, gradient_mode, view_range,
                                  pairs)
            geometric = views.depth_error
            if gradient_mode:
                geometric = geometric / views.gradient_norm.clamp_min(config.gradient_floor)
            part = torch.stack([views.keep.float().sum(1), geometric.sum(1),
                                views.rgb_error.sum(1)], dim=-1)
            sums = part if sums is None else sums.add_(part)
        per_point[ref] = sums
    kept, geo_sum, rgb_sum, sizes = _cluster_totals(labels, valid, per_point, clusters,
                                                    frame_chunk)
    # Views each frame is tested in: S - 1 for one camera (the release; a Python number, as
    # before chunking: no fill kernel), [S,1] counts of allowed pairs in a rig.
    tests: float | torch.Tensor = float(frames - 1) if pairs is None \
        else pairs.sum(1, keepdim=True).float()
    ratio = kept / (tests * sizes + 1e-6)
    score = (geo_sum + rgb_sum / 3) / kept.clamp_min(1)
    too_few = ratio < config.min_valid_ratio
    cluster_dynamic = (too_few | (score > config.threshold)).gather(1, labels.clamp_min(0))
    if gradient_mode:
        # Pixels with enough kept views decide on their own score; the others (no evidence)
        # inherit their cluster's decision, as a whole cluster without evidence would.
        pixel_kept, pixel_geo, pixel_rgb = per_point.unbind(-1)
        pixel_score = (pixel_geo + pixel_rgb / 3) / pixel_kept.clamp_min(1)
        tested = max(tests, 1.0) if pairs is None else tests.clamp_min(1)
        evidence = pixel_kept / tested >= config.min_valid_ratio
        dynamic_slot = valid & torch.where(evidence, pixel_score > config.threshold,
                                           cluster_dynamic)
        slot_scores = torch.where(evidence, pixel_score, torch.full_like(pixel_score,
                                                                         float('inf')))
        slot_scores = torch.where(valid, slot_scores, torch.zeros_like(slot_scores))
        scores = torch.zeros(frames, count, device=depth.device).scatter(1, index, slot_scores)
        scores = scores.view(frames, height, width)
    else:
        scores = torch.where(too_few, torch.full_like(score, float('inf')), score)
        dynamic_slot = valid & cluster_dynamic
    raw = torch.zeros(frames, count, dtype=torch.bool, device=depth.device)
    raw = raw.scatter(1, index, dynamic_slot).view(frames, height, width)
    full_labels = torch.where(plan.inliers, -1, -2).reshape(frames, count).long()
    slot_labels = torch.where(valid, labels, full_labels.gather(1, index))
    full_labels = full_labels.scatter(1, index, slot_labels).view(frames, height, width)
    masks = close_then_dilate(raw, config.close_kernel, config.dilate_kernel)
    return RefineResult(masks=masks, raw_masks=raw, inliers=plan.inliers, labels=full_labels,
                        scores=scores)


def _cluster_totals(labels: torch.Tensor, valid: torch.Tensor, per_point: torch.Tensor,
                    clusters: int, frame_chunk: int | None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-cluster kept count, geometric and photometric sums, and sizes, each [S,k].

    A one-hot matmul (deterministic, unlike float scatter atomics), ``frame_chunk`` frames at
    a time so that the [chunk,C,k] membership replaces an [S,C,k] one. A window of one chunk
    runs the unchunked kernels only: this stage is launch-bound on the GPU, so the short path
    adds no slice, concatenation or copy (docs/performance.md section 7).

    Args:
        labels: [S,C] cluster of each slot; valid: [S,C] real slots.
        per_point: [S,C,3] per-candidate sums over the views.

    """
    chunks = frame_chunks(labels.shape[0], frame_chunk)
    if len(chunks) == 1:
        member = _membership(labels, valid, clusters)
        kept, geo_sum, rgb_sum = cluster_sums(member, per_point).unbind(-1)
        return kept, geo_sum, rgb_sum, member.sum(1)
    totals = []
    for start, stop in chunks:
        member = _membership(labels[start:stop], valid[start:stop], clusters)
        sums = cluster_sums(member, per_point[start:stop])  # [c,k,3]
        totals.append(torch.cat([sums, member.sum(1).unsqueeze(-1)], dim=-1))
    kept, geo_sum, rgb_sum, sizes = torch.cat(totals).unbind(-1)
    return kept, geo_sum, rgb_sum, sizes


def _membership(labels: torch.Tensor, valid: torch.Tensor, clusters: int) -> torch.Tensor:
    """One-hot cluster membership [c,C,k] float of the real slots (zero rows on padding)."""
    member = (labels.unsqueeze(-1) == torch.arange(clusters, device=labels.device)).float()
    return member * valid.unsqueeze(-1).float()
