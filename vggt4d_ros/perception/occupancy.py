# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Static, dynamic and combined 2D occupancy grids (nav_msgs/OccupancyGrid semantics).

Values: int8, 0 free, 100 occupied, -1 unknown; arrays [height, width], row index along +y,
cell (0, 0) at ``origin_xy`` of the output frame (z up). Per frame:

1. Rays: from the camera's x-y position to every observed point (static points on a
   ``pixel_stride`` grid plus the dynamic points), cast in 2D as a range scan (bearing bins
   about a cell wide, each reaching its farthest point); the cells they cross (not their end
   cell) are observed free.
2. Marks: points whose height above ``ground_z`` lies in the band mark their cell: static
   points raise the static log-odds level, dynamic points mark the dynamic grid. Marks win
   over rays of the same frame.

Static grid: occupied where the level reached ``occupied_level``, free where observed and
below, unknown where never observed. Dynamic grid: per cell the stamp of its latest
observation and of its latest dynamic mark: occupied when the latest observation was a mark,
free when it was a ray, unknown when the latest observation is older than
``dynamic_decay_s`` (decay toward unknown). So a moving object's cells clear as soon as the
camera sees the space it left, and at the latest ``dynamic_decay_s`` after it was last seen.
Combined: occupied where either is, else free where either is free, else unknown.
Memory is fixed by the grid size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vggt4d_ros.perception.config import GridConfig

FREE, OCCUPIED, UNKNOWN = 0, 100, -1


@dataclass
class OccupancyGrids:
    """The three grids at one stamp (all [height, width] int8).

    Attributes:
        stamp_ns: stamp of the latest frame integrated.
        resolution: cell edge (map units).
        origin_xy: output-frame position of cell (0, 0)'s corner (z = ``ground_z``).
        ground_z: height of the grid plane.
        static, dynamic, combined: the grids.

    """

    stamp_ns: int
    resolution: float
    origin_xy: tuple[float, float]
    ground_z: float
    static: np.ndarray
    dynamic: np.ndarray
    combined: np.ndarray


@dataclass
class GridStats:
    """Counters: frames integrated, rays cast, points outside the grid, resets."""

    frames: int = 0
    rays: int = 0
    outside: int = 0
    resets: int = 0


