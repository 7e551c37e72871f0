# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Metric scale in an offline replay: the bag's sensors into ``engine.metric``, and its score.

The replay builds its engine from the same parameters as the node (``scale.*``, with the
command-line flags ``--scale-source``/``--camera-height`` on top), so ``engine.metric`` is the
node's facade. :class:`BagScaleFeed` plays the bag's metric inputs into it in stamp order, as
they would reach the node: before each image, the depth images up to its stamp (plus the
pairing slop); the facade pairs depth with images by stamp (``runtime/sync.py``). Odometry
from TF reads TF as the node does (``replay/bag_tf.py``): the bag's ``/tf_static`` and the
odometry TF topic go into the node's TF tree (``runtime/tf_tree.py``), the dynamic transforms
up to the image's stamp plus ``ODOMETRY_LOOKAHEAD_S`` (TF that arrives shortly after the
image, as on a robot), and ``odom_frame -> base_frame`` is looked up at each image stamp
(chains such as ``odom -> base_footprint -> base_link`` resolve, interpolated at the stamp;
a stamp TF has not reached yet waits, as in the node). ``nav_msgs/Odometry`` samples go in
as they are, up to the same horizon. The camera extrinsic is ``base_frame`` -> the images'
frame looked up once (latest) in the same tree (a chain ``base_link -> camera_link ->
camera_optical_frame`` resolves), else the parameter file's ``base_to_camera``.

:class:`ScaleTrack` records each window's estimate and fused value;
:func:`scale_metrics` turns them and the trajectory metrics into ``metrics.json['scale']``:
source, units, the metric ATE (SE(3) alignment, no scale), the Sim(3) ATE, their ratio, the
scale error against ground truth and the scale over time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vggt4d_ros.geometry.rigid import pose_from_translation_quaternion
from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay.bag_tf import BagTf
from vggt4d_ros.replay.bag_tf import TF_TOPIC
from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.metrics import local_scale
from vggt4d_ros.replay.metrics import TrajectoryMetrics
from vggt4d_ros.replay.scale_inputs import odometry_samples
from vggt4d_ros.replay.scale_inputs import read_depth_images
from vggt4d_ros.runtime.scale.runtime import MetricScale
from vggt4d_ros.runtime.scale.tf_stamps import PendingStamps
from vggt4d_ros.runtime.sink import EngineOutput

#: Odometry samples this far after an image stamp are available when its window runs.
ODOMETRY_LOOKAHEAD_S = 0.5
#: Default topics (the node's defaults; a parameter file's depth_topic / odometry_topic win).
DEFAULT_DEPTH_TOPIC = '/camera/aligned_depth_to_color/image_raw'
DEFAULT_ODOMETRY_TOPIC = '/tf'


def scale_overrides(source: str | None, camera_height_m: float | None) -> dict[str, Any]:
    """Parameter overrides of the scale flags (``--scale-source``, ``--camera-height``)."""
    overrides: dict[str, Any] = {}
    if source is not None:
        overrides['scale.source'] = source
    if camera_height_m is not None:
        overrides['scale.camera_height.camera_height_m'] = float(camera_height_m)
    return overrides


class BagScaleFeed:
    """Feeds one bag's depth / odometry / extrinsic into ``metric`` (see the module docstring).

    Args:
        reader: the open bag.
        metric: the engine's facade (None: nothing to feed).
        params: the run's flat parameters (topics, frames, ``base_to_camera``).
        depth_topic, odometry_topic: command-line topics (None: parameters, then defaults).

    Raises:
        ReplayError: the source's topic is not in the bag (or has the wrong type).

    """

    def __init__(self, reader: BagReader, metric: MetricScale | None, params: dict[str, Any],
                 depth_topic: str | None = None, odometry_topic: str | None = None) -> None:
        self.metric = metric
        self._depths: list = []
        self._odometry: list[tuple[int, np.ndarray]] = []
        self._next_depth = self._next_odometry = 0
        self._params = params
        self._extrinsic_set = False
        self._resolver: PendingStamps | None = None
        self.topic = ''
        source = metric.config.source if metric is not None else 'none'
        tf_topic = TF_TOPIC
        try:
            if source == 'depth':
                self.topic = depth_topic or params.get('depth_topic') or DEFAULT_DEPTH_TOPIC
                self._depths = sorted(read_depth_images(reader, self.topic),
                                      key=lambda d: d.stamp_ns)
            elif source == 'odometry':
                self.topic = odometry_topic or (
                    params.get('odometry_topic') if params.get('odometry_source') == 'topic'
                    else None) or DEFAULT_ODOMETRY_TOPIC
                if reader.require_topic(self.topic, (m.TF_MESSAGE, m.ODOMETRY)) == m.ODOMETRY:
                    self._odometry = odometry_samples(  # every Odometry message, as the node
                        reader, self.topic, '', '', match_odometry_frames=False)
                else:
                    tf_topic = self.topic
        except Exception as error:  # noqa: B902 - BagError or a missing topic, say which
            raise ReplayError(f'--scale-source {source}: {error}') from error
        # The node's one TF buffer: /tf_static and the TF topic, chains resolved.
        self.tf = BagTf(reader, tf_topic) if metric is not None else None
        if source == 'odometry' and tf_topic == self.topic:
            # The node's rule for image stamps waiting on TF, also before each estimate.
            self._resolver = PendingStamps(
                self.tf.stamp_lookup(str(params.get('odom_frame', 'odom')),
                                     str(params.get('base_frame', 'base_link'))),
                metric.add_odometry)
            metric.before_estimate = self._resolver.resolve
        self._slop_ns = int(metric.config.sync_slop_s * 1e9) if metric is not None else 0

    @property
    def tf_counts(self) -> dict[str, int]:
        """Odometry stamps resolved in TF / never resolved / still waiting, refused TF."""
        if self._resolver is None:
            return {}
        counts = self._resolver.counts
        return {'odometry_samples': counts['odometry_samples'],
                'odometry_unresolved': counts['odometry_unresolved'],
                'odometry_pending': self._resolver.pending, 'tf_refused': self.tf.refused}

    def before_image(self, stamp_ns: int, frame_id: str) -> None:
        """Hand over what has arrived by the time image ``stamp_ns`` is pushed."""
        metric = self.metric
        if metric is None:
            return
        horizon = stamp_ns + int(ODOMETRY_LOOKAHEAD_S * 1e9)
        self.tf.advance(horizon)
        if not self._extrinsic_set:
            self._set_extrinsic(frame_id)
        while self._next_depth < len(self._depths) and \
                self._depths[self._next_depth].stamp_ns <= stamp_ns + self._slop_ns:
            metric.add_depth(self._depths[self._next_depth])
            self._next_depth += 1
        metric.add_image(stamp_ns)
        while self._next_odometry < len(self._odometry) and \
                self._odometry[self._next_odometry][0] <= horizon:
            metric.add_odometry(*self._odometry[self._next_odometry])
            self._next_odometry += 1
        if self._resolver is not None:
            self._resolver.add(stamp_ns)

    def _set_extrinsic(self, frame_id: str) -> None:
        """base_link -> camera from TF (latest), else the parameter file's base_to_camera.

        While neither is there it is tried again at the next image, as the node waits for
        TF (a mount with a dynamic link, e.g. a pan unit, may come after the first image).
        """
        base = str(self._params.get('base_frame', 'base_link'))
        camera = str(self._params.get('camera_frame') or frame_id)
        extrinsic = self.tf.find(base, camera, 0)
        self.extrinsic_from = f'tf {base} -> {camera}'
        if extrinsic is None and self._params.get('base_to_camera') is not None:
            values = [float(v) for v in self._params['base_to_camera']]
            extrinsic = pose_from_translation_quaternion(values[:3], values[3:])
            self.extrinsic_from = 'parameter base_to_camera'
        if extrinsic is None:
            self.extrinsic_from = 'none'
            return
        self._extrinsic_set = True
        self.metric.set_base_from_camera(extrinsic)


