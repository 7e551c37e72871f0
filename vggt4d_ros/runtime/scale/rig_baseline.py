# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Metric scale from a camera rig's known baselines (``scale.source: rig_baseline``).

A rig's cameras are fixed to ``base_link`` with known extrinsics (metres). In one window VGGT
estimates every camera's pose in its own scale-free units. At one time step the cameras are
rigidly attached, so for views a, b at step t

    metres per unit  =  |c_b - c_a|  /  |C_tb - C_ta|

with c the known camera centres in ``base_link`` and C the estimated centres. Every (step,
pair) gives one ratio; the estimate is the median of the log ratios (robust to a few bad
poses). A pair is only used when its known baseline is long enough and the estimated
direction of b as seen from a agrees with the known one (both in camera a's axes, so the
window's world orientation does not matter): a pose that points the wrong way is a failure,
not a noisy measurement.

The views of one step are assumed simultaneous; with stamp skew dt between them the baseline
picks up the rig's motion v*dt (the sync slop bounds it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

from vggt4d_ros.config_fields import field_meta as _meta
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.runtime.scale.estimate import robust_log_centre
from vggt4d_ros.runtime.scale.estimate import ScaleEstimate

SOURCE = 'rig_baseline'


@dataclass(frozen=True)
class RigBaselineConfig:
    """Pair selection of the rig-baseline scale (``scale.rig_baseline``)."""

    min_baseline_m: float = field(default=0.05, metadata=_meta(
        'ignore camera pairs closer than this (metres).', (0.0, 100.0)))
    max_direction_deg: float = field(default=20.0, metadata=_meta(
        "reject a ratio when the estimated direction from camera a to b (in camera a's "
        'axes) is further than this from the known one (degrees).', (0.0, 180.0)))
    min_pairs: int = field(default=2, metadata=_meta(
        'fewer accepted (step, camera pair) ratios give no estimate.', (1, 1000)))


def _pair_geometry(cam_from_world: np.ndarray, centres: np.ndarray,
                   a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Offset of camera b from camera a in camera a's axes.

    Args:
        cam_from_world: [..., V, 3, 3] rotations taking world (or base) vectors into a camera.
        centres: [..., V, 3] camera centres.
        a, b: [P] view indices of the pairs.

    Returns:
        [..., P, 3].

    """
    offset = centres[..., b, :] - centres[..., a, :]
    return np.einsum('...pij,...pj->...pi', cam_from_world[..., a, :, :], offset)


def rig_baseline_scale(world_from_camera: np.ndarray, base_from_camera: np.ndarray,
                       config: RigBaselineConfig = RigBaselineConfig()) -> ScaleEstimate:
    """Metres per VGGT unit from known inter-camera translations vs VGGT's camera centres.

    Args:
        world_from_camera: [S,4,4] VGGT's camera-to-world poses of a window, S = T*N frames in
            step-major order (frame t*N + v is camera v at step t), VGGT units.
        base_from_camera: [N,4,4] each camera's pose in ``base_link`` (metres, OpenCV camera
            axes, the same axes as VGGT's cameras).
        config: pair selection.

    Returns:
        ScaleEstimate of source 'rig_baseline' (metres per unit, relative spread, samples =
        accepted (step, pair) ratios; reasons 'single_camera', 'short_baseline',
        'degenerate_estimate', 'direction_mismatch', 'too_few_pairs').

    """
    poses = np.asarray(world_from_camera, dtype=np.float64)
    rig = np.asarray(base_from_camera, dtype=np.float64)
    if rig.ndim != 3 or rig.shape[1:] != (4, 4) or poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f'poses must be [S,4,4] and extrinsics [N,4,4], got {poses.shape} '
                         f'and {rig.shape}')
    views = rig.shape[0]
    if views < 2:
        return ScaleEstimate.failed(SOURCE, 'single_camera')
    if poses.shape[0] % views:
        raise ValueError(f'{poses.shape[0]} poses are not whole steps of {views} cameras')
    poses = poses.reshape(-1, views, 4, 4)  # [T,N,4,4]
    a, b = np.triu_indices(views, k=1)
    known = _pair_geometry(np.swapaxes(rig[:, :3, :3], -1, -2), rig[:, :3, 3], a, b)  # [P,3]
    baseline = np.linalg.norm(known, axis=-1)
    long_enough = baseline >= config.min_baseline_m
    if not long_enough.any():
        return ScaleEstimate.failed(SOURCE, 'short_baseline')
    estimated = _pair_geometry(np.swapaxes(poses[..., :3, :3], -1, -2), poses[..., :3, 3],
                               a, b)  # [T,P,3]
    length = np.linalg.norm(estimated, axis=-1)
    usable = np.isfinite(length) & (length > 1e-9) & long_enough
    if not usable.any():
        return ScaleEstimate.failed(SOURCE, 'degenerate_estimate')
    cosine = np.einsum('tpi,pi->tp', estimated, known) / (
        np.where(usable, length, 1.0) * np.maximum(baseline, 1e-12))
    agree = usable & (cosine >= math.cos(math.radians(config.max_direction_deg)))
    if not agree.any():
        return ScaleEstimate.failed(SOURCE, 'direction_mismatch')
    if agree.sum() < config.min_pairs:
        return ScaleEstimate.failed(SOURCE, 'too_few_pairs')
    logs = np.log(baseline[None, :] / np.where(agree, length, 1.0))  # [T,P]
    return _combine(logs, agree)


def _combine(logs: np.ndarray, agree: np.ndarray) -> ScaleEstimate:
    """Median of the accepted log ratios, with a relative spread.

    The pairs of one step share that step's poses, so steps are the independent samples: the
    spread is the larger of the pooled robust sigma over sqrt(ratios) and the robust sigma of
    the per-step medians over sqrt(steps).

    Args:
        logs: [T,P] log(metres / units).
        agree: [T,P] bool, accepted ratios.

    """
    pooled = logs[agree]
    centre, sigma = robust_log_centre(pooled)
    spread = sigma / math.sqrt(pooled.size)
    steps = agree.any(axis=1)
    if steps.sum() >= 2:
        medians = np.array([np.median(row[keep]) for row, keep in zip(logs[steps], agree[steps])])
        spread = max(spread, robust_log_centre(medians)[1] / math.sqrt(medians.size))
    return ScaleEstimate(SOURCE, math.exp(centre), spread, int(pooled.size))


def rig_scale_from_window(result: WindowResult, base_from_camera: np.ndarray,
                          config: RigBaselineConfig = RigBaselineConfig()
                          ) -> ScaleEstimate:
    """:func:`rig_baseline_scale` of a window result (its pass-2 poses and rig layout).

    Args:
        result: a multi-camera window (``result.layout.num_views`` = N).
        base_from_camera: [N,4,4] camera poses in ``base_link`` (metres), in view order.

    """
    rig = np.asarray(base_from_camera)
    if rig.shape[0] != result.num_views:
        raise ValueError(f'{rig.shape[0]} camera extrinsics for a window of '
                         f'{result.num_views} views')
    return rig_baseline_scale(result.cam_to_world().detach().cpu().numpy(), rig, config)
