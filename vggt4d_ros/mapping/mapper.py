# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Chain windows into one global frame, fuse static points, extend the trajectory.

Each ``WindowResult`` lives in its own frame (window frame 0's camera, VGGT's per-window scale).
The mapper finds the Sim(3) ``window -> global`` and applies it:

1. First window (or after a fresh start): its frame-0 camera becomes the global origin and its
   scale the map scale (times ``scale_hint`` if given: then map units are metres).
2. Dense alignment: overlap frames (frames of the previous window seen again) give the same
   pixel twice, once in global coordinates (stored from the previous window) and once in the new
   window's coordinates. Pixels static and confident in both windows feed a confidence-weighted
   Umeyama Sim(3) with Huber IRLS (VGGT-Long's recipe, re-implemented).
3. Fallback (too few such pixels): pose chaining through the best shared frame: the shared
   frame keeps its global pose and the scale is the median per-pixel depth ratio.
4. Reset (counted): the fit is implausible (high residual, few inliers, scale jump) -> a new map
   segment anchored by pose chaining (continuous pose, map cleared by default); time going
   backwards, an explicit new segment or no shared frame -> fresh start at the origin.
5. Metric scale (optional): ``scale_hint`` (metres per unit of this window) is divided by the
   window's scale in raw map units (the chain's) and fused by ``scale_fusion`` into metres per
   raw map unit. The first fused value rescales the segment once (map, trajectory, overlap):
   from then on the global frame is in metres; later changes of the fused value scale each new
   window about its newest overlap camera, so the chain stays continuous (no jump).

Work per window is done on pixel grids subsampled by ``pixel_stride`` (network pixels).

Rig windows (``result.layout``, T steps x N views): frames are matched between windows by
(view, stamp), all views are fused into the one static map and align together, and the
trajectory holds one pose per step, the reference camera's (view 0; ``runtime.rig``'s
``base_poses`` turns it into base_link). Time order is checked on the reference camera's
stamps. For N = 1 the key is (0, stamp): the single-camera mapper exactly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import math
import time
from typing import Protocol

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import ResizeCrop
from vggt4d_ros.geometry.sim3 import robust_umeyama
from vggt4d_ros.geometry.sim3 import Sim3
from vggt4d_ros.geometry.unproject import PIXEL_INDEX
from vggt4d_ros.geometry.unproject import unproject_grid
from vggt4d_ros.mapping.trajectory import Trajectory
from vggt4d_ros.mapping.voxel_map import VoxelMap
from vggt4d_ros.mapping.voxel_map import VoxelMapConfig
from vggt4d_ros.motion.result import WindowResult


