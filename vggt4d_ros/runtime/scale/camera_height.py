# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Metric scale from a known camera height above a flat floor (wheeled robots).

Per window: the static, confident points of all frames (window frame, VGGT units) feed a RANSAC
plane fit restricted to planes below every camera whose normal is within 60 degrees of the
expected up direction (walls and the ceiling cannot win), refined by least squares on its
inliers. Up comes from the camera extrinsic: ``base_link``'s z axis seen from the camera,
rotated into the window frame by each frame's VGGT pose. The cameras' distances to the plane
are the camera height in VGGT units; metres per unit = known height / that distance.

Outcomes: a floor tilted by more than ``max_tilt_deg`` from up -> 'tilted_floor' (a ramp, a
wrongly mounted camera); no plane holding ``min_floor_fraction`` of the points -> 'no_floor'.
"""

from __future__ import annotations

from collections import Counter
import math

import numpy as np

from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.runtime.scale.config import CameraHeightConfig
from vggt4d_ros.runtime.scale.estimate import robust_log_centre
from vggt4d_ros.runtime.scale.estimate import ScaleEstimate
from vggt4d_ros.runtime.scale.samples import grid_stride
from vggt4d_ros.runtime.scale.samples import static_samples

#: Plane hypotheses steeper than this from up are walls, not a (tilted) floor.
_MAX_HYPOTHESIS_TILT_DEG = 60.0

#: base_link (x forward, y left, z up) from a level optical frame (x right, y down, z forward),
#: no height: the extrinsic assumed when only ``camera_height_m`` is known.
LEVEL_CAMERA = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0],
                         [0.0, 0.0, 0.0, 1.0]])


def _points(result: WindowResult, stride: int, max_points: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collect usable points [N,3], their depths [N] and the camera poses [S,4,4].

    Points are in the window frame, evenly thinned to about ``max_points``.
    """
    samples = static_samples(result, stride, 25.0, 2)
    poses = result.cam_to_world().double().cpu().numpy()
    k = result.intrinsics.double().cpu().numpy()
    step = max(1, int(math.ceil(samples.usable.sum() / max_points)))
    points, depths = [], []
    for index in range(result.num_frames):
        rows, cols = np.nonzero(samples.usable[index])
        rows, cols = rows[index % step::step], cols[index % step::step]
        z = samples.depth[index][rows, cols].astype(np.float64)
        u, v = samples.cols[cols], samples.rows[rows]
        cam = np.stack([(u - k[index, 0, 2]) / k[index, 0, 0] * z,
                        (v - k[index, 1, 2]) / k[index, 1, 1] * z, z], axis=1)
        points.append(cam @ poses[index, :3, :3].T + poses[index, :3, 3])
        depths.append(z)
    return np.concatenate(points), np.concatenate(depths), poses


