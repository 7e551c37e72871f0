# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Evaluation metrics: trajectory ATE/RPE after Sim(3) alignment (evo) and mask J/F (DAVIS).

Trajectory protocol (MonST3R / dynamic-scene papers): associate estimate and ground truth by
stamp, align the estimate to the ground truth with Umeyama Sim(3) (``correct_scale=True``, all
poses), then ATE = RMSE of the translation APE, RPE-trans / RPE-rot = RMSE of the relative
pose error over consecutive frames (delta 1 frame, all pairs). For metric estimates (a scale
source set): the metric ATE is the ATE after a rigid (SE(3)) alignment, no scale, and the scale
error is how far the Sim(3) alignment had to scale the estimate (``1 / scale - 1``: +0.02 means
the estimate is 2 % too large); :func:`local_scale` gives the scale over time.

Mask protocol (DAVIS, as the davis2017-evaluation toolkit defines it): J is the IoU of the
binary masks (1 when both are empty); F is the F-measure of boundary precision and recall. The
boundary map is DAVIS's ``seg2bmap`` (a pixel is boundary when it differs from its east, south
or south-east neighbour; the last row compares east only, the last column south only, the
bottom-right pixel is never boundary), and a boundary pixel counts as matched when the other
boundary, dilated by a digital disk (``x^2 + y^2 <= r^2``) of radius
``r = ceil(0.008 * image diagonal)`` (``bound_th = 0.008``), covers it.