class OccupancyMapper:
    """Owns the grid state; ``integrate`` once per frame in stamp order, ``grids`` to read."""

    def __init__(self, config: GridConfig | None = None) -> None:
        self.config = config or GridConfig()
        cfg = self.config
        self.stats = GridStats()
        self._level = np.zeros((cfg.height, cfg.width), np.int16)
        self._seen = np.zeros((cfg.height, cfg.width), bool)
        self._observed_ns = np.full((cfg.height, cfg.width), -1, np.int64)
        self._dynamic_ns = np.full((cfg.height, cfg.width), -1, np.int64)
        self._stamp_ns: int | None = None

    def reset(self) -> None:
        """Forget everything (a map reset moves the global frame)."""
        self._level.fill(0)
        self._seen.fill(False)
        self._observed_ns.fill(-1)
        self._dynamic_ns.fill(-1)
        self._stamp_ns = None
        self.stats.resets += 1

    @property
    def state_bytes(self) -> int:
        """Bytes of grid state (constant: the memory bound)."""
        return sum(a.nbytes for a in (self._level, self._seen, self._observed_ns,
                                      self._dynamic_ns))

    def integrate(self, stamp_ns: int, camera_xyz: np.ndarray, static_xyz: np.ndarray,
                  dynamic_xyz: np.ndarray) -> None:
        """Add one frame.

        Args:
            stamp_ns: the frame's stamp.
            camera_xyz: [3] camera centre, output frame.
            static_xyz: [N,3] static points, output frame.
            dynamic_xyz: [M,3] dynamic points, output frame.

        """
        cfg = self.config
        self.stats.frames += 1
        self._stamp_ns = stamp_ns
        ends = np.concatenate([static_xyz, dynamic_xyz])[:, :2]
        free = self._ray_cells(camera_xyz[:2], ends)
        self._level.ravel()[free] = np.maximum(
            self._level.ravel()[free] - cfg.miss_weight, -cfg.max_level)
        self._seen.ravel()[free] = True
        self._observed_ns.ravel()[free] = stamp_ns
        static_cells = self._band_cells(static_xyz)
        self._level.ravel()[static_cells] = np.minimum(
            self._level.ravel()[static_cells] + cfg.hit_weight, cfg.max_level)
        self._seen.ravel()[static_cells] = True
        self._observed_ns.ravel()[static_cells] = stamp_ns
        dynamic_cells = self._band_cells(dynamic_xyz)
        self._observed_ns.ravel()[dynamic_cells] = stamp_ns
        self._dynamic_ns.ravel()[dynamic_cells] = stamp_ns

    def grids(self) -> OccupancyGrids:
        """Return the current static, dynamic and combined grids."""
        cfg = self.config
        static = np.full(self._level.shape, UNKNOWN, np.int8)
        static[self._seen] = FREE
        static[self._seen & (self._level >= cfg.occupied_level)] = OCCUPIED
        dynamic = np.full(self._level.shape, UNKNOWN, np.int8)
        if self._stamp_ns is not None:
            recent = (self._observed_ns >= 0) & (
                self._stamp_ns - self._observed_ns <= cfg.dynamic_decay_s * 1e9)
            dynamic[recent] = FREE
            dynamic[recent & (self._dynamic_ns == self._observed_ns)] = OCCUPIED
        combined = np.where((static == OCCUPIED) | (dynamic == OCCUPIED), OCCUPIED,
                            np.where((static == FREE) | (dynamic == FREE), FREE, UNKNOWN))
        return OccupancyGrids(
            stamp_ns=int(self._stamp_ns or 0), resolution=cfg.resolution,
            origin_xy=tuple(cfg.origin_xy), ground_z=cfg.ground_z,
            static=static, dynamic=dynamic, combined=combined.astype(np.int8))

    # -- cells ------------------------------------------------------------------------------

    def _cell_index(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat cell indices of points [N,2] and which points fall inside the grid."""
        cfg = self.config
        col = np.floor((xy[:, 0] - cfg.origin_xy[0]) / cfg.resolution).astype(np.int64)
        row = np.floor((xy[:, 1] - cfg.origin_xy[1]) / cfg.resolution).astype(np.int64)
        inside = (col >= 0) & (col < cfg.width) & (row >= 0) & (row < cfg.height)
        return row * cfg.width + col, inside

    def _band_cells(self, xyz: np.ndarray) -> np.ndarray:
        cfg = self.config
        height = xyz[:, 2] - cfg.ground_z
        in_band = (height >= cfg.min_height) & (height <= cfg.max_height)
        cells, inside = self._cell_index(xyz[in_band, :2])
        self.stats.outside += int((~inside).sum())
        return np.unique(cells[inside])

    def _ray_cells(self, origin: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Flat cells crossed by the 2D rays origin -> ends [N,2], end cells excluded.

        Cast as a 2D range scan (what a costmap's ray tracing amounts to): the bearings
        around the camera are cut into bins about one cell wide at ``max_range``; each bin
        keeps its farthest end point; a cell is free when it is nearer than its bin's range
        minus one cell. Cost: one pass over the points and one over the cells of the box
        spanned by the camera and the points, instead of a walk along every ray.
        """
        cfg = self.config
        if not len(ends):
            return np.zeros(0, np.int64)
        offset = ends - origin
        length = np.hypot(offset[:, 0], offset[:, 1])
        keep = (length > 0) & (length <= cfg.max_range)
        self.stats.rays += int(keep.sum())
        if not keep.any():
            return np.zeros(0, np.int64)
        bins = int(min(max(np.ceil(2 * np.pi * cfg.max_range / cfg.resolution), 64), 8192))
        scale = bins / (2 * np.pi)
        bearing = np.arctan2(offset[keep, 1], offset[keep, 0])
        index = np.floor((bearing + np.pi) * scale).astype(np.int64) % bins
        reach = np.zeros(bins)
        order = np.argsort(index, kind='stable')
        index, sorted_length = index[order], length[keep][order]
        starts = np.concatenate([[0], np.nonzero(np.diff(index))[0] + 1])
        reach[index[starts]] = np.maximum.reduceat(sorted_length, starts)
        reached = ends[keep]
        rows, cols, cell_offset = self._cells_within(
            origin, np.minimum(reached.min(axis=0), origin), np.maximum(reached.max(axis=0),
                                                                        origin))
        distance = np.hypot(cell_offset[:, 0], cell_offset[:, 1])
        cell_bin = np.floor((np.arctan2(cell_offset[:, 1], cell_offset[:, 0]) + np.pi)
                            * scale).astype(np.int64) % bins
        free = distance < reach[cell_bin] - cfg.resolution
        return rows[free] * cfg.width + cols[free]

    def _cells_within(self, origin: np.ndarray, low: np.ndarray, high: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, columns and centre offsets [K,2] from ``origin`` of the cells in a box."""
        cfg = self.config
        lo = np.floor((low - np.asarray(cfg.origin_xy)) / cfg.resolution)
        hi = np.ceil((high - np.asarray(cfg.origin_xy)) / cfg.resolution)
        col0, row0 = np.maximum(lo, 0).astype(np.int64)
        col1 = int(min(hi[0], cfg.width))
        row1 = int(min(hi[1], cfg.height))
        if col1 <= col0 or row1 <= row0:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros((0, 2))
        rows, cols = np.mgrid[row0:row1, col0:col1]
        rows, cols = rows.ravel(), cols.ravel()
        centres = (np.stack([cols, rows], axis=1) + 0.5) * cfg.resolution + np.asarray(
            cfg.origin_xy)
        return rows, cols, centres - origin