class CameraHeightScale:
    """Camera-height source; :meth:`estimate` once per window."""

    source = 'camera_height'

    def __init__(self, config: CameraHeightConfig | None = None) -> None:
        self.config = config or CameraHeightConfig()
        self.outcomes: Counter = Counter()

    def estimate(self, result: WindowResult, base_from_camera: np.ndarray) -> ScaleEstimate:
        """Metres per unit of this window.

        Args:
            result: the window.
            base_from_camera: [4,4] camera extrinsic (base_link on the floor, z up); gives the
                up direction and, unless ``camera_height_m`` is set (> 0), the height (its z).

        """
        estimate = self._estimate(result, np.asarray(base_from_camera, dtype=np.float64))
        self.outcomes[estimate.reason or 'used'] += 1
        return estimate

    def _estimate(self, result: WindowResult, extrinsic: np.ndarray) -> ScaleEstimate:
        cfg = self.config
        height_m = cfg.camera_height_m if cfg.camera_height_m > 0 else extrinsic[2, 3]
        if not height_m > 0:
            return ScaleEstimate.failed(self.source, 'camera_below_floor')
        stride = grid_stride(result.transform.network_hw)
        points, depths, poses = _points(result, stride, cfg.max_points)
        if len(points) < cfg.min_points:
            return ScaleEstimate.failed(self.source, 'too_few_points')
        up_camera = extrinsic[:3, :3].T @ np.array([0.0, 0.0, 1.0])
        up = (poses[:, :3, :3] @ up_camera).mean(axis=0)
        up /= np.linalg.norm(up)
        centres = poses[:, :3, 3]
        threshold = cfg.inlier_fraction * float(np.median(depths))
        plane = self._ransac(points, up, centres, threshold)
        details: dict = {}
        if plane is None:
            return ScaleEstimate.failed(self.source, 'no_floor', details)
        normal, offset, inliers = self._refine(points, *plane, threshold)
        fraction = inliers.mean()
        tilt = math.degrees(math.acos(min(1.0, float(normal @ up))))
        details.update(floor_fraction=float(fraction), tilt_deg=tilt)
        if fraction < cfg.min_floor_fraction:
            return ScaleEstimate.failed(self.source, 'no_floor', details)
        if tilt > cfg.max_tilt_deg:
            return ScaleEstimate.failed(self.source, 'tilted_floor', details)
        heights = centres @ normal + offset
        if np.any(heights <= 0):
            return ScaleEstimate.failed(self.source, 'no_floor', details)
        log_ratio = np.log(height_m / heights)
        centre, sigma = robust_log_centre(log_ratio)
        # Plane noise: residual spread over sqrt(inliers), relative to the mean height.
        residual = np.abs(points[inliers] @ normal + offset)
        plane_sigma = 1.2533 * float(residual.mean()) / math.sqrt(inliers.sum())
        spread = max(sigma / math.sqrt(len(heights)), plane_sigma / float(heights.mean()))
        details['height_units'] = float(np.median(heights))
        return ScaleEstimate(self.source, math.exp(centre), spread, int(inliers.sum()), '',
                             details)

    def _ransac(self, points: np.ndarray, up: np.ndarray, centres: np.ndarray,
                threshold: float) -> tuple[np.ndarray, float] | None:
        """Best plane (unit normal towards up, offset) below all cameras, or None."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        picks = rng.integers(0, len(points), size=(cfg.ransac_iterations, 3))
        a, b, c = points[picks[:, 0]], points[picks[:, 1]], points[picks[:, 2]]
        normals = np.cross(b - a, c - a)
        norms = np.linalg.norm(normals, axis=1)
        good = norms > 1e-12
        normals = normals[good] / norms[good, None]
        normals *= np.sign(normals @ up)[:, None]
        offsets = -np.einsum('ij,ij->i', normals, a[good])
        cos_limit = math.cos(math.radians(_MAX_HYPOTHESIS_TILT_DEG))
        below = np.all(normals @ centres.T + offsets[:, None] > threshold, axis=1)
        keep = (normals @ up >= cos_limit) & below
        if not keep.any():
            return None
        normals, offsets = normals[keep], offsets[keep]
        # Score on an even subset: ranking hypotheses needs no more than ~1500 points.
        scored = points[:: max(1, len(points) // 1500)]
        counts = (np.abs(scored @ normals.T + offsets) < threshold).sum(axis=0)
        best = int(np.argmax(counts))
        return normals[best], float(offsets[best])

    @staticmethod
    def _refine(points: np.ndarray, normal: np.ndarray, offset: float, threshold: float,
                rounds: int = 3) -> tuple[np.ndarray, float, np.ndarray]:
        """Least-squares plane on the inliers, a few rounds; returns normal, offset, inliers."""
        inliers = np.abs(points @ normal + offset) < threshold
        for _ in range(rounds):
            if inliers.sum() < 3:
                break
            chosen = points[inliers]
            centroid = chosen.mean(axis=0)
            centred = chosen - centroid
            # The plane normal is the scatter matrix's smallest eigenvector (eigh: ascending).
            _, vectors = np.linalg.eigh(centred.T @ centred)
            fitted = vectors[:, 0] * np.sign(vectors[:, 0] @ normal)
            normal, offset = fitted, float(-fitted @ centroid)
            inliers = np.abs(points @ normal + offset) < threshold
        return normal, offset, inliers
