# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Settings of the planner outputs (dynamic cloud, object tracks, occupancy grids).

Lengths are in **map units**: VGGT's scale-free units (about the first window's mean scene
depth) unless the engine gets metric scale hints, then metres. Times are in seconds of image
stamps. Every output has its own off switch.

Every scalar field carries its description and range in ``field(metadata=...)``: the node
declares them as ``perception.*`` parameters (``runtime/parameters.py``). The output frame
(``PerceptionConfig.output_from_world``) is not a parameter: the front end sets it from its
frame convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np

from vggt4d_ros.config_fields import field_meta as _meta

#: Rotation taking VGGT's OpenCV optical axes (x right, y down, z forward) to z-up axes
#: (x forward, y left, z up): the node's ``map_to_camera`` convention (same matrix as
#: ``ros.frames.R_BODY_FROM_OPTICAL``; the core may not import ros/, a test keeps them equal).
Z_UP_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def default_output_from_world() -> np.ndarray:
    """[4,4] output frame from the engine's global frame: the first camera, levelled, z up."""
    pose = np.eye(4)
    pose[:3, :3] = Z_UP_FROM_OPTICAL
    return pose


@dataclass
class DynamicPointsConfig:
    """The dynamic-obstacle cloud: 3D points of the dynamic pixels of every frame.

    Attributes:
        enabled: build the cloud (tracks and the dynamic grid need the points anyway).
        min_conf: depth-confidence floor (VGGT confidences are >= 1); pixels below are dropped.
        conf_percentile: also drop each frame's pixels below this percentile of its
            confidences (VGGT's confidence has no absolute scale; 0 = off).
        max_points_per_frame: bound per frame; more dynamic pixels are thinned by an even,
            deterministic stride over the pixel order (same input, same points).
        max_depth: drop points farther than this from the camera (map units; default: keep all).

    """

    enabled: bool = field(default=True, metadata=_meta(
        'Put the dynamic points in the output (~/dynamic_cloud); tracks and the dynamic grid '
        'need the points anyway.'))
    min_conf: float = field(default=1.0, metadata=_meta(
        'Depth-confidence floor of a dynamic point (VGGT confidences are >= 1).', (0.0, 1e6)))
    conf_percentile: float = field(default=10.0, metadata=_meta(
        "Also drop each frame's dynamic pixels below this percentile of its confidences (0: "
        'off).', (0.0, 99.9)))
    max_points_per_frame: int = field(default=20_000, metadata=_meta(
        'Bound on the dynamic points per frame (more are thinned by an even, deterministic '
        'stride).', (1, 10000000)))
    max_depth: float = field(default=1e6, metadata=_meta(
        'Drop dynamic points farther than this from the camera (map units; the default keeps '
        'all).', (0.0, 1e12)))

    def __post_init__(self) -> None:
        if self.max_points_per_frame < 1:
            raise ValueError('max_points_per_frame must be >= 1')
        if not 0.0 <= self.conf_percentile < 100.0:
            raise ValueError('conf_percentile must be in [0, 100)')


@dataclass
class InstanceConfig:
    """Splitting a frame's dynamic pixels into objects.

    Attributes:
        depth_break: neighbouring pixels whose depths differ by more than this fraction of
            the nearer depth are not connected (two objects overlapping in the image).
        min_pixels: smaller connected parts are not objects (their points stay in the cloud
            with object id 0).
        max_instances: at most this many objects per frame (the largest); the rest -> id 0.
        max_label_iterations: bound on the label propagation's iterations (hooking and
            pointer jumping: compact blobs converge in about 10-20); a labelling cut off by
            the bound may split a part in two (counted in ``unconverged``).

    """

    depth_break: float = field(default=0.08, metadata=_meta(
        'Neighbouring dynamic pixels whose depths differ by more than this fraction of the '
        'nearer one belong to different objects.', (0.0, 100.0)))
    min_pixels: int = field(default=30, metadata=_meta(
        'Smaller connected dynamic parts are not objects (their points keep object id '
        '0).', (1, 100000000)))
    max_instances: int = field(default=32, metadata=_meta(
        'At most this many objects per frame (the largest); the rest get object id '
        '0.', (1, 100000)))
    max_label_iterations: int = field(default=64, metadata=_meta(
        "Bound on the connected-component labelling's iterations (a cut-off labelling may split"
        ' a part; counted).', (1, 100000)))

    def __post_init__(self) -> None:
        if self.min_pixels < 1 or self.max_instances < 1 or self.max_label_iterations < 1:
            raise ValueError('min_pixels, max_instances, max_label_iterations must be >= 1')