@dataclass
class MapperConfig:
    """Mapper settings (units: network pixels, relative errors are fractions of depth).

    Attributes:
        voxel: voxel map settings.

    """

    pixel_stride: int = field(default=8, metadata={
        'description': 'sample every n-th pixel in x and y for alignment and the map.',
        'range': (1, 256)})
    conf_percentile: float = field(default=25.0, metadata={
        'description': "drop each window's lowest-confidence pixels below this percentile.",
        'range': (0.0, 100.0)})
    min_conf: float = field(default=1.0, metadata={
        'description': 'absolute depth-confidence floor (VGGT confidences are >= 1).',
        'range': (0.0, 1000000.0)})
    mask_dilation_px: int = field(default=2, metadata={
        'description':
            'grow dynamic masks by this radius before excluding pixels, so object borders do not'
            ' leak into the static map.', 'range': (0, 1000)})
    max_align_points: int = field(default=8_000, metadata={
        'description': 'cap on point pairs in the Sim(3) fit (evenly subsampled).',
        'range': (1, 100000000)})
    min_align_points: int = field(default=200, metadata={
        'description': 'fewer static confident pairs -> pose-chaining fallback.',
        'range': (0, 100000000)})
    huber_delta: float = field(default=0.02, metadata={
        'description': "IRLS Huber threshold relative to each point's depth.",
        'range': (0.0, 1000.0)})
    irls_iterations: int = field(default=4, metadata={
        'description': 'IRLS iterations after the first weighted fit.', 'range': (0, 1000)})
    inlier_threshold: float = field(default=0.05, metadata={
        'description': 'a pair is an inlier if its residual / depth is below this.',
        'range': (0.0, 1000.0)})
    max_median_residual: float = field(default=0.1, metadata={
        'description': 'alignment fails above this median residual / depth.',
        'range': (0.0, 1000.0)})
    min_inlier_ratio: float = field(default=0.3, metadata={
        'description': 'alignment fails below this (confidence-weighted) inlier fraction.',
        'range': (0.0, 1.0)})
    max_scale_jump: float = field(default=8.0, metadata={
        'description':
            "alignment fails if the window scale differs from the previous window's by more than"
            ' this factor (either way).', 'range': (1.0, 1000000.0)})
    clear_map_on_reset: bool = field(default=True, metadata={
        'description': 'drop the voxel map when a reset starts a new segment.'})
    max_trajectory_poses: int = field(default=200_000, metadata={
        'description': 'bound on stored poses.', 'range': (1, 1000000000)})
    voxel: VoxelMapConfig = field(default_factory=VoxelMapConfig)

    def __post_init__(self) -> None:
        if self.pixel_stride < 1 or self.mask_dilation_px < 0:
            raise ValueError('pixel_stride must be >= 1 and mask_dilation_px >= 0')
        if not 0.0 <= self.conf_percentile < 100.0:
            raise ValueError('conf_percentile must be in [0, 100)')


@dataclass
class AlignmentStats:
    """How a window was placed in the global frame.

    Attributes:
        method: 'first' | 'dense' | 'pose_chain' | 'reset_anchor' | 'fresh'.
        num_points: point pairs used (dense) or depth-ratio pixels (pose chaining).
        inlier_ratio: confidence-weighted fraction of pairs under ``inlier_threshold``.
        median_residual: median residual / depth of the pairs.
        scale: window -> global scale.
        scale_ratio: scale / previous window's scale (1 for the first window).

    """

    method: str = 'first'
    num_points: int = 0
    inlier_ratio: float = float('nan')
    median_residual: float = float('nan')
    scale: float = 1.0
    scale_ratio: float = 1.0


@dataclass
class MetricInfo:
    """Whether a window's outputs are metric, and how the scale was applied.

    Attributes:
        metric: the window's outputs (poses, cloud, map) are in metres; False: VGGT units of
            the segment's first window (no scale known yet, or no scale source).
        metres_per_map_unit: fused metres per raw map unit (nan while not metric).
        raw_scale: the window's scale in raw map units (the Sim(3) chain's, before metric).
        measured: this window's hint in metres per raw map unit (nan without a hint).
        rescaled: factor this window applied to everything already in the segment (map,
            trajectory) when the outputs first became metric; 1.0 otherwise.
        change: the similarity (global frame) by which this window's scale differs from the
            previous window's, None when it does not: ``Sim3(rescaled)`` when the outputs
            first became metric (the whole segment was scaled by it), else the fused scale's
            correction applied to this window's frames, a scaling about the newest overlap
            camera (the chain stays continuous there; the map already stored keeps its
            place). State kept in the previous scale (the planner outputs' tracks) follows it.

    """

    metric: bool = False
    metres_per_map_unit: float = float('nan')
    raw_scale: float = 1.0
    measured: float = float('nan')
    rescaled: float = 1.0
    change: Sim3 | None = None


class ScaleFusion(Protocol):
    """Fuses per-window metric measurements (``runtime.scale.filter.ScaleFilter`` is one)."""

    def update(self, metres_per_map_unit: float | None, spread: float | None = None
               ) -> float | None:
        """Take one window's measurement (None: none); return the fused value or None."""

    def reset(self) -> None:
        """Map units changed (fresh segment): forget."""