Reconstruction protocol (Easi3R's DyCheck point metrics): accuracy = distance of each predicted
point to the nearest ground-truth point, completeness = distance of each ground-truth point to
the nearest predicted point, distance = distance between the predicted and ground-truth point of
the same pixel; each as mean and median.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
import math
import os
import tempfile
from typing import Any, Iterator

import cv2
import numpy as np

#: DAVIS boundary tolerance as a fraction of the image diagonal (davis2017-evaluation).
BOUND_TH = 0.008


@contextlib.contextmanager
def _sandboxed_home() -> Iterator[None]:
    """Point HOME / XDG_CONFIG_HOME / MPLBACKEND at disposable values, restore afterwards.

    evo's tools write ``~/.evo/settings.json``; the core modules used here do not, but a
    replay must never write into the user's home, whatever evo version is installed.
    """
    keys = ('HOME', 'XDG_CONFIG_HOME', 'MPLBACKEND')
    saved = {key: os.environ.get(key) for key in keys}
    with tempfile.TemporaryDirectory(prefix='vggt4d_evo_') as home:
        os.environ['HOME'] = home
        os.environ['XDG_CONFIG_HOME'] = os.path.join(home, '.config')
        os.environ['MPLBACKEND'] = 'Agg'
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _evo() -> Any:
    """Import the evo modules in a sandboxed home; returns a namespace of them."""
    with _sandboxed_home():
        from evo.core import metrics as evo_metrics
        from evo.core import sync as evo_sync
        from evo.core.trajectory import PoseTrajectory3D
    return type('Evo', (), {'metrics': evo_metrics, 'sync': evo_sync,
                            'PoseTrajectory3D': PoseTrajectory3D})


@dataclass
class TrajectoryMetrics:
    """Trajectory errors in ground-truth units (metres for the synthetic scene).

    Attributes:
        matched: associated pose pairs.
        ate_rmse: RMSE of the translation error after Sim(3) alignment.
        ate_mean, ate_median, ate_max: statistics of the same errors.
        ate_rmse_se3: ATE with rigid (SE(3)) alignment only, no scale correction: the metric
            ATE of an estimate that claims to be in metres.
        rpe_trans_rmse: RMSE of the relative translation error (delta 1 frame).
        rpe_rot_deg_rmse: RMSE of the relative rotation error in degrees (delta 1 frame).
        scale: Sim(3) scale applied to the estimate.
        scale_error: ``1 / scale - 1``, the estimate's relative size error (0 when metric
            and exact; meaningless for scale-free estimates).
        stamps_s: [M] associated stamps (seconds).
        errors: [M] per-pose translation errors after Sim(3) alignment.
        aligned_xyz: [M,3] aligned estimated positions.
        alignment: [4,4] the Sim(3) ``truth_from_estimate`` (``s R | t``) that aligned them.
        reference_xyz: [M,3] ground-truth positions.

    """

    matched: int
    ate_rmse: float
    ate_mean: float
    ate_median: float
    ate_max: float
    ate_rmse_se3: float
    rpe_trans_rmse: float
    rpe_rot_deg_rmse: float
    scale: float
    scale_error: float
    stamps_s: np.ndarray = field(repr=False)
    errors: np.ndarray = field(repr=False)
    aligned_xyz: np.ndarray = field(repr=False)
    reference_xyz: np.ndarray = field(repr=False)
    alignment: np.ndarray = field(default_factory=lambda: np.eye(4), repr=False)

    def summary(self) -> dict[str, float]:
        """Scalar fields only (for metrics.json)."""
        return {key: value for key, value in asdict(self).items()
                if not isinstance(value, np.ndarray)}


def _to_evo(evo: Any, stamps_ns: np.ndarray, poses: np.ndarray) -> Any:
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    seconds = (stamps // 1_000_000_000).astype(np.float64) + (stamps % 1_000_000_000) * 1e-9
    return evo.PoseTrajectory3D(timestamps=seconds,
                                poses_se3=[np.asarray(p, np.float64) for p in poses])


def _associate(evo, est_stamps_ns, est_poses, ref_stamps_ns, ref_poses, max_diff_s: float):
    """Evo trajectories of both, associated by stamp; returns (ref_sync, est_sync).

    Raises:
        ValueError: no stamps matched within ``max_diff_s``.

    """
    est = _to_evo(evo, est_stamps_ns, est_poses)
    ref = _to_evo(evo, ref_stamps_ns, ref_poses)
    try:
        return evo.sync.associate_trajectories(ref, est, max_diff=max_diff_s)
    except Exception as error:  # evo.core.sync.SyncException: nothing matched
        raise ValueError(f'cannot associate trajectories: {error}') from error


def trajectory_metrics(est_stamps_ns: np.ndarray, est_poses: np.ndarray,
                       ref_stamps_ns: np.ndarray, ref_poses: np.ndarray,
                       max_diff_s: float = 0.01) -> TrajectoryMetrics:
    """ATE and RPE of an estimate against a reference after Sim(3) alignment.

    Args:
        est_stamps_ns: [N] estimate stamps (int ns); est_poses: [N,4,4] world-from-camera.
        ref_stamps_ns: [M] reference stamps; ref_poses: [M,4,4] world-from-camera.
        max_diff_s: largest stamp difference for two poses to be associated.

    Returns:
        The metrics.

    Raises:
        ValueError: fewer than 3 associated poses (a Sim(3) fit needs 3 non-collinear).

    """
    evo = _evo()
    ref_sync, est_sync = _associate(evo, est_stamps_ns, est_poses, ref_stamps_ns, ref_poses,
                                    max_diff_s)
    if ref_sync.num_poses < 3:
        raise ValueError(f'only {ref_sync.num_poses} poses associated, need >= 3')
    rigid = _copy(evo, est_sync)
    rigid.align(ref_sync, correct_scale=False)
    rotation, translation, scale = est_sync.align(ref_sync, correct_scale=True)
    alignment = np.eye(4)
    alignment[:3, :3] = scale * np.asarray(rotation)
    alignment[:3, 3] = np.asarray(translation)
    relation = evo.metrics.PoseRelation
    ape = evo.metrics.APE(relation.translation_part)
    ape.process_data((ref_sync, est_sync))
    ape_rigid = evo.metrics.APE(relation.translation_part)
    ape_rigid.process_data((ref_sync, rigid))
    rpe_t = evo.metrics.RPE(relation.translation_part, 1, evo.metrics.Unit.frames,
                            all_pairs=True)
    rpe_t.process_data((ref_sync, est_sync))
    rpe_r = evo.metrics.RPE(relation.rotation_angle_deg, 1, evo.metrics.Unit.frames,
                            all_pairs=True)
    rpe_r.process_data((ref_sync, est_sync))
    stats = ape.get_all_statistics()
    return TrajectoryMetrics(
        matched=int(ref_sync.num_poses), ate_rmse=float(stats['rmse']),
        ate_mean=float(stats['mean']), ate_median=float(stats['median']),
        ate_max=float(stats['max']), ate_rmse_se3=float(ape_rigid.get_statistic(
            evo.metrics.StatisticsType.rmse)),
        rpe_trans_rmse=float(rpe_t.get_statistic(evo.metrics.StatisticsType.rmse)),
        rpe_rot_deg_rmse=float(rpe_r.get_statistic(evo.metrics.StatisticsType.rmse)),
        scale=float(scale), scale_error=float(1.0 / scale - 1.0),
        stamps_s=np.asarray(ref_sync.timestamps, np.float64),
        errors=np.asarray(ape.error, np.float64),
        aligned_xyz=np.asarray(est_sync.positions_xyz, np.float64),
        reference_xyz=np.asarray(ref_sync.positions_xyz, np.float64), alignment=alignment)


@dataclass
class LocalScale:
    """Scale of an estimate over time: estimated / true distance travelled per segment.

    Attributes:
        stamps_s: [K] end stamp of each segment (seconds).
        scale: [K] estimated / true travel over the segment (1 = metric and exact).

    """

    stamps_s: np.ndarray
    scale: np.ndarray


def local_scale(est_stamps_ns: np.ndarray, est_poses: np.ndarray, ref_stamps_ns: np.ndarray,
                ref_poses: np.ndarray, segment_s: float = 2.0, max_diff_s: float = 0.01,
                min_travel: float = 0.05) -> LocalScale:
    """Estimated / true camera travel over consecutive segments of ``segment_s`` seconds.

    Poses are associated by stamp with evo (as :func:`trajectory_metrics`); segments whose
    true travel is below ``min_travel`` (ground-truth units) are skipped (no motion, no scale).
    """
    evo = _evo()
    ref_sync, est_sync = _associate(evo, est_stamps_ns, est_poses, ref_stamps_ns, ref_poses,
                                    max_diff_s)
    times = np.asarray(ref_sync.timestamps, np.float64)
    est_step = np.linalg.norm(np.diff(est_sync.positions_xyz, axis=0), axis=1)
    ref_step = np.linalg.norm(np.diff(ref_sync.positions_xyz, axis=0), axis=1)
    ends, scales = [], []
    start = 0
    for index in range(1, len(times)):
        if times[index] - times[start] < segment_s and index < len(times) - 1:
            continue
        travel = ref_step[start:index].sum()
        if travel >= min_travel:
            ends.append(times[index])
            scales.append(est_step[start:index].sum() / travel)
        start = index
    return LocalScale(np.asarray(ends), np.asarray(scales))


def _copy(evo: Any, trajectory: Any) -> Any:
    return evo.PoseTrajectory3D(timestamps=np.array(trajectory.timestamps),
                                poses_se3=[p.copy() for p in trajectory.poses_se3])


# -- masks ----------------------------------------------------------------------------------


def boundary_radius(image_hw: tuple[int, int]) -> int:
    """DAVIS boundary tolerance: ``ceil(0.008 * diagonal)`` pixels."""
    return int(math.ceil(BOUND_TH * math.hypot(image_hw[0], image_hw[1])))


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """DAVIS ``seg2bmap`` boundary [H,W] bool of a binary mask (see the module docstring).

    The boundary lies half a pixel towards the origin: a background pixel whose east/south
    neighbour is foreground is boundary too.
    """
    seg = np.asarray(mask).astype(bool)
    east, south, south_east = (np.zeros_like(seg) for _ in range(3))
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def disk(radius: int) -> np.ndarray:
    """Digital disk [2r+1, 2r+1] uint8: offsets with ``x^2 + y^2 <= r^2`` (as skimage's)."""
    offsets = np.arange(-radius, radius + 1)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius ** 2).astype(np.uint8)


def _dilate(boundary: np.ndarray, radius: int) -> np.ndarray:
    return cv2.dilate(boundary.astype(np.uint8), disk(radius)).astype(bool)


def jaccard(pred: np.ndarray, truth: np.ndarray) -> float:
    """Compute the IoU of two binary masks [H,W] (nonzero = foreground); 1 when both empty."""
    pred, truth = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    union = np.count_nonzero(pred | truth)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & truth) / union