@dataclass
class TrackerConfig:
    """Multi-object tracking: assignment, constant-velocity Kalman filter, track life.

    Attributes:
        enabled: track objects.
        gate_distance: largest centroid distance (map units) of an association, plus three
            standard deviations of the track's predicted position.
        mask_overlap_weight: bonus in the assignment cost for the image-box overlap (IoU)
            with the track's detection in the previous frame.
        motion_model: 'constant_acceleration' (default: position, velocity, acceleration
            per axis, white jerk; no lag on curves and speed changes) or
            'constant_velocity' (white acceleration; lags behind accelerating objects).
        accel_noise: process noise of the constant-velocity model, standard deviation of the
            acceleration (units/s^2).
        jerk_noise: process noise of the constant-acceleration model, standard deviation of
            the jerk (units/s^3).
        planar_motion: objects move on the ground: the filter keeps the vertical (output z)
            velocity and acceleration at 0 (the height is still filtered). Needs an output
            frame whose z axis is the true vertical (a tilted one would drop real motion);
            removes the height jitter of the centre estimate (a turning box's visible faces)
            from the velocity.
        measurement_noise: position noise of a detection, as a fraction of its camera range.
        min_measurement_noise: floor of that noise (map units).
        size_change_noise: the noise grows by this factor times the largest relative change
            of the detection's size against the track's (partly hidden objects).
        confirm_hits: detections before a track is confirmed (gets its public id).
        max_miss_s: a track not detected for this long is deleted; an object that comes
            back later gets a new id.
        tentative_max_miss_s: the same for tracks not yet confirmed.
        publish_coasting_s: confirmed tracks missed for at most this long are still output
            (predicted), later ones are kept for re-association but not output.
        max_tracks: bound on live tracks (new objects are not started beyond it, counted).
        confidence_rate: per-frame rate of the detection-rate average used as confidence.
        size_rate: per-detection rate of the size average.
        depth_completion: push the visible surface's centre back by half the object's width
            (the camera sees only its front): 'half_width' or 'none'.
        shape_average_hits: the parts of a detection's centre that depend on which faces of
            the object are visible (the push back along the viewing ray, the depth of the
            centre below the top of the visible points) are averaged over the track's
            detections: a running mean over the first ones, then an exponential average with
            rate 1 / this number. A rigid object's shape does not change, but the faces a
            turning one shows do, and the per-frame values follow them (read as motion).
            1: each frame's own values (the visible-surface centre).
        motion_registration: register each detection's points onto the track's previous
            ones (``registration``: trimmed point-to-plane ICP on the host) and move the
            track's reference point with that motion; the reference point is pulled to the
            detection's centre at ``registration_anchor_rate`` and given to the filter with
            the detection's noise times ``registration_noise_factor``. Falls back to the
            detection's centre without enough points or with a poor fit (counted).
        registration_yaw_only: solve a yaw about the output z axis and a translation (the
            object turns about the vertical: needs a truly vertical output z) instead of a
            full rigid motion.
        registration_anchor_rate: per-detection rate at which the moved reference point is
            pulled to the detection's centre.
        registration_noise_factor: measurement noise of a registered centre, as a multiple of
            the detection's.
        centre_model: how a detection's horizontal centre is found. 'box_fit': an oriented
            rectangle fitted to the footprint of its points in the output x-y plane
            (``box_fit``; needs a truly vertical output z), completed away from the camera
            with the track's remembered extents, for tracks whose footprints are box-like
            (others, and detections with too few points or no viewing ray, keep the
            surface centre); 'surface': the visible surface's centre pushed back along the
            viewing ray (``depth_completion``, ``shape_average_hits``). The height is the
            surface path's either way.
        box_fit_noise_factor: measurement noise of a box-fit centre, as a multiple of the
            detection's (``measurement_noise``, set for the surface centre).
        box_fit_max_per_frame: footprint fits per frame (a rig step: per step) for the
            largest detections; the others take the surface centre (counted:
            ``TrackerStats.box_skipped``). Bounds the fits' work when a frame falls apart
            into many parts: the instances stage's (it fits the first this many labels of
            every frame, on the device) and the host's for a rig step (~0.3 ms per
            detection, docs/performance.md section 13).

    """

    enabled: bool = field(default=True, metadata=_meta(
        'Track objects (~/detections, ~/obstacles, ~/track_markers and the object ids of '
        '~/dynamic_cloud).'))
    gate_distance: float = field(default=0.25, metadata=_meta(
        'Largest centroid distance of an association (map units), plus 3 sigma of the predicted'
        ' position.', (0.0, 1e6)))
    mask_overlap_weight: float = field(default=0.5, metadata=_meta(
        "Assignment-cost bonus for the image-box overlap (IoU) with the track's previous "
        'detection.', (0.0, 100.0)))
    accel_noise: float = field(default=2.0, metadata=_meta(
        'Process noise: standard deviation of the acceleration (map units/s^2).', (0.0, 1e6)))
    motion_model: Literal['constant_acceleration', 'constant_velocity'] = field(
        default='constant_acceleration', metadata=_meta(
            'Track filter: constant_acceleration (position, velocity, acceleration; follows '
            'turning and accelerating objects) or constant_velocity (lags behind them).'))
    jerk_noise: float = field(default=5.0, metadata=_meta(
        'Process noise of the constant-acceleration model: standard deviation of the jerk '
        '(map units/s^3).', (0.0, 1e6)))
    planar_motion: bool = field(default=False, metadata=_meta(
        'Objects move on the ground: keep the vertical (output z) velocity at 0. Only for an '
        'output frame whose z axis is truly vertical.'))
    measurement_noise: float = field(default=0.006, metadata=_meta(
        'Position noise of a detection as a fraction of its camera range.', (0.0, 100.0)))
    min_measurement_noise: float = field(default=0.005, metadata=_meta(
        'Floor of the detection position noise (map units).', (0.0, 1e6)))
    size_change_noise: float = field(default=5.0, metadata=_meta(
        'The detection noise grows by this factor times the relative change of its size against'
        " the track's (partly hidden objects).", (0.0, 1e6)))
    confirm_hits: int = field(default=3, metadata=_meta(
        'Detections before a track is confirmed and gets its public id.', (1, 1000)))
    max_miss_s: float = field(default=1.0, metadata=_meta(
        'A track not detected for this long is deleted (an object back later gets a new '
        'id).', (0.0, 3600.0)))
    tentative_max_miss_s: float = field(default=0.2, metadata=_meta(
        'The same for tracks not yet confirmed.', (0.0, 3600.0)))
    publish_coasting_s: float = field(default=0.5, metadata=_meta(
        'Confirmed tracks missed for at most this long are still output '
        '(predicted).', (0.0, 3600.0)))
    max_tracks: int = field(default=64, metadata=_meta(
        'Bound on live tracks (new objects beyond it are not started; counted).', (1, 100000)))
    confidence_rate: float = field(default=0.3, metadata=_meta(
        "Per-frame rate of the detection-rate average published as a track's "
        "confidence.", (0.0, 1.0)))
    size_rate: float = field(default=0.3, metadata=_meta(
        "Per-detection rate of the track's size average.", (0.0, 1.0)))
    depth_completion: Literal['half_width', 'none'] = field(default='half_width', metadata=_meta(
        "Push the visible surface's centre back along the viewing ray (the camera sees only "
        "an object's front): half_width, or none (the visible points' mean)."))

    shape_average_hits: int = field(default=30, metadata=_meta(
        "Detections over which a track averages the centre's push back along the viewing ray "
        "and its depth below the object's top (1: each frame's own).", (1, 100000)))
    motion_registration: bool = field(default=False, metadata=_meta(
        "Measure an object's motion by registering its points onto the previous detection's "
        "(trimmed ICP) and move the track's reference point with it, instead of taking each "
        "detection's centre as it is (a turning object's visible centre slides)."))
    registration_yaw_only: bool = field(default=True, metadata=_meta(
        'Solve a yaw about the output z axis plus a translation (objects turning about the '
        'vertical; needs a truly vertical output z) instead of a full rigid motion.'))
    registration_anchor_rate: float = field(default=0.5, metadata=_meta(
        "Per-detection rate at which the moved reference point is pulled to the detection's "
        'centre (bounds the drift of chained registrations and the offset of a reference point '
        "off the object's centre).", (0.0, 1.0)))
    registration_noise_factor: float = field(default=0.7, metadata=_meta(
        "Measurement noise of a registered centre, as a multiple of a detection's.",
        (0.01, 100.0)))
    centre_model: Literal['box_fit', 'surface'] = field(default='box_fit', metadata=_meta(
        "Horizontal centre of a detection: box_fit (an oriented rectangle fitted to its points' "
        "ground footprint, completed away from the camera with the track's remembered "
        'extents; for box-like objects, needs a truly vertical output z) or surface (the '
        'visible surface centre pushed back along the viewing ray).'))
    box_fit_noise_factor: float = field(default=0.7, metadata=_meta(
        "Measurement noise of a box-fit centre, as a multiple of a detection's.",
        (0.01, 100.0)))
    box_fit_max_per_frame: int = field(default=8, metadata=_meta(
        'Footprint fits per frame, for the largest detections; the others take the surface '
        "centre (bounds the fits' work, on the device per frame and on the host per rig "
        'step, when a frame falls apart into many parts).',
        (1, 100000)))

    @property
    def needs_points(self) -> bool:
        """Whether ``Tracker.update`` needs each detection's points."""
        return self.motion_registration or self.centre_model == 'box_fit'

    @property
    def order(self) -> int:
        """Kalman state order per axis: 2 (position, velocity) or 3 (+ acceleration)."""
        return 3 if self.motion_model == 'constant_acceleration' else 2

    @property
    def process_noise(self) -> float:
        """White-noise standard deviation of the model's highest derivative."""
        return self.jerk_noise if self.order == 3 else self.accel_noise

    def __post_init__(self) -> None:
        if self.confirm_hits < 1 or self.max_tracks < 1:
            raise ValueError('confirm_hits and max_tracks must be >= 1')
        if self.motion_model not in ('constant_velocity', 'constant_acceleration'):
            raise ValueError(f'unknown motion_model {self.motion_model!r}')
        if self.depth_completion not in ('half_width', 'none'):
            raise ValueError(f'unknown depth_completion {self.depth_completion!r}')
        if self.shape_average_hits < 1:
            raise ValueError('shape_average_hits must be >= 1')
        if self.centre_model not in ('box_fit', 'surface'):
            raise ValueError(f'unknown centre_model {self.centre_model!r}')


