# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Tracking metrics against ground truth: position and velocity error, id switches, recall.

Protocol (CLEAR-MOT style, per frame): ground-truth objects visible in the frame and the
output tracks are matched one-to-one by a globally optimal assignment on centre distance,
pairs farther than ``max_distance`` apart are not matches. Then:

* recall = matched ground-truth objects / visible ground-truth objects (all frames);
* precision = matched tracks / output tracks (all frames);
* id switches: for each ground-truth object, how often its matched track id differs from the
  id it was matched to last (a frame without a match does not reset it);
* position error of a match: |p_track - p_truth| / |p_truth - camera| (relative to the
  object's distance); reported as mean and max over matches (where the caller marks which
  objects are seen whole, ``TrackFrame.truth_whole``, over those only: a partly hidden
  object's visible part does not tell where its centre is);
* velocity error of an object, over its matches at least ``settle_s`` after its first match
  (or where the caller marks it settled, ``TrackFrame.truth_settled``):
  RMS of |v_track - v_truth| divided by the RMS speed over the same frames (a ratio to the
  speed that stays defined when the object passes through zero speed); mean and max over
  objects with such matches.

Everything must be in one frame and unit (e.g. the ground truth mapped into the map frame).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class TrackFrame:
    """Ground truth and output of one frame.

    Attributes:
        stamp_ns: frame stamp.
        camera: [3] camera position.
        truth_ids: [G] ground-truth object ids of the VISIBLE objects.
        truth_positions: [G,3]; truth_velocities: [G,3].
        track_ids: [T] output track ids; track_positions: [T,3]; track_velocities: [T,3].
        truth_settled: [G] bool, or None: where given, an object's velocity error counts only
            where True (e.g. visible without interruption for a while) instead of from
            ``settle_s`` after its first match.
        truth_whole: [G] bool, or None: where given, position errors count only where True.

    """

    stamp_ns: int
    camera: np.ndarray
    truth_ids: np.ndarray
    truth_positions: np.ndarray
    truth_velocities: np.ndarray
    track_ids: np.ndarray
    track_positions: np.ndarray
    track_velocities: np.ndarray
    truth_settled: np.ndarray | None = None
    truth_whole: np.ndarray | None = None


@dataclass
class TrackMetrics:
    """Tracking scores (see the module docstring); NaN where nothing was measured."""

    frames: int = 0
    truth_count: int = 0
    track_count: int = 0
    matches: int = 0
    recall: float = float('nan')
    precision: float = float('nan')
    id_switches: int = 0
    position_error_mean: float = float('nan')
    position_error_max: float = float('nan')
    velocity_error_mean: float = float('nan')
    velocity_error_max: float = float('nan')
    ids_per_object: dict[int, list[int]] = field(default_factory=dict)
    velocity_error_per_object: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        for name in ('ids_per_object', 'velocity_error_per_object'):
            out[name] = {str(k): v for k, v in getattr(self, name).items()}
        return out


def match_frame(truth_positions: np.ndarray, track_positions: np.ndarray,
                max_distance: float) -> list[tuple[int, int]]:
    """Optimal one-to-one (truth index, track index) pairs closer than ``max_distance``."""
    if not len(truth_positions) or not len(track_positions):
        return []
    distance = np.linalg.norm(truth_positions[:, None, :] - track_positions[None, :, :], axis=2)
    cost = np.where(distance <= max_distance, distance, 1e9)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if distance[r, c] <= max_distance]


def track_metrics(frames: list[TrackFrame], max_distance: float,
                  settle_s: float = 0.5) -> TrackMetrics:
    """Score tracks against ground truth over frames (any order; sorted by stamp here)."""
    out = TrackMetrics()
    last_id: dict[int, int] = {}
    first_ns: dict[int, int] = {}
    position_errors: list[float] = []
    velocity: dict[int, list[tuple[float, float]]] = {}
    for frame in sorted(frames, key=lambda f: f.stamp_ns):
        out.frames += 1
        out.truth_count += len(frame.truth_ids)
        out.track_count += len(frame.track_ids)
        for gi, ti in match_frame(frame.truth_positions, frame.track_positions, max_distance):
            out.matches += 1
            truth_id, track_id = int(frame.truth_ids[gi]), int(frame.track_ids[ti])
            if truth_id in last_id and last_id[truth_id] != track_id:
                out.id_switches += 1
            last_id[truth_id] = track_id
            ids = out.ids_per_object.setdefault(truth_id, [])
            if track_id not in ids:
                ids.append(track_id)
            truth_position = frame.truth_positions[gi]
            distance = float(np.linalg.norm(truth_position - frame.camera))
            error = float(np.linalg.norm(frame.track_positions[ti] - truth_position))
            if frame.truth_whole is None or frame.truth_whole[gi]:
                position_errors.append(error / max(distance, 1e-12))
            first_ns.setdefault(truth_id, frame.stamp_ns)
            if frame.truth_settled is not None:
                settled = bool(frame.truth_settled[gi])
            else:
                settled = (frame.stamp_ns - first_ns[truth_id]) * 1e-9 >= settle_s
            if settled:
                truth_velocity = frame.truth_velocities[gi]
                velocity_error = float(np.linalg.norm(frame.track_velocities[ti] - truth_velocity))
                speed = float(np.linalg.norm(truth_velocity))
                velocity.setdefault(truth_id, []).append((velocity_error, speed))
    if out.truth_count:
        out.recall = out.matches / out.truth_count
    if out.track_count:
        out.precision = out.matches / out.track_count
    if position_errors:
        out.position_error_mean = float(np.mean(position_errors))
        out.position_error_max = float(np.max(position_errors))
    for truth_id, pairs in sorted(velocity.items()):
        errors, speeds = np.array(pairs).T
        rms_speed = float(np.sqrt(np.mean(speeds ** 2)))
        if rms_speed > 0:
            out.velocity_error_per_object[truth_id] = (
                float(np.sqrt(np.mean(errors ** 2))) / rms_speed)
    ratios = list(out.velocity_error_per_object.values())
    if ratios:
        out.velocity_error_mean = float(np.mean(ratios))
        out.velocity_error_max = float(np.max(ratios))
    return out
