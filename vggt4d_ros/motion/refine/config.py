# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Stage-3 settings and outputs (shared by every module of the refinement)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

RefineMode = Literal['cluster', 'gradient']
NeighbourSearch = Literal['image', 'exact']


@dataclass(frozen=True)
class RefineConfig:
    """Stage-3 settings (release defaults)."""

    mode: RefineMode = field(default='cluster', metadata={
        'description': "'cluster' (release) or 'gradient' (per-pixel projection-gradient score)."})
    sor_neighbours: int = field(default=20, metadata={
        'description':
            "neighbours of the statistical outlier removal (the point included, as Open3D's KNN "
            'search returns the query point itself).', 'range': (1, 1024)})
    sor_std_ratio: float = field(default=2.5, metadata={
        'description': 'keep points whose mean neighbour distance < mean + ratio * std.',
        'range': (0.0, 1000.0)})
    neighbour_search: NeighbourSearch = field(default='image', metadata={
        'description':
            "'exact' = brute-force kNN over all points of the frame (chunked); 'image' = kNN "
            'restricted to a (2r+1)^2 pixel window (organised depth maps keep 3D neighbours '
            'close in the image; far faster, see docs/method.md).'})
    image_radius: int = field(default=4, metadata={
        'description': "r of the 'image' search.", 'range': (1, 64)})
    compile_search: bool = field(default=True, metadata={
        'description':
            "on CUDA, run the 'image' search through torch.compile (one fused selection kernel "
            'instead of a sort; compiles once, a few seconds, on first use).'})
    clusters: int = field(default=30, metadata={
        'description': '3D k-means clusters per frame.', 'range': (1, 4096)})
    compile_kmeans: bool = field(default=False, metadata={
        'description':
            "in the pipeline on CUDA, run the 3D k-means' steps through ``torch.compile`` with "
            'dynamic shapes (one compilation for every candidate count; the Lloyd step then '
            'never stores the [S,C,k] membership). The pipeline turns it on with '
            '``compile_model``. Same algorithm, possibly other fp32 rounding.'})
    kmeans_iterations: int = field(default=30, metadata={
        'description': 'Lloyd iterations.', 'range': (1, 10000)})
    seed: int = field(default=42, metadata={
        'description': 'k-means++ seed.', 'range': (0, 2147483647)})
    occlusion_margin: float = field(default=0.01, metadata={
        'description': 'z - margin < d_j counts as visible (normalised depth units).',
        'range': (0.0, 1000.0)})
    min_valid_ratio: float = field(default=0.05, metadata={
        'description': 'below this kept / ((S-1)*|c|) the cluster is dynamic.',
        'range': (0.0, 1.0)})
    threshold: float = field(default=0.1, metadata={
        'description': 'score above which a cluster (pixel) is dynamic.',
        'range': (0.0, 1000000.0)})
    consistent_pixel_centres: bool = field(default=False, metadata={
        'description':
            'sample frame j at (x - 0.5, y - 0.5) so projection and back-projection use the same'
            ' pixel-centre convention (release: False).'})
    gradient_floor: float = field(default=1.0, metadata={
        'description':
            "lower bound of ||dr/dX|| in 'gradient' mode (the e_z term alone has norm 1, so 1.0 "
            'only ever down-weights residuals).', 'range': (0.0, 1000000.0)})
    close_kernel: int = field(default=5, metadata={
        'description': 'elliptic closing size (0 = off).', 'range': (0, 255)})
    dilate_kernel: int = field(default=3, metadata={
        'description': 'square dilation size (0 = off).', 'range': (0, 255)})
    point_budget: int = field(default=1 << 23, metadata={
        'description': 'max candidate-point x frame pairs projected at once (memory bound).',
        'range': (1, 1099511627776)})


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