@dataclass
class GridConfig:
    """Static / dynamic / combined occupancy grids (nav_msgs/OccupancyGrid semantics).

    The grids lie in the x-y plane of the output frame (z up, see ``PerceptionConfig``),
    cell (0, 0) at ``origin_xy``, rows along +y. A point marks its cell if its height above
    ``ground_z`` is in [``min_height``, ``max_height``]; free cells come from 2D ray casting
    from the camera to every observed point (floor points included).

    Attributes:
        enabled: build the grids.
        resolution: cell edge (map units).
        width, height: cells along x and y.
        origin_xy: output-frame position of cell (0, 0)'s corner.
        ground_z: height of the ground in the output frame (``map_to_camera`` puts the first
            camera at 0, so the floor is at minus the camera height).
        min_height, max_height: height band above the ground that counts as an obstacle.
        pixel_stride: static (and free-space) points: every n-th network pixel in x and y.
        max_range: rays and points beyond this distance from the camera are ignored.
        hit_weight, miss_weight: static log-odds steps (occupied at >= ``occupied_level``,
            free at <= ``-occupied_level``), clamped to +-``max_level``.
        occupied_level, max_level: see above.
        dynamic_decay_s: a dynamic cell not seen again decays to unknown after this long;
            a cell seen free since is free at once (a moving object's cells clear when the
            camera sees the space it left).

    """

    enabled: bool = field(default=True, metadata=_meta(
        'Build the static / dynamic / combined occupancy grids.'))
    resolution: float = field(default=0.05, metadata=_meta(
        'Grid cell edge (map units).', (1e-9, 1e6)))
    width: int = field(default=200, metadata=_meta(
        'Grid cells along x.', (1, 16000000)))
    height: int = field(default=200, metadata=_meta(
        'Grid cells along y.', (1, 16000000)))
    # A list default makes it a parameter ([x, y]); __post_init__ stores a tuple.
    origin_xy: tuple[float, float] = field(default_factory=lambda: [-5.0, -5.0], metadata=_meta(
        "Output-frame position [x, y] of cell (0, 0)'s corner (map units)."))
    ground_z: float = field(default=-1.0, metadata=_meta(
        'Ground height in the output frame (map units; map_to_camera puts the first camera at '
        '0, so the floor is at minus its height).', (-1e6, 1e6)))
    min_height: float = field(default=0.05, metadata=_meta(
        'Lower end of the obstacle height band above the ground (map units).', (-1e6, 1e6)))
    max_height: float = field(default=2.0, metadata=_meta(
        'Upper end of the obstacle height band above the ground (map units).', (-1e6, 1e6)))
    pixel_stride: int = field(default=8, metadata=_meta(
        'Static and free-space points: every n-th network pixel in x and y.', (1, 256)))
    max_range: float = field(default=10.0, metadata=_meta(
        'Rays and points beyond this distance from the camera are ignored (map '
        'units).', (0.0, 1e6)))
    hit_weight: int = field(default=3, metadata=_meta(
        'Static grid: log-odds step of an occupied observation.', (0, 100)))
    miss_weight: int = field(default=1, metadata=_meta(
        'Static grid: log-odds step of a free observation.', (0, 100)))
    occupied_level: int = field(default=3, metadata=_meta(
        'Static grid: occupied at or above this level, free at or below minus it.', (1, 100)))
    max_level: int = field(default=20, metadata=_meta(
        'Static grid: clamp of the log-odds level.', (1, 100)))
    dynamic_decay_s: float = field(default=0.5, metadata=_meta(
        'A dynamic cell not observed again decays to unknown after this long (a cell seen free '
        'since is free at once).', (0.0, 3600.0)))

    def __post_init__(self) -> None:
        if len(self.origin_xy) != 2:
            raise ValueError(f'origin_xy must be [x, y], got {self.origin_xy!r}')
        self.origin_xy = (float(self.origin_xy[0]), float(self.origin_xy[1]))
        if self.resolution <= 0 or self.width < 1 or self.height < 1:
            raise ValueError('resolution must be > 0 and width, height >= 1')
        if self.width * self.height > 16_000_000:
            raise ValueError('grid larger than 16 M cells')
        if self.max_height <= self.min_height:
            raise ValueError('max_height must be above min_height')
        if self.pixel_stride < 1:
            raise ValueError('pixel_stride must be >= 1')


