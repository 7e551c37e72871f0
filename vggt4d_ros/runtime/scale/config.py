# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Settings of the metric-scale sources and of the fusion filter (one dataclass per part)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vggt4d_ros.config_fields import field_meta as _meta
from vggt4d_ros.runtime.scale.rig_baseline import RigBaselineConfig

Source = Literal['none', 'depth', 'odometry', 'camera_height', 'rig_baseline']
SOURCES: tuple[str, ...] = ('none', 'depth', 'odometry', 'camera_height', 'rig_baseline')


@dataclass
class DepthScaleConfig:
    """Aligned depth image vs VGGT depth.

    Attributes:
        min_range_m: sensor depths below this are invalid (driver noise next to the lens).
        max_range_m: sensor depths above this are invalid (noise grows with distance).
        pixel_stride: compare every n-th network pixel in x and y; 0: about 48 samples
            along the shorter network side (every 8th pixel at 392 x 518).
        conf_percentile: drop the window's lowest-confidence VGGT pixels below this percentile.
        mask_dilation_px: grow dynamic masks by this radius (network pixels) before excluding.
        min_pixels: fewer valid pixel pairs in the window -> no estimate ('too_few_pixels').

    """

    min_range_m: float = field(default=0.1, metadata=_meta(
        'Sensor depths below this (metres) are invalid (driver noise next to the lens).',
        (0.0, 100.0)))
    max_range_m: float = field(default=6.0, metadata=_meta(
        'Sensor depths above this (metres) are invalid (depth noise grows with distance).',
        (0.01, 1000.0)))
    pixel_stride: int = field(default=0, metadata=_meta(
        'Compare every n-th network pixel in x and y; 0: about 48 samples along the shorter '
        'network side.', (0, 64)))
    conf_percentile: float = field(default=25.0, metadata=_meta(
        "Ignore the window's VGGT pixels below this confidence percentile.", (0.0, 99.0)))
    mask_dilation_px: int = field(default=2, metadata=_meta(
        'Grow the dynamic masks by this radius (network pixels) before excluding them.',
        (0, 64)))
    min_pixels: int = field(default=200, metadata=_meta(
        'Fewer valid sensor/VGGT pixel pairs in a window: no estimate (too_few_pixels).',
        (1, 10000000)))

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_range_m < self.max_range_m:
            raise ValueError('need 0 <= min_range_m < max_range_m')
        if self.pixel_stride < 0 or self.mask_dilation_px < 0 or self.min_pixels < 1:
            raise ValueError('min_pixels must be >= 1, pixel_stride and mask_dilation_px >= 0')


@dataclass
class OdometryScaleConfig:
    """Odometry travel vs VGGT camera travel.

    Attributes:
        min_travel_m: the camera must move at least this far (metres, largest distance between
            two frames of the window) for an estimate; less -> 'too_little_motion'.
        max_gap_s: no pose is interpolated between odometry samples farther apart ('tf_gap').
        max_speed_mps: consecutive odometry samples implying a faster motion are a jump: the
            older samples are dropped ('odometry_jump' for stamps before it).
        buffer_s: odometry history kept (seconds before the newest sample).
        max_ratio_spread: per-pair travel ratios more dispersed than this (1.4826 MAD of the
            log ratios) mean inconsistent motion (slip, a jump below ``max_speed_mps``).

    """

    min_travel_m: float = field(default=0.2, metadata=_meta(
        'The camera must move at least this far (metres) within a window for an odometry '
        'estimate (else too_little_motion; the previous scale holds).', (0.001, 100.0)))
    max_gap_s: float = field(default=0.5, metadata=_meta(
        'No pose is interpolated between odometry samples farther apart than this (tf_gap).',
        (0.001, 60.0)))
    max_speed_mps: float = field(default=5.0, metadata=_meta(
        'Consecutive odometry samples implying a faster motion are a jump: the older samples '
        'are dropped (odometry_jump).', (0.01, 1000.0)))
    buffer_s: float = field(default=30.0, metadata=_meta(
        'Odometry history kept (seconds before the newest sample).', (1.0, 3600.0)))
    max_ratio_spread: float = field(default=0.2, metadata=_meta(
        'Per-pair travel ratios more dispersed than this (robust sigma of their logs) mean '
        'inconsistent motion (wheel slip): no estimate.', (0.001, 10.0)))

    def __post_init__(self) -> None:
        if self.min_travel_m <= 0 or self.max_gap_s <= 0 or self.max_speed_mps <= 0:
            raise ValueError('min_travel_m, max_gap_s and max_speed_mps must be positive')


