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

Torch on the device of the frames (the state moves there at the first frame): a batch of
frames is rasterised at once (index arithmetic, scatter), then applied in stamp order; no
host sync until ``grids`` copies the three grids (one transfer).
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
import torch

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
    """Owns the grid state; ``integrate`` frames in stamp order, ``grids`` to read."""

    def __init__(self, config: GridConfig | None = None) -> None:
        self.config = config or GridConfig()
        cfg = self.config
        self._stats = GridStats()
        cells = cfg.height * cfg.width
        self._level = torch.zeros(cells, dtype=torch.int16)
        self._seen = torch.zeros(cells, dtype=torch.bool)
        self._observed_ns = torch.full((cells,), -1, dtype=torch.int64)
        self._dynamic_ns = torch.full((cells,), -1, dtype=torch.int64)
        self._counts = torch.zeros(2, dtype=torch.int64)  # rays, outside: read lazily
        self._centres = _cell_centres(cfg)
        self._origin_xy = torch.tensor(cfg.origin_xy, dtype=torch.float64)
        self._stamp_ns: int | None = None
        # Bearing bins of the range scan: about one cell wide at max_range.
        self._bins = int(min(max(math.ceil(2 * math.pi * cfg.max_range / cfg.resolution), 64),
                             8192))

    @property
    def stats(self) -> GridStats:
        """Counters (reading them waits for the device)."""
        rays, outside = (int(v) for v in self._counts.cpu())
        self._stats.rays, self._stats.outside = rays, outside
        return self._stats

    @torch.inference_mode()  # the state is updated in place: always in this mode
    def reset(self) -> None:
        """Forget everything (a map reset moves the global frame)."""
        self._level.fill_(0)
        self._seen.fill_(False)
        self._observed_ns.fill_(-1)
        self._dynamic_ns.fill_(-1)
        self._stamp_ns = None
        self._stats.resets += 1

    @property
    def state_bytes(self) -> int:
        """Bytes of grid state (constant: the memory bound)."""
        return sum(a.numel() * a.element_size() for a in (
            self._level, self._seen, self._observed_ns, self._dynamic_ns))

    @torch.inference_mode()  # the state is updated in place: always in this mode
    def integrate(self, stamp_ns: int, camera_xyz, static_xyz, dynamic_xyz) -> None:
        """Add one frame (numpy arrays or tensors).

        Args:
            stamp_ns: the frame's stamp.
            camera_xyz: [3] camera centre, output frame.
            static_xyz: [N,3] static points, output frame.
            dynamic_xyz: [M,3] dynamic points, output frame.

        """
        def batch(points) -> torch.Tensor:
            return torch.as_tensor(points, dtype=torch.float64).reshape(1, -1, 3)

        static, dynamic = batch(static_xyz), batch(dynamic_xyz)
        self.integrate_batch([stamp_ns], batch(camera_xyz)[:, 0],
                             static, torch.ones(static.shape[:2], dtype=torch.bool),
                             dynamic, torch.ones(dynamic.shape[:2], dtype=torch.bool))

    @torch.inference_mode()  # the state is updated in place: always in this mode
    def integrate_batch(self, stamps_ns: list[int], camera: torch.Tensor,
                        static: torch.Tensor, static_ok: torch.Tensor,
                        dynamic: torch.Tensor, dynamic_ok: torch.Tensor) -> None:
        """Add F frames (non-decreasing stamps: a rig step's views share its stamp) at once.

        Args:
            stamps_ns: F stamps.
            camera: [F,3] camera centres, output frame.
            static: [F,N,3] static points, output frame; static_ok [F,N] bool: used.
            dynamic: [F,M,3] dynamic points; dynamic_ok [F,M] bool: used.

        """
        cfg = self.config
        self._to(camera.device)
        self._stats.frames += len(stamps_ns)
        self._stamp_ns = stamps_ns[-1]
        free = self._ray_cells(camera, torch.cat([static, dynamic], dim=1),
                               torch.cat([static_ok, dynamic_ok], dim=1))
        static_hit, dynamic_hit = self._band_cells(
            torch.cat([static, dynamic], dim=1), torch.cat([static_ok, dynamic_ok], dim=1),
            static.shape[1])
        # Static log-odds: frame by frame (the clamps make the order matter).
        miss = free.to(torch.int16) * cfg.miss_weight
        hit = static_hit.to(torch.int16) * cfg.hit_weight
        for f in range(len(stamps_ns)):
            self._level.sub_(miss[f]).clamp_(min=-cfg.max_level)
            self._level.add_(hit[f]).clamp_(max=cfg.max_level)
        self._seen |= (free | static_hit).any(dim=0)
        # Latest observation and latest dynamic mark per cell (stamps increase).
        stamps = torch.tensor(stamps_ns, dtype=torch.int64).to(camera.device)[:, None]
        observed = torch.where(free | static_hit | dynamic_hit, stamps, -1).amax(dim=0)
        self._observed_ns = torch.maximum(self._observed_ns, observed)
        marked = torch.where(dynamic_hit, stamps, -1).amax(dim=0)
        self._dynamic_ns = torch.maximum(self._dynamic_ns, marked)

    @torch.inference_mode()  # the state is updated in place: always in this mode
    def grids(self) -> OccupancyGrids:
        """Return the current static, dynamic and combined grids: one copy to the host."""
        cfg = self.config
        static = torch.where(self._seen, torch.where(self._level >= cfg.occupied_level,
                                                     OCCUPIED, FREE), UNKNOWN)
        dynamic = torch.full_like(static, UNKNOWN)
        if self._stamp_ns is not None:
            # Integer stamps: t <= decay  <=>  t <= floor(decay) (no float rounding of ns).
            decay_ns = math.floor(cfg.dynamic_decay_s * 1e9)
            recent = (self._observed_ns >= 0) & (self._stamp_ns - self._observed_ns <= decay_ns)
            dynamic = torch.where(recent, torch.where(self._dynamic_ns == self._observed_ns,
                                                      OCCUPIED, FREE), UNKNOWN)
        combined = torch.where((static == OCCUPIED) | (dynamic == OCCUPIED), OCCUPIED,
                               torch.where((static == FREE) | (dynamic == FREE), FREE, UNKNOWN))
        grids = torch.stack([static, dynamic, combined]).to(torch.int8).view(
            3, cfg.height, cfg.width).cpu().numpy()
        return OccupancyGrids(
            stamp_ns=int(self._stamp_ns or 0), resolution=cfg.resolution,
            origin_xy=tuple(cfg.origin_xy), ground_z=cfg.ground_z,
            static=grids[0], dynamic=grids[1], combined=grids[2])

    # -- cells ------------------------------------------------------------------------------

    def _to(self, device: torch.device) -> None:
        if self._level.device != device:
            for name in ('_level', '_seen', '_observed_ns', '_dynamic_ns', '_counts',
                         '_centres', '_origin_xy'):
                setattr(self, name, getattr(self, name).to(device))

    def _cell_index(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat cell indices of points [...,2] and which points fall inside the grid."""
        cfg = self.config
        col = torch.floor((xy[..., 0] - cfg.origin_xy[0]) / cfg.resolution).long()
        row = torch.floor((xy[..., 1] - cfg.origin_xy[1]) / cfg.resolution).long()
        inside = (col >= 0) & (col < cfg.width) & (row >= 0) & (row < cfg.height)
        return row * cfg.width + col, inside

    def _band_cells(self, xyz: torch.Tensor, ok: torch.Tensor, split: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cells [F,cells] bool marked by points [F,N,3] before ``split`` and from it on.

        One pass for the static and the dynamic points (used where ok [F,N]).
        """
        cfg = self.config
        cells_count = cfg.height * cfg.width
        height = xyz[..., 2] - cfg.ground_z
        in_band = ok & (height >= cfg.min_height) & (height <= cfg.max_height)
        cells, inside = self._cell_index(xyz[..., :2])
        self._counts[1] += (in_band & ~inside).sum()
        # Dynamic points write to a second grid: cells offset by one grid.
        second = torch.arange(xyz.shape[1], device=xyz.device) >= split
        hit = _scatter_cells(cells + second * cells_count, in_band & inside, 2 * cells_count)
        return hit[:, :cells_count], hit[:, cells_count:]

    def _ray_cells(self, origin: torch.Tensor, ends: torch.Tensor, ok: torch.Tensor
                   ) -> torch.Tensor:
        """[F,cells] bool: cells crossed by the 2D rays origin [F,3] -> ends [F,N,3].

        End cells excluded. Cast as a 2D range scan (what a costmap's ray tracing amounts
        to): the bearings around the camera are cut into bins about one cell wide at
        ``max_range``; each bin keeps its farthest end point (scatter max); a cell is free
        when it is nearer than its bin's range minus one cell, and lies in the box spanned
        by the camera and the rays' ends.
        """
        cfg = self.config
        bins = self._bins
        scale = bins / (2 * math.pi)
        offset = ends[..., :2] - origin[:, None, :2]
        length = torch.hypot(offset[..., 0], offset[..., 1])
        keep = ok & (length > 0) & (length <= cfg.max_range)
        self._counts[0] += keep.sum()
        bearing = torch.atan2(offset[..., 1], offset[..., 0])
        index = torch.floor((bearing + math.pi) * scale).long() % bins
        reach = torch.zeros((len(origin), bins + 1), dtype=torch.float64, device=origin.device)
        reach.scatter_reduce_(1, torch.where(keep, index, bins), length.double(), 'amax')
        # The box spanned by the camera and the kept ends (the camera is one of its points,
        # so an empty frame reduces over the camera alone).
        xy = torch.cat([origin[:, None, :2], ends[..., :2]], dim=1)
        camera_row = torch.ones((len(origin), 1), dtype=torch.bool, device=origin.device)
        kept = torch.cat([camera_row, keep], dim=1)[..., None]
        big = torch.full_like(xy, math.inf)
        low = torch.where(kept, xy, big).amin(dim=1)
        high = torch.where(kept, xy, -big).amax(dim=1)
        lo = torch.floor((low - self._origin_xy) / cfg.resolution)  # [F,2] (col, row)
        hi = torch.ceil((high - self._origin_xy) / cfg.resolution)
        cells = self._centres  # [cells,4]: centre x, y, col, row
        in_box = ((cells[None, :, 2] >= lo[:, None, 0]) & (cells[None, :, 2] < hi[:, None, 0])
                  & (cells[None, :, 3] >= lo[:, None, 1]) & (cells[None, :, 3] < hi[:, None, 1]))
        cell_offset = cells[None, :, :2] - origin[:, None, :2]
        distance = torch.hypot(cell_offset[..., 0], cell_offset[..., 1])
        cell_bin = torch.floor((torch.atan2(cell_offset[..., 1], cell_offset[..., 0]) + math.pi)
                               * scale).long() % bins
        return in_box & (distance < reach.gather(1, cell_bin) - cfg.resolution)


def _cell_centres(cfg: GridConfig) -> torch.Tensor:
    """[cells,4] float64: centre x, y, column, row of every cell (flat order)."""
    rows, cols = torch.meshgrid(torch.arange(cfg.height, dtype=torch.float64),
                                torch.arange(cfg.width, dtype=torch.float64), indexing='ij')
    rows, cols = rows.flatten(), cols.flatten()
    x = (cols + 0.5) * cfg.resolution + cfg.origin_xy[0]
    y = (rows + 0.5) * cfg.resolution + cfg.origin_xy[1]
    return torch.stack([x, y, cols, rows], dim=1)


def _scatter_cells(cells: torch.Tensor, ok: torch.Tensor, count: int) -> torch.Tensor:
    """[F,count] bool: True at the cells [F,N] where ok [F,N]."""
    hit = torch.zeros((cells.shape[0], count + 1), dtype=torch.bool, device=cells.device)
    hit.scatter_(1, torch.where(ok, cells, count), True)
    return hit[:, :count]