@dataclass
class PerceptionConfig:
    """Planner outputs built from each processed frame (see docs/perception.md).

    Attributes:
        enabled: master switch.
        output_from_world: [4,4] rigid transform from the engine's global frame (the first
            camera's optical frame) to the output frame, whose z axis must point up (gravity)
            for the grids' height band. Default: the node's ``map_to_camera`` world (the first
            camera levelled: x forward, y left, z up). In ``odom_to_base`` pass the base->camera
            extrinsic (``FrameConvention.world_from_vggt``). All outputs are in this frame.
        points: dynamic-cloud settings.
        instances: object-splitting settings.
        tracker: tracking settings.
        grid: occupancy-grid settings.
        cuda_graphs: on CUDA, replay the points and grid stages from a CUDA graph recorded
            at the first window of each frame count and image size (ignored on the CPU).

    """

    enabled: bool = field(default=True, metadata=_meta(
        'Planner outputs: dynamic cloud, object tracks, occupancy grids (docs/perception.md); '
        'off: none of them is computed.'))
    cuda_graphs: bool = field(default=True, metadata=_meta(
        'On CUDA, replay the points and grid stages of a window from a CUDA graph (recorded '
        'once per frame count and image size: fewer launches, same results); ignored on the '
        'CPU.'))
    output_from_world: np.ndarray = field(default_factory=default_output_from_world)
    points: DynamicPointsConfig = field(default_factory=DynamicPointsConfig)
    instances: InstanceConfig = field(default_factory=InstanceConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    grid: GridConfig = field(default_factory=GridConfig)

    def __post_init__(self) -> None:
        matrix = np.asarray(self.output_from_world, dtype=np.float64)
        if matrix.shape != (4, 4):
            raise ValueError(f'output_from_world must be 4x4, got {matrix.shape}')
        rotation = matrix[:3, :3]
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6):
            raise ValueError('output_from_world must be rigid (orthonormal rotation)')
        self.output_from_world = matrix

    def __eq__(self, other: object) -> bool:
        """Field-wise equality, the matrix compared by value (``==`` on arrays is elementwise)."""
        if not isinstance(other, PerceptionConfig):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, item.name), getattr(other, item.name))
            if item.name == 'output_from_world'
            else getattr(self, item.name) == getattr(other, item.name)
            for item in fields(self))
