# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Settings of the metric-scale sources and of the fusion filter (one dataclass per part)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vggt4d_ros.runtime.scale.rig_baseline import RigBaselineConfig

Source = Literal['none', 'depth', 'odometry', 'camera_height', 'rig_baseline']
SOURCES: tuple[str, ...] = ('none', 'depth', 'odometry', 'camera_height', 'rig_baseline')


@dataclass
class DepthScaleConfig:
    """Aligned depth image vs VGGT depth.

    Attributes:
        min_range_m: sensor depths below this are invalid (driver noise next to the lens).
        max_range_m: sensor depths above this are invalid (noise grows with distance).
        pixel_stride: compare every n-th network pixel in x and y; None: about 48 samples
            along the shorter network side (every 8th pixel at 392 x 518).
        conf_percentile: drop the window's lowest-confidence VGGT pixels below this percentile.
        mask_dilation_px: grow dynamic masks by this radius (network pixels) before excluding.
        min_pixels: fewer valid pixel pairs in the window -> no estimate ('too_few_pixels').

    """

    min_range_m: float = 0.1
    max_range_m: float = 6.0
    pixel_stride: int | None = None
    conf_percentile: float = 25.0
    mask_dilation_px: int = 2
    min_pixels: int = 200

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_range_m < self.max_range_m:
            raise ValueError('need 0 <= min_range_m < max_range_m')
        if (self.pixel_stride is not None and self.pixel_stride < 1) \
                or self.mask_dilation_px < 0 or self.min_pixels < 1:
            raise ValueError('pixel_stride and min_pixels must be >= 1, mask_dilation_px >= 0')


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

    min_travel_m: float = 0.2
    max_gap_s: float = 0.5
    max_speed_mps: float = 5.0
    buffer_s: float = 30.0
    max_ratio_spread: float = 0.2

    def __post_init__(self) -> None:
        if self.min_travel_m <= 0 or self.max_gap_s <= 0 or self.max_speed_mps <= 0:
            raise ValueError('min_travel_m, max_gap_s and max_speed_mps must be positive')


@dataclass
class CameraHeightConfig:
    """Known camera height above a flat floor vs the ground plane in VGGT units.

    Attributes:
        camera_height_m: camera height above the floor in metres; None takes the z of the
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

    camera_height_m: float | None = None
    max_tilt_deg: float = 10.0
    inlier_fraction: float = 0.01
    min_floor_fraction: float = 0.15
    min_points: int = 200
    max_points: int = 6000
    ransac_iterations: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.camera_height_m is not None and not self.camera_height_m > 0:
            raise ValueError('camera_height_m must be positive (or None: from the extrinsic)')
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

    history: int = 15
    min_history: int = 3
    gate_mads: float = 4.0
    min_gate: float = 0.05
    drift_per_window: float = 0.003
    min_spread: float = 0.005
    max_step: float = 0.02
    max_consecutive_rejects: int = 5

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

    """

    source: Source = 'none'
    depth: DepthScaleConfig = field(default_factory=DepthScaleConfig)
    odometry: OdometryScaleConfig = field(default_factory=OdometryScaleConfig)
    camera_height: CameraHeightConfig = field(default_factory=CameraHeightConfig)
    rig_baseline: RigBaselineConfig = field(default_factory=RigBaselineConfig)
    filter: ScaleFilterConfig = field(default_factory=ScaleFilterConfig)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f'scale source must be one of {SOURCES}, got {self.source!r}')