def boundary_f(pred: np.ndarray, truth: np.ndarray) -> float:
    """DAVIS contour accuracy F of two binary masks [H,W].

    Precision: fraction of predicted boundary pixels within the tolerance of the true
    boundary; recall likewise the other way. Both boundaries empty: 1; one empty: 0 (DAVIS
    sets precision 1 / recall 0 or the reverse, whose F-measure is 0).
    """
    pred, truth = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    if pred.shape != truth.shape:
        raise ValueError(f'mask shapes differ: {pred.shape} vs {truth.shape}')
    radius = boundary_radius(pred.shape)
    pred_b, truth_b = mask_boundary(pred), mask_boundary(truth)
    n_pred, n_truth = np.count_nonzero(pred_b), np.count_nonzero(truth_b)
    if n_pred == 0 and n_truth == 0:
        return 1.0
    if n_pred == 0 or n_truth == 0:
        return 0.0
    precision = np.count_nonzero(pred_b & _dilate(truth_b, radius)) / n_pred
    recall = np.count_nonzero(truth_b & _dilate(pred_b, radius)) / n_truth
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


@dataclass
class MaskMetrics:
    """Per-frame and mean J / F over the frames that have a ground-truth mask.

    Attributes:
        stamps_ns: [K] evaluated stamps; j, f: [K] per-frame scores.
        missing: ground-truth frames without a predicted mask (scored as empty predictions).

    """

    stamps_ns: list[int]
    j: list[float]
    f: list[float]
    missing: int = 0

    @property
    def j_mean(self) -> float:
        return float(np.mean(self.j)) if self.j else float('nan')

    @property
    def f_mean(self) -> float:
        return float(np.mean(self.f)) if self.f else float('nan')

    def summary(self) -> dict[str, float]:
        """J-Mean, J-Recall (fraction > 0.5), F-Mean, F-Recall, J&F-Mean, counts."""
        j, f = np.asarray(self.j), np.asarray(self.f)
        return {
            'frames': len(self.j), 'missing_predictions': self.missing,
            'j_mean': self.j_mean, 'f_mean': self.f_mean,
            'jf_mean': (self.j_mean + self.f_mean) / 2.0,
            'j_recall': float(np.mean(j > 0.5)) if len(j) else float('nan'),
            'f_recall': float(np.mean(f > 0.5)) if len(f) else float('nan'),
        }


