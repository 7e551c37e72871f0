# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Metric scale from odometry: metric camera travel vs VGGT camera travel within a window.

``OdometryBuffer`` holds ``odom -> base_link`` samples (TF or ``nav_msgs/Odometry``) and
interpolates them at image stamps (slerp rotation, lerp translation; never extrapolated, like
tf2). The camera's metric centre at a stamp is ``odom_from_base(t) @ base_from_camera``; VGGT's
is the window's camera centre. Distances between frame pairs do not depend on either frame's
orientation, so no alignment is needed: the estimate is the least-squares ratio of metric to
VGGT distances over frame pairs with a useful baseline, and there is one only when the camera
moved at least ``min_travel_m`` within the window.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
import math
from typing import Callable

import numpy as np

from vggt4d_ros.geometry.rotation import quaternion_xyzw_from_rotation
from vggt4d_ros.geometry.rotation import rotation_from_quaternion_xyzw
from vggt4d_ros.geometry.rotation import slerp_xyzw
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.runtime.scale.config import OdometryScaleConfig
from vggt4d_ros.runtime.scale.estimate import robust_log_centre
from vggt4d_ros.runtime.scale.estimate import ScaleEstimate

#: ``lookup(stamp_ns) -> (odom_from_base [4,4] or None, reason)``
PoseLookup = Callable[[int], tuple[np.ndarray | None, str]]


class OdometryBuffer:
    """Time-ordered ``odom -> base_link`` samples with interpolation and jump detection."""

    def __init__(self, config: OdometryScaleConfig | None = None) -> None:
        self.config = config or OdometryScaleConfig()
        self._stamps: list[int] = []
        self._trans: list[np.ndarray] = []
        self._quat: list[np.ndarray] = []
        self._last_jump_ns: int | None = None
        #: counted events: 'added', 'out_of_order', 'jump'
        self.stats: Counter = Counter()

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, stamp_ns: int, odom_from_base: np.ndarray) -> bool:
        """Store a sample; False (counted) if it is not newer than the newest one."""
        stamp_ns = int(stamp_ns)
        pose = np.asarray(odom_from_base, dtype=np.float64)
        if self._stamps and stamp_ns <= self._stamps[-1]:
            self.stats['out_of_order'] += 1
            return False
        if self._stamps:
            gap = (stamp_ns - self._stamps[-1]) * 1e-9
            step = float(np.linalg.norm(pose[:3, 3] - self._trans[-1]))
            if step > self.config.max_speed_mps * max(gap, 1e-3):
                # Odometry teleported (reset, wheel-slip spike): the history is not comparable.
                self.stats['jump'] += 1
                self._last_jump_ns = stamp_ns
                self._stamps, self._trans, self._quat = [], [], []
        self._stamps.append(stamp_ns)
        self._trans.append(pose[:3, 3].copy())
        self._quat.append(quaternion_xyzw_from_rotation(pose[:3, :3]))
        self.stats['added'] += 1
        self._trim()
        return True

    def _trim(self) -> None:
        oldest = self._stamps[-1] - int(self.config.buffer_s * 1e9)
        cut = bisect_left(self._stamps, oldest)
        if cut > 0:
            del self._stamps[:cut], self._trans[:cut], self._quat[:cut]

    def lookup(self, stamp_ns: int) -> tuple[np.ndarray | None, str]:
        """``odom_from_base`` [4,4] at a stamp, or None and why.

        Reasons: 'no_tf' (no sample at or after the stamp yet, or none at all), 'tf_too_old'
        (before the oldest kept sample), 'odometry_jump' (before the latest jump), 'tf_gap'
        (neighbouring samples more than ``max_gap_s`` apart).
        """
        stamp_ns = int(stamp_ns)
        if not self._stamps or stamp_ns > self._stamps[-1]:
            return None, 'no_tf'
        if stamp_ns < self._stamps[0]:
            jumped = self._last_jump_ns is not None and stamp_ns < self._last_jump_ns
            return None, 'odometry_jump' if jumped else 'tf_too_old'
        upper = bisect_left(self._stamps, stamp_ns)
        if self._stamps[upper] == stamp_ns:
            return self._matrix(self._trans[upper], self._quat[upper]), ''
        lower = upper - 1
        span = self._stamps[upper] - self._stamps[lower]
        if span * 1e-9 > self.config.max_gap_s:
            return None, 'tf_gap'
        alpha = (stamp_ns - self._stamps[lower]) / span
        trans = (1 - alpha) * self._trans[lower] + alpha * self._trans[upper]
        quat = slerp_xyzw(self._quat[lower], self._quat[upper], np.asarray(alpha))
        return self._matrix(trans, quat), ''

    @staticmethod
    def _matrix(trans: np.ndarray, quat: np.ndarray) -> np.ndarray:
        pose = np.eye(4)
        pose[:3, :3] = rotation_from_quaternion_xyzw(quat)
        pose[:3, 3] = trans
        return pose