@dataclass
class CameraHeightConfig:
    """Known camera height above a flat floor vs the ground plane in VGGT units.

    Attributes:
        camera_height_m: camera height above the floor in metres; 0 takes the z of the
            ``base_to_camera`` extrinsic (``base_link`` on the floor, z up, REP-105).
        max_tilt_deg: the floor's normal may differ from the expected up direction by this much;
            a larger dominant plane below the camera -> 'tilted_floor'.
        inlier_fraction: a point is on the plane within this fraction of the window's median
            point distance from the cameras.
        min_floor_fraction: at least this fraction of the window's static points must lie on
            the floor, else 'no_floor'.
        min_points: fewer static points in the window -> 'too_few_points'.
        max_points: points used (evenly thinned).
        ransac_iterations: plane hypotheses tried.
        seed: RANSAC random seed (same window, same answer).

    """

    camera_height_m: float = field(default=0.0, metadata=_meta(
        'Camera height above a flat floor in metres; 0: the z of the base_link -> camera '
        'extrinsic (base_link on the floor, REP-105).', (0.0, 100.0)))
    max_tilt_deg: float = field(default=10.0, metadata=_meta(
        "The floor's normal may differ from the expected up by this much (degrees); a more "
        'tilted dominant plane: tilted_floor.', (0.1, 89.9)))
    inlier_fraction: float = field(default=0.01, metadata=_meta(
        "A point is on the floor within this fraction of the window's median point distance.",
        (0.0001, 1.0)))
    min_floor_fraction: float = field(default=0.15, metadata=_meta(
        "At least this fraction of the window's static points must lie on the floor (else "
        'no_floor).', (0.0, 1.0)))
    min_points: int = field(default=200, metadata=_meta(
        'Fewer static points in a window: no estimate (too_few_points).', (3, 10000000)))
    max_points: int = field(default=6000, metadata=_meta(
        'Static points used for the floor fit (evenly thinned).', (3, 10000000)))
    ransac_iterations: int = field(default=256, metadata=_meta(
        'Floor plane hypotheses tried per window.', (1, 100000)))
    seed: int = field(default=0, metadata=_meta(
        'RANSAC random seed (same window, same answer).', (0, 2**31 - 1)))

    def __post_init__(self) -> None:
        if self.camera_height_m < 0:
            raise ValueError('camera_height_m must be positive (or 0: from the extrinsic)')
        if not 0 < self.max_tilt_deg < 90:
            raise ValueError('max_tilt_deg must be in (0, 90)')


@dataclass
class ScaleFilterConfig:
    """Fusion of per-window estimates (in metres per map unit) across windows.

    Attributes:
        history: accepted estimates kept for the outlier gate's robust sigma.
        min_history: gate new estimates only once this many were accepted.
        gate_mads: reject an estimate farther than this many sigmas from the fused value, sigma
            being the larger of the history's robust sigma (1.4826 MAD of its log values) and
            the filter's predicted spread ...
        min_gate: ... but never reject within this log distance (0.05 = about 5 %).
        drift_per_window: expected random-walk change of the map's scale per window (log),
            the Sim(3) chain's drift: the filter's process noise.
        min_spread: floor on a window's relative spread (sources tend to be optimistic).
        max_step: the fused scale changes by at most this log step per window (0.02: 2 %).
        max_consecutive_rejects: after this many rejections in a row the world changed (or the
            history was wrong): restart the history from the rejected values (a 'relock').

    """

    history: int = field(default=15, metadata=_meta(
        "Accepted estimates kept for the outlier gate's robust sigma.", (1, 10000)))
    min_history: int = field(default=3, metadata=_meta(
        'Gate new estimates only once this many were accepted.', (1, 10000)))
    gate_mads: float = field(default=4.0, metadata=_meta(
        'Reject an estimate farther than this many sigmas from the fused value.',
        (0.1, 1000.0)))
    min_gate: float = field(default=0.05, metadata=_meta(
        'Never reject within this log distance of the fused value (0.05: about 5 %).',
        (0.0001, 10.0)))
    drift_per_window: float = field(default=0.003, metadata=_meta(
        "Expected random-walk change of the map's scale per window (log; the filter's process "
        'noise).', (0.0, 1.0)))
    min_spread: float = field(default=0.005, metadata=_meta(
        "Floor on a window's relative spread (sources tend to be optimistic).", (0.0, 1.0)))
    max_step: float = field(default=0.02, metadata=_meta(
        'The applied scale changes by at most this log step per window (0.02: 2 %).',
        (0.0001, 10.0)))
    max_consecutive_rejects: int = field(default=5, metadata=_meta(
        'This many rejections in a row restart the filter from them (a relock).', (1, 10000)))

    def __post_init__(self) -> None:
        if self.history < 1 or self.min_history < 1 or self.max_consecutive_rejects < 1:
            raise ValueError('history, min_history and max_consecutive_rejects must be >= 1')
        if self.max_step <= 0 or self.min_gate <= 0 or self.gate_mads <= 0:
            raise ValueError('max_step, min_gate and gate_mads must be positive')


@dataclass
class ScaleConfig:
    """Which sensor makes the outputs metric, and how.

    Attributes:
        source: 'none' (outputs stay in VGGT's scale-free units, today's behaviour), 'depth'
            (aligned depth image), 'odometry' (odom -> base_link), 'camera_height' (known
            camera height above a flat floor), 'rig_baseline' (a multi-camera rig's known
            baselines vs VGGT's camera centres).
        depth, odometry, camera_height, rig_baseline: per-source settings.
        filter: fusion across windows.
        sync_queue_size, sync_slop_s: image <-> depth pairing (message_filters'
            ApproximateTimeSynchronizer ``queue_size`` and ``slop``), the same in the node and
            the replay tool.

    """

    source: Source = field(default='none', metadata=_meta(
        "Metric scale source: none (outputs in VGGT's scale-free units), depth (aligned depth "
        'image), odometry (odom -> base_link from TF or nav_msgs/Odometry), camera_height '
        '(known camera height above a flat floor).'))
    sync_queue_size: int = field(default=10, metadata=_meta(
        'Image <-> depth pairing: messages kept per input (ApproximateTime queue_size).',
        (1, 1000)))
    sync_slop_s: float = field(default=0.02, metadata=_meta(
        'Image <-> depth pairing: largest stamp difference in seconds (ApproximateTime slop).',
        (0.0, 10.0)))
    depth: DepthScaleConfig = field(default_factory=DepthScaleConfig)
    odometry: OdometryScaleConfig = field(default_factory=OdometryScaleConfig)
    camera_height: CameraHeightConfig = field(default_factory=CameraHeightConfig)
    rig_baseline: RigBaselineConfig = field(default_factory=RigBaselineConfig)
    filter: ScaleFilterConfig = field(default_factory=ScaleFilterConfig)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f'scale source must be one of {SOURCES}, got {self.source!r}')