def mask_metrics(predicted: dict[int, np.ndarray], truth: dict[int, np.ndarray]
                 ) -> MaskMetrics:
    """Score predicted masks against ground truth, matched by exact stamp.

    Args:
        predicted: stamp_ns -> [H,W] mask (nonzero = dynamic).
        truth: stamp_ns -> [H,W] mask; a ground-truth frame with no prediction is scored
            against an empty mask (counted in ``missing``).

    """
    result = MaskMetrics([], [], [])
    for stamp in sorted(truth):
        gt = np.asarray(truth[stamp]) > 0
        pred = predicted.get(stamp)
        if pred is None:
            result.missing += 1
            pred = np.zeros_like(gt)
        pred = np.asarray(pred) > 0
        if pred.shape != gt.shape:  # ground truth at another resolution: nearest resize
            pred = cv2.resize(pred.astype(np.uint8), gt.shape[::-1],
                              interpolation=cv2.INTER_NEAREST) > 0
        result.stamps_ns.append(int(stamp))
        result.j.append(jaccard(pred, gt))
        result.f.append(boundary_f(pred, gt))
    return result


# -- reconstruction ---------------------------------------------------------------------------


def reconstruction_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Accuracy, completeness and distance (mean and median) of pixel-paired point sets.

    Args:
        predicted: [N,3] predicted points (already aligned to the ground truth's frame).
        truth: [N,3] ground-truth points; row i is the same pixel as ``predicted[i]``.

    Returns:
        accuracy / accuracy_median, completeness / completeness_median, distance /
        distance_median, points.

    Raises:
        ValueError: empty or mismatched inputs.

    """
    from scipy.spatial import cKDTree

    predicted = np.asarray(predicted, np.float64).reshape(-1, 3)
    truth = np.asarray(truth, np.float64).reshape(-1, 3)
    if len(predicted) == 0 or predicted.shape != truth.shape:
        raise ValueError(f'need equal, non-empty point sets, got {predicted.shape} and '
                         f'{truth.shape}')
    accuracy, _ = cKDTree(truth).query(predicted)
    completeness, _ = cKDTree(predicted).query(truth)
    distance = np.linalg.norm(predicted - truth, axis=1)
    return {
        'accuracy': float(np.mean(accuracy)), 'accuracy_median': float(np.median(accuracy)),
        'completeness': float(np.mean(completeness)),
        'completeness_median': float(np.median(completeness)),
        'distance': float(np.mean(distance)), 'distance_median': float(np.median(distance)),
        'points': int(len(predicted)),
    }
