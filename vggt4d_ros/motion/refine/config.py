# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Stage-3 settings and outputs (shared by every module of the refinement)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

RefineMode = Literal['cluster', 'gradient']
NeighbourSearch = Literal['image', 'exact']


@dataclass(frozen=True)
class RefineConfig:
    """Stage-3 settings (release defaults).

    Attributes:
        mode: 'cluster' (release) or 'gradient' (per-pixel projection-gradient score).
        sor_neighbours: neighbours of the statistical outlier removal (the point included,
            as Open3D's KNN search returns the query point itself).
        sor_std_ratio: keep points whose mean neighbour distance < mean + ratio * std.
        neighbour_search: 'exact' = brute-force kNN over all points of the frame (chunked);
            'image' = kNN restricted to a (2r+1)^2 pixel window (organised depth maps keep
            3D neighbours close in the image; far faster, see docs/method.md).
        image_radius: r of the 'image' search.
        compile_search: on CUDA, run the 'image' search through torch.compile (one fused
            selection kernel instead of a sort; compiles once, a few seconds, on first use).
        clusters: 3D k-means clusters per frame.
        compile_kmeans: in the pipeline on CUDA, run the 3D k-means' steps through
            ``torch.compile`` with dynamic shapes (one compilation for every candidate count;
            the Lloyd step then never stores the [S,C,k] membership). The pipeline turns it on
            with ``compile_model``. Same algorithm, possibly other fp32 rounding.
        kmeans_iterations: Lloyd iterations.
        seed: k-means++ seed.
        occlusion_margin: z - margin < d_j counts as visible (normalised depth units).
        min_valid_ratio: below this kept / ((S-1)*|c|) the cluster is dynamic.
        threshold: score above which a cluster (pixel) is dynamic.
        consistent_pixel_centres: sample frame j at (x - 0.5, y - 0.5) so projection and
            back-projection use the same pixel-centre convention (release: False).
        gradient_floor: lower bound of ||dr/dX|| in 'gradient' mode (the e_z term alone has
            norm 1, so 1.0 only ever down-weights residuals).
        close_kernel: elliptic closing size; dilate_kernel: square dilation size (0 = off).
        point_budget: max candidate-point x frame pairs projected at once (memory bound).

    """

    mode: RefineMode = 'cluster'
    sor_neighbours: int = 20
    sor_std_ratio: float = 2.5
    neighbour_search: NeighbourSearch = 'image'
    image_radius: int = 4
    compile_search: bool = True
    clusters: int = 30
    compile_kmeans: bool = False
    kmeans_iterations: int = 30
    seed: int = 42
    occlusion_margin: float = 0.01
    min_valid_ratio: float = 0.05
    threshold: float = 0.1
    consistent_pixel_centres: bool = False
    gradient_floor: float = 1.0
    close_kernel: int = 5
    dilate_kernel: int = 3
    point_budget: int = 1 << 23


@dataclass
class RefineResult:
    """Stage-3 outputs.

    Attributes:
        masks: [S,h,w] bool refined dynamic masks (after morphology).
        raw_masks: [S,h,w] bool before morphology.
        inliers: [S,h,w] bool statistical-outlier-removal inliers.
        labels: [S,h,w] int64 cluster of each candidate pixel (-1 static inlier, -2 outlier).
        scores: [S,k] cluster scores ('cluster' mode; inf where too few correspondences) or
            [S,h,w] pixel scores ('gradient' mode; inf where the pixel had too few kept
            views, 0 off the candidates).

    """

    masks: torch.Tensor
    raw_masks: torch.Tensor
    inliers: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
