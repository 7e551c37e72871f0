# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""PerceptionTracker: per processed frame, the planner outputs (cloud, tracks, grids).

Call :meth:`PerceptionTracker.update` once per window with the window's new frames (see
``observation.observations_from_window``). Frames are processed in stamp order; a frame not
newer than the last one is skipped (counted); a frame of a new map segment resets tracks and
grids first (the global frame moved). All outputs are in the output frame
(``PerceptionConfig.output_from_world``), in map units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time

import numpy as np
from scipy import ndimage

from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.perception.dynamic_points import conf_threshold
from vggt4d_ros.perception.dynamic_points import dynamic_points
from vggt4d_ros.perception.dynamic_points import unproject_pixels
from vggt4d_ros.perception.dynamic_points import valid_depth
from vggt4d_ros.perception.instances import label_image
from vggt4d_ros.perception.instances import split_instances
from vggt4d_ros.perception.observation import FrameObservation
from vggt4d_ros.perception.occupancy import OccupancyGrids
from vggt4d_ros.perception.occupancy import OccupancyMapper
from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.perception.tracker import Tracker


@dataclass
class DynamicCloud:
    """Dynamic points of one frame.

    Attributes:
        stamp_ns: the frame's stamp.
        points: [N,3] float32, output frame.
        rgb: [N,3] uint8.
        object_ids: [N] int32 confirmed track id of each point's object, 0 = none.

    """

    stamp_ns: int
    points: np.ndarray
    rgb: np.ndarray
    object_ids: np.ndarray


@dataclass
class PerceptionOutput:
    """What one ``update`` produced.

    Attributes:
        clouds: one dynamic cloud per processed frame (empty list when the cloud is off).
        tracks: confirmed tracks after the last processed frame (see ``Tracker.tracks``).
        stamp_ns: stamp of the last processed frame (None when no frame was processed).
        grids: the grids after the last processed frame, or None (off or nothing processed).
        skipped: frames skipped as not newer than the previous one.
        timings: seconds per stage over the call.

    """

    clouds: list[DynamicCloud] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    stamp_ns: int | None = None
    grids: OccupancyGrids | None = None
    skipped: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class PerceptionStats:
    """Counters over the tracker's life (per-stage counters live in the parts' stats)."""

    frames: int = 0
    skipped: int = 0
    resets: int = 0
    empty_frames: int = 0
    small_parts: int = 0
    excess_parts: int = 0
    points: int = 0


class PerceptionTracker:
    """Dynamic cloud, object tracks and occupancy grids from processed frames."""

    def __init__(self, config: PerceptionConfig | None = None) -> None:
        self.config = config or PerceptionConfig()
        self.tracker = Tracker(self.config.tracker)
        self.grid = OccupancyMapper(self.config.grid) if self.config.grid.enabled else None
        self.stats = PerceptionStats()
        self._segment: int | None = None
        self._stamp_ns: int | None = None

    def reset(self) -> None:
        """Forget tracks and grids (call on a map reset; ``update`` does it on a new segment)."""
        self.tracker.reset()
        if self.grid is not None:
            self.grid.reset()
        self._stamp_ns = None
        self.stats.resets += 1

    def update(self, frames: list[FrameObservation]) -> PerceptionOutput:
        """Process frames (sorted by stamp here) and return the outputs."""
        out = PerceptionOutput()
        timings = {'points': 0.0, 'instances': 0.0, 'tracker': 0.0, 'grid': 0.0}
        if not self.config.enabled:
            return out
        for obs in sorted(frames, key=lambda f: f.stamp_ns):
            if self._segment is not None and obs.segment != self._segment:
                self.reset()
            self._segment = obs.segment
            if self._stamp_ns is not None and obs.stamp_ns <= self._stamp_ns:
                out.skipped += 1
                self.stats.skipped += 1
                continue
            self._stamp_ns = obs.stamp_ns
            cloud = self._frame(obs, timings)
            if self.config.points.enabled:
                out.clouds.append(cloud)
            out.stamp_ns = obs.stamp_ns
        if out.stamp_ns is not None:
            out.tracks = self.tracker.tracks() if self.config.tracker.enabled else []
            if self.grid is not None:
                tic = time.perf_counter()
                out.grids = self.grid.grids()
                timings['grid'] += time.perf_counter() - tic
        out.timings = timings
        return out

    def _frame(self, obs: FrameObservation, timings: dict[str, float]) -> DynamicCloud:
        cfg = self.config
        self.stats.frames += 1
        tic = time.perf_counter()
        threshold = conf_threshold(obs, cfg.points.min_conf, cfg.points.conf_percentile)
        points = dynamic_points(obs, cfg.points, cfg.output_from_world, threshold)
        self.stats.points += len(points)
        if not len(points):
            self.stats.empty_frames += 1
        timings['points'] += time.perf_counter() - tic
        object_ids = np.zeros(len(points), np.int32)
        if cfg.tracker.enabled:
            tic = time.perf_counter()
            dynamic = obs.mask & valid_depth(obs, threshold, cfg.points.max_depth)
            labels, counts, small, excess = label_image(dynamic, obs.depth, cfg.instances)
            found = split_instances(points, labels, counts, small, excess,
                                    cfg.tracker.depth_completion)
            self.stats.small_parts += small
            self.stats.excess_parts += excess
            timings['instances'] += time.perf_counter() - tic
            tic = time.perf_counter()
            ids = self.tracker.update(obs.stamp_ns, found.instances)
            if ids is not None and len(found.instances):
                by_label = np.zeros(labels.max() + 1, np.int32)
                by_label[[inst.label for inst in found.instances]] = ids
                object_ids = by_label[found.point_labels]
            timings['tracker'] += time.perf_counter() - tic
        if self.grid is not None:
            tic = time.perf_counter()
            camera = (cfg.output_from_world @ obs.world_from_camera)[:3, 3]
            self.grid.integrate(obs.stamp_ns, camera, self._static_points(obs, threshold),
                                points.output)
            timings['grid'] += time.perf_counter() - tic
        return DynamicCloud(obs.stamp_ns, points.output.astype(np.float32), points.rgb,
                            object_ids)

    def _static_points(self, obs: FrameObservation, threshold: float) -> np.ndarray:
        """Output-frame points [N,3] of confident static pixels on the grid's pixel stride.

        The dynamic mask is grown by one sample (3x3 on the strided grid) so object borders
        do not leak into the static grid.
        """
        cfg = self.config
        stride = cfg.grid.pixel_stride
        ok = valid_depth(obs, threshold, cfg.grid.max_range)[::stride, ::stride]
        near_dynamic = ndimage.binary_dilation(obs.mask[::stride, ::stride],
                                               structure=np.ones((3, 3), bool))
        rows, cols = np.nonzero(ok & ~near_dynamic)
        _, output = unproject_pixels(obs, rows * stride, cols * stride, cfg.output_from_world)
        return output