@dataclass
class ScaleTrack:
    """Per-window scale of a run: stamp, this window's estimate and the fused value."""

    stamps_ns: list[int] = field(default_factory=list)
    window_metres_per_unit: list[float] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    fused_metres_per_map_unit: list[float] = field(default_factory=list)

    def add(self, output: EngineOutput) -> None:
        """Record a mapped window (the replay sink calls this)."""
        estimate = output.scale
        if estimate is None:
            return
        self.stamps_ns.append(int(output.result.stamps_ns[-1]))
        self.window_metres_per_unit.append(
            float(estimate.metres_per_unit) if estimate.ok else float('nan'))
        self.reasons.append(estimate.reason or 'used')
        metric = output.update.metric
        self.fused_metres_per_map_unit.append(
            float(metric.metres_per_map_unit) if metric is not None and metric.metric
            else float('nan'))


def scale_metrics(metric: MetricScale | None, track: ScaleTrack,
                  trajectory: TrajectoryMetrics | None, est: tuple[np.ndarray, np.ndarray],
                  truth: tuple[np.ndarray, np.ndarray], feed: BagScaleFeed | None
                  ) -> dict[str, Any]:
    """``metrics.json['scale']``: source, units, metric vs Sim(3) ATE, scale error, over time.

    Args:
        metric: the engine's facade (None: no source; outputs in VGGT units).
        track: the per-window record.
        trajectory: the run's trajectory metrics (None without ground truth).
        est: (stamps [N] ns, poses [N,4,4]) of the output; truth: the same of the reference.
        feed: what fed the facade (topics, extrinsic).

    """
    if metric is None:
        return {'source': 'none', 'units': 'vggt_units',
                'note': 'no scale source: poses and maps are in VGGT units'}
    values = metric.diagnostics()
    result: dict[str, Any] = {
        'source': metric.config.source, 'units': values['units'],
        'topic': feed.topic if feed is not None else '',
        'extrinsic': getattr(feed, 'extrinsic_from', ''),
        'metres_per_map_unit': float(values['scale.metres_per_map_unit']),
        'windows': len(track.stamps_ns),
        'windows_with_estimate': sum(r == 'used' for r in track.reasons),
        'diagnostics': values,
        'tf': feed.tf_counts if feed is not None else {},
        'over_time': {'stamps_ns': track.stamps_ns,
                      'window_metres_per_unit': _finite_or_none(track.window_metres_per_unit),
                      'fused_metres_per_map_unit':
                          _finite_or_none(track.fused_metres_per_map_unit),
                      'reasons': track.reasons},
    }
    if trajectory is not None:
        result.update({
            'ate_rmse_metric': trajectory.ate_rmse_se3, 'ate_rmse_sim3': trajectory.ate_rmse,
            'ate_metric_over_sim3': trajectory.ate_rmse_se3 / max(trajectory.ate_rmse, 1e-12),
            'scale_error': trajectory.scale_error})
        try:
            local = local_scale(est[0], est[1], truth[0], truth[1], segment_s=0.5)
            result['over_time']['segment_end_s'] = local.stamps_s.tolist()
            # Estimated / true travel - 1: the same sign convention as scale_error.
            result['over_time']['segment_scale_error'] = (local.scale - 1.0).tolist()
        except ValueError as error:
            result['over_time']['note'] = str(error)
    return result


def _finite_or_none(values: list[float]) -> list[float | None]:
    """JSON has no NaN: windows without a value become null."""
    return [v if np.isfinite(v) else None for v in values]