class OdometryScale:
    """Odometry source; :meth:`estimate` once per window."""

    source = 'odometry'

    def __init__(self, config: OdometryScaleConfig | None = None) -> None:
        self.config = config or OdometryScaleConfig()
        self.frame_outcomes: Counter = Counter()

    def estimate(self, result: WindowResult, lookup: PoseLookup,
                 base_from_camera: np.ndarray | None = None) -> ScaleEstimate:
        """Metres per unit of this window.

        Args:
            result: the window.
            lookup: odometry at a stamp (e.g. ``OdometryBuffer.lookup``).
            base_from_camera: [4,4] camera extrinsic (base_link -> camera optical frame);
                None: identity (odometry of the camera itself).

        """
        extrinsic = np.eye(4) if base_from_camera is None else np.asarray(base_from_camera)
        centres_vggt = result.cam_to_world()[:, :3, 3].double().cpu().numpy()
        metric, vggt, outcomes = [], [], Counter()
        for index, stamp in enumerate(result.stamps_ns):
            pose, reason = lookup(int(stamp))
            outcomes[reason or 'used'] += 1
            if pose is not None:
                metric.append((pose @ extrinsic)[:3, 3])
                vggt.append(centres_vggt[index])
        self.frame_outcomes.update(outcomes)
        details = {'frames': dict(outcomes)}
        if len(metric) < 2:
            failures = [o for o in outcomes if o != 'used']
            reason = max(failures, key=lambda o: outcomes[o]) if failures else 'no_tf'
            return ScaleEstimate.failed(self.source, reason, details)
        return self._ratio(np.array(metric), np.array(vggt), details)

    def _ratio(self, metric: np.ndarray, vggt: np.ndarray, details: dict) -> ScaleEstimate:
        first, second = np.triu_indices(len(metric), k=1)
        travel_m = np.linalg.norm(metric[first] - metric[second], axis=1)
        travel_u = np.linalg.norm(vggt[first] - vggt[second], axis=1)
        details['max_travel_m'] = float(travel_m.max())
        if travel_m.max() < self.config.min_travel_m:
            return ScaleEstimate.failed(self.source, 'too_little_motion', details)
        # Short baselines carry mostly noise; keep the pairs that moved half the threshold.
        keep = (travel_m >= 0.5 * self.config.min_travel_m) & (travel_u > 0)
        if not keep.any():
            return ScaleEstimate.failed(self.source, 'no_vggt_motion', details)
        metres, units = travel_m[keep], travel_u[keep]
        ratio = float(metres @ units / (units @ units))
        _, sigma = robust_log_centre(np.log(metres / units))
        details['ratio_spread'] = sigma
        if sigma > self.config.max_ratio_spread:
            return ScaleEstimate.failed(self.source, 'inconsistent_motion', details)
        frames = len(metric)
        spread = max(sigma, 1e-4) / math.sqrt(max(frames - 1, 1))
        return ScaleEstimate(self.source, ratio, spread, int(keep.sum()), '', details)
