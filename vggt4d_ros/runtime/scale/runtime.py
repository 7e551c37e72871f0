# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""MetricScale: everything the engine (or node) holds for metric scale, behind one object.

Callback threads feed side data (``add_image``, ``add_depth``, ``add_odometry``,
``set_base_from_camera``; cheap, lock-protected); the worker calls :meth:`MetricScale.estimate`
once per window and passes the estimate to ``Mapper.integrate``; the mapper is built with
``scale_fusion=metric_scale.fusion``. :meth:`MetricScale.diagnostics` gives the key/values for
``/diagnostics``.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.runtime.scale.config import ScaleConfig
from vggt4d_ros.runtime.scale.depth import DepthImage
from vggt4d_ros.runtime.scale.estimate import ScaleEstimate
from vggt4d_ros.runtime.scale.estimator import ScaleEstimator
from vggt4d_ros.runtime.scale.estimator import ScaleInputs
from vggt4d_ros.runtime.scale.filter import ScaleFilter
from vggt4d_ros.runtime.scale.odometry import OdometryBuffer
from vggt4d_ros.runtime.sync import DepthPairing


class MetricScale:
    """Side-data buffers, the configured source and the fusion filter of one camera.

    Args:
        config: scale settings (``source='none'``: estimates are always empty).
        sync_queue_size, sync_slop_s: image <-> depth pairing (message_filters semantics);
            None: ``config.sync_queue_size`` / ``config.sync_slop_s``.
        base_from_camera: initial camera extrinsic [4,4] (base_link -> optical frame), e.g.
            from a parameter; TF may replace it (``set_base_from_camera``).

    """

    def __init__(self, config: ScaleConfig | None = None, sync_queue_size: int | None = None,
                 sync_slop_s: float | None = None,
                 base_from_camera: np.ndarray | None = None) -> None:
        self.config = config or ScaleConfig()
        self.estimator = ScaleEstimator(self.config)
        self.pairing = DepthPairing(
            self.config.sync_queue_size if sync_queue_size is None else sync_queue_size,
            self.config.sync_slop_s if sync_slop_s is None else sync_slop_s)
        self.odometry = OdometryBuffer(self.config.odometry)
        self._base_from_camera = None if base_from_camera is None \
            else np.array(base_from_camera, dtype=np.float64)
        self._rig: np.ndarray | None = None
        self._lock = threading.Lock()
        self.last: ScaleEstimate | None = None
        #: window frames (each counted once) that had no paired depth when their window ran
        self.unpaired_images = 0
        self._newest_counted: int | None = None
        #: Called (on the worker, outside the lock) before each window's estimate: a front
        #: end brings side data up to date there (the node looks pending stamps up in TF).
        self.before_estimate: Callable[[], None] | None = None

    @property
    def fusion(self) -> ScaleFilter:
        """The filter to build the mapper with (``Mapper(..., scale_fusion=...)``)."""
        return self.estimator.filter

    def add_image(self, stamp_ns: int) -> None:
        """Record a colour image's stamp (before it goes to the engine); only depth uses it."""
        if self.config.source == 'depth':
            with self._lock:
                self.pairing.add_image(stamp_ns)

    def add_depth(self, depth: DepthImage) -> None:
        """Offer an aligned depth image for pairing."""
        if self.config.source == 'depth':
            with self._lock:
                self.pairing.add_depth(depth.stamp_ns, depth)

    def add_paired_depth(self, image_stamp_ns: int, depth: DepthImage) -> None:
        """Store a depth image already paired with the colour image ``image_stamp_ns``.

        For a front end that pairs with ``message_filters`` itself: it calls this instead of
        :meth:`add_image` / :meth:`add_depth`, so nothing is paired twice.
        """
        if self.config.source == 'depth':
            with self._lock:
                self.pairing.add_pair(image_stamp_ns, depth)

    def add_odometry(self, stamp_ns: int, odom_from_base: np.ndarray) -> None:
        """Store an ``odom -> base_link`` sample (from TF or nav_msgs/Odometry)."""
        with self._lock:
            self.odometry.add(stamp_ns, odom_from_base)

    def set_base_from_camera(self, base_from_camera: np.ndarray) -> None:
        """Set the camera extrinsic (base_link -> camera optical frame), e.g. from TF."""
        with self._lock:
            self._base_from_camera = np.array(base_from_camera, dtype=np.float64)

    def set_rig_extrinsics(self, base_from_cameras: np.ndarray) -> None:
        """Set a rig's camera extrinsics [N,4,4] (base_link -> optical frames, view order)."""
        with self._lock:
            self._rig = np.array(base_from_cameras, dtype=np.float64)

    def estimate(self, result: WindowResult) -> ScaleEstimate:
        """Estimate metres per unit of this window with the configured source (worker)."""
        if self.before_estimate is not None:
            self.before_estimate()
        with self._lock:
            inputs = ScaleInputs(
                depths={s: self.pairing.depths[s] for s in result.stamps_ns
                        if s in self.pairing.depths},
                odometry=self.odometry if len(self.odometry) else None,
                base_from_camera=self._base_from_camera, rig_from_cameras=self._rig)
            # The buffer is read under the lock: a callback must not change it meanwhile.
            self.last = self.estimator.update(result, inputs)
            if self.config.source == 'depth':
                self._count_unpaired(result.stamps_ns, inputs.depths)
        return self.last

    def _count_unpaired(self, stamps: list[int], depths: dict) -> None:
        newest = self._newest_counted
        fresh = [s for s in stamps if newest is None or s > newest]
        self.unpaired_images += sum(1 for s in fresh if s not in depths)
        if fresh:
            self._newest_counted = max(fresh)

    def diagnostics(self) -> dict[str, str]:
        """Return key/values for a diagnostic_msgs/DiagnosticStatus (metres per map unit...).

        Taken under the lock: the diagnostics timer runs on another thread than the worker,
        whose ``estimate`` updates the counters read here.
        """
        with self._lock:
            return self._diagnostics()

    def _diagnostics(self) -> dict[str, str]:
        state = self.fusion.state
        values = {
            'scale.source': self.config.source,
            # Outputs are metric once the first fused value rescaled the map (docs/scale.md).
            'units': 'metres' if np.isfinite(state.metres_per_map_unit) else 'vggt_units',
            'scale.metres_per_map_unit': f'{state.metres_per_map_unit:.6g}',
            'scale.spread': f'{state.spread:.3g}',
            'scale.windows': str(state.windows),
            'scale.windows_without_estimate': str(state.without_estimate),
            'scale.rejected': str(state.rejected),
            'scale.relocks': str(state.relocks),
            'scale.resets': str(state.resets),
            'scale.last_reason': '' if self.last is None else self.last.reason,
            'scale.unpaired_images': str(self.unpaired_images),
            'scale.sync_dropped': str(sum(self.pairing.sync.stats.dropped)),
            'scale.odometry_jumps': str(self.odometry.stats['jump']),
        }
        if self.last is not None and self.last.ok:
            values['scale.metres_per_unit_window'] = f'{self.last.metres_per_unit:.6g}'
        for reason, count in sorted(self.estimator.stats.items()):
            values[f'scale.outcome.{reason}'] = str(count)
        # Per frame of each window (overlap frames count in every window they are in).
        frames = {'depth': self.estimator.depth.frame_outcomes,
                  'odometry': self.estimator.odometry.frame_outcomes}.get(self.config.source, {})
        for reason, count in sorted(frames.items()):
            values[f'scale.frame_outcome.{reason}'] = str(count)
        return values
