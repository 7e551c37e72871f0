# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Mask refinement (VGGT4D stage 3), vectorised over frames, clusters and views.

Release behaviour ('cluster' mode), per frame i:

1. back-project every pixel with pass-1 depth and intrinsics and pass-2 camera-to-world
   (pixel centres at +0.5);
2. statistical outlier removal (20 neighbours, std ratio 2.5, as Open3D);
3. 3D k-means (30 clusters) of the inlier points inside the coarse mask (the candidates);
4. project each candidate into every other frame j; keep the correspondence when it lies in
   the image with z > 0, is not occluded (z - 0.01 < d_j) and lands on a coarse-static pixel;
   sample d_j (nearest), the coarse mask (bilinear > 0.5) and RGB (bilinear) with the
   release's normalisation (x / (W-1), align_corners=True);
5. a cluster is dynamic when fewer than 5 % of its (S-1)*|c| correspondences are kept, or when
   mean|z - d_j| + mean(sum_rgb |I_i - I_j|) / 3 > 0.1;
6. refined mask = union of dynamic clusters, closed with a 5x5 ellipse, dilated 3x3.

Steps 2 and 3 see only distances between the points of one frame, which the rigid pass-2
camera-to-world motion preserves, so they run on camera-frame points without the poses
(:func:`prepare_refinement`) and only steps 4-6 need the poses (:func:`finish_refinement`).
:func:`refine_masks` runs both.

Modules, one subject each: :mod:`.config` (settings, result), :mod:`.outliers` (kNN searches
and the statistical outlier removal, step 2), :mod:`.reprojection` (projection into the other
frames and per-cluster sums, steps 4-5), :mod:`.morphology` (step 6) and :mod:`.stages` (the
orchestration: candidates, clusters, decisions). Back-projection (step 1) is
``geometry.unproject`` with ``PIXEL_CENTRE``. Nothing here holds process-wide state: the
compiled kNN search is a :class:`CompiledKnn` the caller owns and passes in.

'gradient' mode (an option, not in the release) scores each candidate pixel on its own with a
first-order, projection-gradient-normalised depth residual |r_j| / ||dr_j/dX|| (see
docs/method.md) plus the same photometric term, then thresholds per pixel; pixels without
enough kept views inherit their cluster's decision.
"""

from vggt4d_ros.motion.refine.config import NeighbourSearch
from vggt4d_ros.motion.refine.config import RefineConfig
from vggt4d_ros.motion.refine.config import RefineMode
from vggt4d_ros.motion.refine.config import RefineResult
from vggt4d_ros.motion.refine.morphology import close_then_dilate
from vggt4d_ros.motion.refine.outliers import CompiledKnn
from vggt4d_ros.motion.refine.outliers import mean_knn_distance_image
from vggt4d_ros.motion.refine.outliers import mean_of_smallest
from vggt4d_ros.motion.refine.outliers import statistical_inliers
from vggt4d_ros.motion.refine.stages import candidate_kmeans
from vggt4d_ros.motion.refine.stages import Candidates
from vggt4d_ros.motion.refine.stages import cluster_candidates
from vggt4d_ros.motion.refine.stages import cluster_eagerly
from vggt4d_ros.motion.refine.stages import ClusterFn
from vggt4d_ros.motion.refine.stages import compact_candidates
from vggt4d_ros.motion.refine.stages import find_candidates
from vggt4d_ros.motion.refine.stages import find_inliers
from vggt4d_ros.motion.refine.stages import finish_refinement
from vggt4d_ros.motion.refine.stages import keep_coarse
from vggt4d_ros.motion.refine.stages import prepare_refinement
from vggt4d_ros.motion.refine.stages import refine_masks
from vggt4d_ros.motion.refine.stages import RefinePlan

__all__ = [
    'candidate_kmeans',
    'Candidates',
    'close_then_dilate',
    'cluster_candidates',
    'cluster_eagerly',
    'ClusterFn',
    'compact_candidates',
    'CompiledKnn',
    'find_candidates',
    'find_inliers',
    'finish_refinement',
    'keep_coarse',
    'mean_knn_distance_image',
    'mean_of_smallest',
    'NeighbourSearch',
    'prepare_refinement',
    'refine_masks',
    'RefineConfig',
    'RefineMode',
    'RefinePlan',
    'RefineResult',
    'statistical_inliers',
]