class LatestScale:
    """Pass-through fusion: the latest measurement wins; windows without one keep it."""

    def __init__(self) -> None:
        self.value: float | None = None

    def update(self, metres_per_map_unit: float | None, spread: float | None = None
               ) -> float | None:
        if metres_per_map_unit is not None:
            self.value = float(metres_per_map_unit)
        return self.value

    def reset(self) -> None:
        self.value = None


@dataclass
class MapUpdate:
    """What one window changed, for publishing.

    Attributes:
        stamps_ns: K stamps of the window's NEW frames (overlap frames were output before).
        new_indices: K indices of those frames in the window.
        views: K cameras of those frames (all 0 for one camera).
        poses: [K,4,4] float64 world-from-camera poses in the global frame (OpenCV axes).
        points_xyz: [M,3] float32 static confident points fused by this window, global frame
            (the new frames; all frames when a reset emptied the map).
        points_rgb: [M,3] uint8 colours of those points.
        reset: True if this window abandoned the previous map segment.
        reset_reason: '' or 'alignment_failed' | 'time_backwards' | 'new_segment' | 'no_overlap'.
        segment: map segment of this window.
        alignment: alignment statistics.
        window_to_global: the Sim(3) applied to the window.
        map_size: stored voxels after fusion.
        timings: seconds per mapper stage.
        metric: metric-scale state of this window (``metric.metric`` False: VGGT units).

    """

    stamps_ns: list[int]
    new_indices: list[int]
    poses: np.ndarray
    points_xyz: np.ndarray
    points_rgb: np.ndarray
    reset: bool
    reset_reason: str
    segment: int
    alignment: AlignmentStats
    window_to_global: Sim3
    map_size: int
    timings: dict[str, float] = field(default_factory=dict)
    metric: MetricInfo = field(default_factory=MetricInfo)
    views: list[int] = field(default_factory=list)

    @property
    def segment_rescaled(self) -> bool:
        """Whether this window scaled everything the segment held (the outputs became metric)."""
        return self.metric.rescaled != 1.0


#: A frame's identity across windows: (view, stamp ns).
FrameKey = tuple[int, int]


@dataclass
class _Samples:
    """A window's subsampled pixels, all numpy, S frames of hs x ws samples."""

    depth: np.ndarray  # [S,hs,ws] float32
    conf: np.ndarray  # [S,hs,ws] float32
    usable: np.ndarray  # [S,hs,ws] bool: static, confident, valid depth
    depth_ok: np.ndarray  # [S,hs,ws] bool: valid depth only
    points: np.ndarray  # [S,hs,ws,3] float32, window frame
    images: torch.Tensor  # [S,3,h,w] the result's images; colours are read only where fused
    cam_to_window: np.ndarray  # [S,4,4] float64
    grid_key: tuple[int, ...]  # network size and stride; pixels pair up only if equal


@dataclass
class _StoredFrame:
    """One frame of the previous window and the transform that placed it in the global frame.

    Points stay in window coordinates; only the pixels an alignment uses get transformed.
    """

    points: np.ndarray  # [hs,ws,3] float32, previous window's frame
    depth: np.ndarray  # [hs,ws] float32, previous window's units
    to_global: Sim3
    conf: np.ndarray  # [hs,ws]
    usable: np.ndarray  # [hs,ws] bool
    depth_ok: np.ndarray  # [hs,ws] bool
    pose: np.ndarray  # [4,4] global world-from-camera
    grid_key: tuple[int, ...]


@dataclass
class MapperStats:
    """Counters: windows, new frames, ignored scale hints, resets and methods by name."""

    windows: int = 0
    frames: int = 0
    bad_hints: int = 0
    resets: Counter = field(default_factory=Counter)
    methods: Counter = field(default_factory=Counter)


class Mapper:
    """Streaming mapper; call :meth:`integrate` once per window, in time order.

    Args:
        config: mapper settings.
        scale_fusion: fuses metric scale hints across windows (default :class:`LatestScale`:
            the latest hint wins). Unused while no hint is given.

    """

    def __init__(self, config: MapperConfig | None = None,
                 scale_fusion: ScaleFusion | None = None) -> None:
        self.config = config or MapperConfig()
        self.scale_fusion = scale_fusion if scale_fusion is not None else LatestScale()
        self._metric: float | None = None  # metres per raw map unit applied to the map
        self.map = VoxelMap(self.config.voxel)
        self.trajectory = Trajectory(self.config.max_trajectory_poses)
        self.stats = MapperStats()
        self.segment = 0
        self._stored: dict[FrameKey, _StoredFrame] = {}
        self._last_stamp: int | None = None
        self._last_scale = 1.0

    def reset(self) -> None:
        """Forget everything (map, trajectory, overlap); the next window starts fresh."""
        self.map.clear()
        self.trajectory.clear()
        self._stored = {}
        self._last_stamp = None
        self.segment += 1

    # -- public entry -----------------------------------------------------------------------

    def integrate(
        self,
        result: WindowResult,
        is_new: list[bool] | None = None,
        new_segment: bool = False,
        scale_hint: float | None = None,
        scale_spread: float | None = None,
    ) -> MapUpdate:
        """Place a window in the global frame and fuse its new frames.

        Args:
            result: the window (any device).
            is_new: per frame, False for overlap frames already integrated by the previous
                window. Default: frames (view, stamp) the previous window had are overlap.
            new_segment: the window manager reset; start a fresh segment.
            scale_hint: metres per unit of this window (e.g. median sensor depth / predicted
                depth), fused by ``scale_fusion`` (step 5 of the module docstring). A
                non-finite or non-positive hint is ignored (counted in ``stats.bad_hints``).
            scale_spread: relative 1-sigma of the hint (passed to the fusion).

        Returns:
            The map update (new frames' poses, window cloud, reset and alignment info).

        """
        timings: dict[str, float] = {}
        start = time.perf_counter()
        if scale_hint is not None and not (np.isfinite(scale_hint) and scale_hint > 0):
            self.stats.bad_hints += 1
            scale_hint = None
        samples = self._sample(result)
        timings['sample'] = time.perf_counter() - start
        stamps = [int(s) for s in result.stamps_ns]
        views = result.view_index
        keys = list(zip(views, stamps))
        if is_new is None:
            is_new = [key not in self._stored for key in keys]
        if len(is_new) != len(stamps):
            raise ValueError('is_new must have one flag per frame')

        tic = time.perf_counter()
        transform, stats, reason = self._place(samples, keys, is_new, new_segment)
        transform, metric = self._make_metric(samples, is_new, transform, stats, scale_hint,
                                              scale_spread)
        timings['align'] = time.perf_counter() - tic

        tic = time.perf_counter()
        update = self._apply(samples, keys, is_new, transform, stats, reason)
        update.metric = metric
        timings['fuse'] = time.perf_counter() - tic
        timings['total'] = time.perf_counter() - start
        update.timings = timings
        return update

    # -- sampling ---------------------------------------------------------------------------

    def _sample(self, result: WindowResult) -> _Samples:
        """Subsample, threshold and unproject a window's pixels on a regular grid."""
        cfg = self.config
        stride = cfg.pixel_stride
        with torch.no_grad():
            depth = result.depth[:, ::stride, ::stride].float().cpu().numpy()
            conf = result.depth_conf[:, ::stride, ::stride].float().cpu().numpy()
            dynamic = _dilated_subsample(result.refined_masks, cfg.mask_dilation_px, stride)
            intrinsics = result.intrinsics.double().cpu().numpy()
            cam_to_window = result.cam_to_world().double().cpu().numpy()
        depth_ok = np.isfinite(depth) & (depth > 0) & _inside_image(result.transform, stride)
        candidates = conf[depth_ok & ~dynamic]
        threshold = cfg.min_conf
        if cfg.conf_percentile > 0 and candidates.size:
            # An evenly thinned subset estimates the percentile well at a fraction of the cost.
            thinned = candidates[:: max(1, candidates.size // 16384)]
            rank = int(cfg.conf_percentile / 100.0 * (thinned.size - 1))
            threshold = max(threshold, float(np.partition(thinned, rank)[rank]))
        usable = depth_ok & ~dynamic & (conf >= threshold)
        points = unproject_grid(depth, intrinsics, cam_to_window, stride,
                                pixel_offset=PIXEL_INDEX)
        grid_key = tuple(result.transform.network_hw) + (stride,)
        return _Samples(
            depth, conf, usable, depth_ok, points, result.images, cam_to_window, grid_key
        )

    # -- placement --------------------------------------------------------------------------

    def _place(
        self,
        samples: _Samples,
        keys: list[FrameKey],
        is_new: list[bool],
        new_segment: bool,
    ) -> tuple[Sim3, AlignmentStats, str]:
        # Time order on the reference camera (a rig's other views may be jittered within slop).
        new_stamps = [stamp for (view, stamp), new in zip(keys, is_new) if new and view == 0]
        went_back = (
            self._last_stamp is not None
            and bool(new_stamps)
            and min(new_stamps) <= self._last_stamp
        )
        if self._last_stamp is None:
            return self._fresh(samples), AlignmentStats('first'), ''
        if went_back or new_segment:
            reason = 'time_backwards' if went_back else 'new_segment'
            return self._fresh(samples), AlignmentStats('fresh'), reason
        shared = [
            i
            for i, (key, new) in enumerate(zip(keys, is_new))
            if not new
            and key in self._stored
            and self._stored[key].grid_key == samples.grid_key
        ]
        if not shared:
            return self._fresh(samples), AlignmentStats('fresh'), 'no_overlap'
        dense = self._dense_alignment(samples, keys, shared)
        if dense is None:
            transform, stats = self._pose_chain(samples, keys, shared)
            return transform, stats, ''
        transform, stats = dense
        if self._plausible(stats):
            return transform, stats, ''
        anchored, chain_stats = self._pose_chain(samples, keys, shared)
        chain_stats.method = 'reset_anchor'
        chain_stats.inlier_ratio = stats.inlier_ratio
        chain_stats.median_residual = stats.median_residual
        return anchored, chain_stats, 'alignment_failed'

    def _fresh(self, samples: _Samples) -> Sim3:
        """Window frame 0's camera becomes the origin; scale 1 (metric comes later, step 5)."""
        first = samples.cam_to_window[0]
        rigid = Sim3(1.0, first[:3, :3], first[:3, 3])
        return rigid.inverse()

    def _dense_alignment(
        self,
        samples: _Samples,
        keys: list[FrameKey],
        shared: list[int],
    ) -> tuple[Sim3, AlignmentStats] | None:
        """Robust weighted Sim(3) on pixels static and confident in both windows."""
        cfg = self.config
        src, dst, weight, depth = [], [], [], []
        for index in shared:
            stored = self._stored[keys[index]]
            both = stored.usable & samples.usable[index]
            src.append(samples.points[index][both])
            dst.append(stored.to_global.apply(stored.points[both]))
            weight.append(np.sqrt(stored.conf[both] * samples.conf[index][both]))
            depth.append(stored.depth[both] * np.float32(stored.to_global.scale))
        src_all = np.concatenate(src)
        if len(src_all) < cfg.min_align_points:
            return None
        dst_all, w_all, d_all = np.concatenate(dst), np.concatenate(weight), np.concatenate(depth)
        if len(src_all) > cfg.max_align_points:
            step = int(np.ceil(len(src_all) / cfg.max_align_points))
            src_all, dst_all = src_all[::step], dst_all[::step]
            w_all, d_all = w_all[::step], d_all[::step]
        if not _well_spread(src_all):
            return None  # points on a line or a single spot fix no rotation: chain poses
        try:
            fit = robust_umeyama(
                src_all,
                dst_all,
                w_all,
                with_scale=True,
                huber_delta=cfg.huber_delta * d_all,
                iterations=cfg.irls_iterations,
            )
        except ValueError:
            return None
        transform = fit.transform
        relative = fit.residuals / np.maximum(d_all, 1e-9)
        inlier = float(w_all[relative < cfg.inlier_threshold].sum() / max(w_all.sum(), 1e-12))
        stats = AlignmentStats(
            'dense',
            len(src_all),
            inlier,
            float(np.median(relative)),
            transform.scale,
            transform.scale / self._last_scale,
        )
        return transform, stats

    def _plausible(self, stats: AlignmentStats) -> bool:
        cfg = self.config
        jump = max(stats.scale_ratio, 1.0 / max(stats.scale_ratio, 1e-12))
        return (
            np.isfinite(stats.median_residual)
            and stats.median_residual <= cfg.max_median_residual
            and stats.inlier_ratio >= cfg.min_inlier_ratio
            and jump <= cfg.max_scale_jump
        )

    def _pose_chain(
        self,
        samples: _Samples,
        keys: list[FrameKey],
        shared: list[int],
    ) -> tuple[Sim3, AlignmentStats]:
        """Keep the best shared frame's global pose; scale from the median depth ratio."""
        counts = []
        for index in shared:
            stored = self._stored[keys[index]]
            counts.append(int((stored.depth_ok & samples.depth_ok[index]).sum()))
        best = shared[int(np.argmax(counts))]
        stored = self._stored[keys[best]]
        both = stored.depth_ok & samples.depth_ok[best]
        if both.any():
            ratio = stored.depth[both] / samples.depth[best][both]
            scale = float(np.median(ratio)) * stored.to_global.scale
        else:
            scale = self._last_scale
        window_cam = samples.cam_to_window[best]
        global_cam = stored.pose
        transform = (
            Sim3(1.0, global_cam[:3, :3], global_cam[:3, 3])
            @ Sim3(scale)
            @ Sim3(1.0, window_cam[:3, :3], window_cam[:3, 3]).inverse()
        )
        stats = AlignmentStats(
            'pose_chain', int(both.sum()), scale=scale, scale_ratio=scale / self._last_scale
        )
        return transform, stats

    # -- metric scale -----------------------------------------------------------------------

    def _make_metric(
        self,
        samples: _Samples,
        is_new: list[bool],
        transform: Sim3,
        stats: AlignmentStats,
        scale_hint: float | None,
        scale_spread: float | None,
    ) -> tuple[Sim3, MetricInfo]:
        """Fuse the hint in map units and make the window (and, once, the segment) metric."""
        fresh = stats.method in ('first', 'fresh')
        if fresh:
            # New map units: earlier measurements say nothing about them.
            self.scale_fusion.reset()
            self._metric = None
        raw_scale = transform.scale / (self._metric or 1.0)
        measured = None if scale_hint is None else float(scale_hint) / raw_scale
        fused = self.scale_fusion.update(measured, scale_spread)
        info = MetricInfo(raw_scale=raw_scale,
                          measured=float('nan') if measured is None else measured)
        if fused is None or not (math.isfinite(fused) and fused > 0):
            if self._metric is not None:
                fused = self._metric  # a fusion that forgot keeps the applied scale
            else:
                return transform, info
        if self._metric is None:
            if not fresh:  # a fresh window starts a new segment: nothing earlier to rescale
                info.rescaled = fused
                info.change = Sim3(fused)
                self._rescale_segment(fused)
            transform = Sim3(fused) @ transform
        else:
            factor = fused / self._metric
            overlap = [i for i, new in enumerate(is_new) if not new]
            anchor = samples.cam_to_window[overlap[-1] if overlap else 0][:3, 3]
            pivot = transform.apply(anchor)
            # Scale about the newest overlap camera: the chain stays continuous there.
            correction = Sim3(factor, np.eye(3), (1.0 - factor) * pivot)
            transform = correction @ transform
            info.change = correction if factor != 1.0 else None
        self._metric = fused
        info.metric = True
        info.metres_per_map_unit = fused
        stats.scale = transform.scale
        return transform, info

    def _rescale_segment(self, factor: float) -> None:
        """Scale everything the current segment holds (map, trajectory, overlap) by ``factor``."""
        if factor == 1.0:
            return
        self.map.rescale(factor)
        self.trajectory.scale_segment(self.segment, factor)
        scaler = Sim3(factor)
        for stored in self._stored.values():
            stored.to_global = scaler @ stored.to_global
            stored.pose = stored.pose.copy()
            stored.pose[:3, 3] *= factor
        self._last_scale *= factor

    # -- applying ---------------------------------------------------------------------------

    def _apply(
        self,
        samples: _Samples,
        keys: list[FrameKey],
        is_new: list[bool],
        transform: Sim3,
        stats: AlignmentStats,
        reason: str,
    ) -> MapUpdate:
        self.stats.windows += 1
        self.stats.methods[stats.method] += 1
        reset = bool(reason)
        if reset:
            self._start_segment(reason)
        poses = _orthonormalised(transform.transform_poses(samples.cam_to_window))
        new_indices = [i for i, new in enumerate(is_new) if new]
        fused = new_indices
        if reset and self.config.clear_map_on_reset:
            fused = list(range(len(keys)))  # the emptied map restarts from the whole window
        select = samples.usable[fused]
        cloud_xyz = transform.apply(samples.points[fused][select])
        cloud_rgb = _colours(samples.images, fused, self.config.pixel_stride)[select]
        self.map.integrate(cloud_xyz, cloud_rgb)
        new_stamps = [keys[i][1] for i in new_indices]
        # One trajectory pose per step: the reference camera's (every frame for one camera).
        later = [i for i, stamp in zip(new_indices, new_stamps)
                 if keys[i][0] == 0 and (self._last_stamp is None or stamp > self._last_stamp)]
        if later:
            self.trajectory.extend([keys[i][1] for i in later], poses[later], self.segment)
            self._last_stamp = keys[later[-1]][1]
        self.stats.frames += len(new_indices)
        self._stored = {
            key: _StoredFrame(
                samples.points[i],
                samples.depth[i],
                transform,
                samples.conf[i],
                samples.usable[i],
                samples.depth_ok[i],
                poses[i],
                samples.grid_key,
            )
            for i, key in enumerate(keys)
        }
        self._last_scale = transform.scale
        stats.scale = transform.scale
        return MapUpdate(
            stamps_ns=new_stamps,
            new_indices=new_indices,
            poses=poses[new_indices],
            points_xyz=cloud_xyz.astype(np.float32, copy=False),
            points_rgb=cloud_rgb,
            reset=reset,
            reset_reason=reason,
            segment=self.segment,
            alignment=stats,
            window_to_global=transform,
            map_size=len(self.map),
            views=[keys[i][0] for i in new_indices],
        )

    def _start_segment(self, reason: str) -> None:
        self.stats.resets[reason] += 1
        self.segment += 1
        if self.config.clear_map_on_reset:
            self.map.clear()
        if reason == 'time_backwards':
            # Stamps restart: the old trajectory cannot be continued in time order.
            self.trajectory.clear()
            self._last_stamp = None


def _colours(images: torch.Tensor, frames: list[int], stride: int) -> np.ndarray:
    """RGB [K,hs,ws,3] uint8 of the grid samples of the selected frames of images [S,3,h,w]."""
    with torch.no_grad():
        # Stride first: indexing frames first would copy whole full-resolution images.
        picked = images[:, :, ::stride, ::stride][frames].float().cpu().numpy()
    rgb = np.clip(picked.transpose(0, 2, 3, 1) * 255.0 + 0.5, 0.0, 255.0)
    return rgb.astype(np.uint8)


def _well_spread(points: np.ndarray) -> bool:
    """Check that points [N,3] span at least a plane (second principal axis not negligible)."""
    centred = points - points.mean(axis=0)
    spread = np.linalg.eigvalsh(centred.T @ centred)  # ascending
    return bool(spread[1] > 1e-6 * spread[2])


def _inside_image(plan: ResizeCrop, stride: int) -> np.ndarray:
    """Grid samples [hs,ws] that show the camera image (False on pad-mode white borders)."""
    height, width = plan.network_hw
    top, left = plan.offset_yx
    rows = np.arange(0, height, stride)
    cols = np.arange(0, width, stride)
    # Network pixel y shows resized row y + top; it is image content if that row exists.
    row_ok = (rows + top >= 0) & (rows + top < plan.resized_hw[0])
    col_ok = (cols + left >= 0) & (cols + left < plan.resized_hw[1])
    return row_ok[:, None] & col_ok[None, :]


def _orthonormalised(poses: np.ndarray) -> np.ndarray:
    """Snap rotations of poses [S,4,4] to the nearest rotation matrix (SVD).

    Extrinsics arrive in float32, so their rotations are orthonormal only to ~1e-7; the
    published pose, its quaternion and the stored trajectory should agree exactly.
    """
    u, _, vt = np.linalg.svd(poses[:, :3, :3])
    fix = np.ones((len(poses), 3))
    fix[:, 2] = np.sign(np.linalg.det(u @ vt))
    out = poses.copy()
    out[:, :3, :3] = (u * fix[:, None, :]) @ vt
    return out


def _dilated_subsample(masks: torch.Tensor, radius: int, stride: int) -> np.ndarray:
    """Dynamic masks [S,h,w] bool -> [S,hs,ws] bool on the sampling grid, grown by ``radius``.

    A sample is dynamic if the pixel itself or any of the 8 pixels ``radius`` away (in x, y
    and diagonally) is dynamic: a sparse 3x3 dilation that costs 9 strided reads of the mask
    instead of a dense max-pool over every pixel (~10 ms per window on a CPU).
    """
    height, width = masks.shape[1:]
    rows, cols = len(range(0, height, stride)), len(range(0, width, stride))
    out = masks[:, ::stride, ::stride].clone()
    if radius == 0:
        return out.cpu().numpy()
    for dy in (-radius, 0, radius):
        row_sel = _shifted(rows, stride, dy, height)
        for dx in (-radius, 0, radius):
            if dy == 0 and dx == 0:
                continue
            col_sel = _shifted(cols, stride, dx, width)
            source = masks[:, row_sel[0]::stride, col_sel[0]::stride]
            source = source[:, : row_sel[2] - row_sel[1], : col_sel[2] - col_sel[1]]
            out[:, row_sel[1]:row_sel[2], col_sel[1]:col_sel[2]] |= source
    return out.cpu().numpy()


def _shifted(count: int, stride: int, shift: int, size: int) -> tuple[int, int, int]:
    """Find samples ``i`` in [first, last) whose pixel ``i * stride + shift`` lies in [0, size).

    Returns:
        (first pixel, first sample, last sample + 1).

    """
    first = max(0, -(shift // stride))  # ceil(-shift / stride) for negative shifts
    # Largest i with i * stride + shift <= size - 1, plus one.
    last = min(count, (size - 1 - shift) // stride + 1)
    return first * stride + shift, first, max(first, last)
