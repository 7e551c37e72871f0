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
        self._stamp_ns: int | None = None
        # One per device, kept for the mapper's life: a recorded CUDA graph reads them.
        self._consts: dict[torch.device, _GridConstants] = {}

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
                        dynamic: torch.Tensor, dynamic_ok: torch.Tensor,
                        stamps: torch.Tensor | None = None) -> None:
        """Add F frames (non-decreasing stamps: a rig step's views share its stamp) at once.

        Args:
            stamps_ns: F stamps.
            camera: [F,3] camera centres, output frame.
            static: [F,N,3] static points, output frame; static_ok [F,N] bool: used.
            dynamic: [F,M,3] dynamic points; dynamic_ok [F,M] bool: used.
            stamps: the same F stamps as an int64 tensor on the frames' device, if the
                caller has them there (saves an upload).

        """
        self.begin_batch(stamps_ns, camera.device)
        if stamps is None:
            stamps = torch.tensor(stamps_ns, dtype=torch.int64).to(camera.device)
        self.state = self.advance(self.state, camera, static, static_ok, dynamic, dynamic_ok,
                                  stamps)

    def begin_batch(self, stamps_ns: list[int], device: torch.device) -> None:
        """Host side of integrating F frames: the state and constants on ``device``, counters.

        Call before ``advance`` (``integrate_batch`` does both).
        """
        self._to(device)
        self._constants(device)  # made here, never inside a CUDA graph's capture
        self._stats.frames += len(stamps_ns)
        self._stamp_ns = stamps_ns[-1]

    @property
    def state(self) -> tuple[torch.Tensor, ...]:
        """The device state ``advance`` takes and returns.

        (level [cells] int16, seen [cells] bool, observed_ns [cells] int64, dynamic_ns
        [cells] int64, counts [2] int64 rays and outside).
        """
        return self._level, self._seen, self._observed_ns, self._dynamic_ns, self._counts

    @state.setter
    def state(self, state: tuple[torch.Tensor, ...]) -> None:
        self._level, self._seen, self._observed_ns, self._dynamic_ns, self._counts = state

    def advance(self, state: tuple[torch.Tensor, ...], camera: torch.Tensor,
                static: torch.Tensor, static_ok: torch.Tensor, dynamic: torch.Tensor,
                dynamic_ok: torch.Tensor, stamps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return ``state`` after F frames (``integrate_batch``'s arguments; stamps [F] int64).

        Graph-ready: fixed shapes, no host sync, no upload (``begin_batch`` made the
        constants); updates the state's tensors in place where it can and returns the state
        (the level is a new tensor).
        """
        level, seen, observed_ns, dynamic_ns, counts = state
        points = torch.cat([static, dynamic], dim=1)
        ok = torch.cat([static_ok, dynamic_ok], dim=1)
        free, keep = self._ray_cells(camera, points, ok)
        static_hit, dynamic_hit, outside = self._band_cells(points, ok, static.shape[1])
        counts.add_(torch.stack([keep, outside]).sum(dim=(1, 2)))
        level = self._constants(camera.device).log_odds(level, free, static_hit)
        hit = free | static_hit
        seen |= hit.any(dim=0)
        # Latest observation and latest dynamic mark per cell (stamps increase).
        stamps = stamps[:, None]
        observed = torch.where(hit | dynamic_hit, stamps, -1).amax(dim=0)
        torch.maximum(observed_ns, observed, out=observed_ns)
        marked = torch.where(dynamic_hit, stamps, -1).amax(dim=0)
        torch.maximum(dynamic_ns, marked, out=dynamic_ns)
        return level, seen, observed_ns, dynamic_ns, counts

    @torch.inference_mode()  # the state is updated in place: always in this mode
    def grids(self) -> OccupancyGrids:
        """Return the current static, dynamic and combined grids: one copy to the host."""
        return self.wrap(self.values(self.state, self._stamp_ns).cpu().numpy())

    def values(self, state: tuple[torch.Tensor, ...],
               stamp_ns: int | torch.Tensor | None) -> torch.Tensor:
        """[3, height, width] int8: the static, dynamic and combined grid of ``state``.

        ``stamp_ns``: the latest frame's stamp (an int, or a [] int64 tensor on the state's
        device), None before any frame. Graph-ready (no sync, no upload once ``begin_batch``
        made the constants): ``PerceptionTracker`` computes it inside the pixel stages' graph
        so the grids reach the host with the window's one copy. Each grid's state per cell is
        a code (0 unknown, 1 free, 2 occupied); one lookup of the pair (static, dynamic)
        gives all three grids' values.
        """
        cfg = self.config
        level, seen, observed_ns, dynamic_ns = state[:4]
        consts = self._constants(level.device)
        code = seen * ((level >= cfg.occupied_level) + 1) * 3
        if stamp_ns is not None:
            # Integer stamps: t <= decay  <=>  t <= floor(decay) (no float rounding of ns).
            decay_ns = math.floor(cfg.dynamic_decay_s * 1e9)
            recent = (observed_ns >= 0) & (stamp_ns - observed_ns <= decay_ns)
            code += recent * ((dynamic_ns == observed_ns) + 1)
        return consts.grid_values.index_select(1, code).view(3, cfg.height, cfg.width)

    def wrap(self, values: np.ndarray) -> OccupancyGrids:
        """Return the grids of a host copy of ``values``' output ([3, height, width] int8)."""
        cfg = self.config
        return OccupancyGrids(
            stamp_ns=int(self._stamp_ns or 0), resolution=cfg.resolution,
            origin_xy=tuple(cfg.origin_xy), ground_z=cfg.ground_z,
            static=values[0], dynamic=values[1], combined=values[2])

    # -- cells ------------------------------------------------------------------------------

    def _to(self, device: torch.device) -> None:
        if self._level.device != device:
            for name in ('_level', '_seen', '_observed_ns', '_dynamic_ns', '_counts'):
                setattr(self, name, getattr(self, name).to(device))

    def _constants(self, device: torch.device) -> _GridConstants:
        if device not in self._consts:
            self._consts[device] = _GridConstants(self.config, device)
        return self._consts[device]

    def _band_cells(self, xyz: torch.Tensor, ok: torch.Tensor, split: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cells [F,cells] bool marked by points [F,N,3] before ``split`` and from it on.

        One pass for the static and the dynamic points (used where ok [F,N]); also which
        points [F,N] lie in the height band but outside the grid.
        """
        cfg = self.config
        consts = self._constants(xyz.device)
        height = xyz[..., 2] - cfg.ground_z
        in_band = ok & (height >= cfg.min_height) & (height <= cfg.max_height)
        # Column and row of each point, as the reference: floor((x - origin) / resolution).
        colrow = torch.floor((xyz[..., :2] - consts.origin_xy) / cfg.resolution)
        inside = ((colrow >= 0) & (colrow < consts.size_xy)).all(dim=2)
        # Dynamic points write to a second grid: cells offset by one grid.
        cells = (colrow * consts.cell_stride).sum(dim=2).long() + consts.split_offset(
            xyz.shape[1], split)
        hit = _scatter_cells(cells, in_band & inside, 2 * consts.cells)
        return hit[:, :consts.cells], hit[:, consts.cells:], in_band & ~inside

    def _ray_cells(self, origin: torch.Tensor, ends: torch.Tensor, ok: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """[F,cells] bool: cells crossed by the 2D rays origin [F,3] -> ends [F,N,3].

        End cells excluded. Cast as a 2D range scan (what a costmap's ray tracing amounts
        to): the bearings around the camera are cut into bins about one cell wide at
        ``max_range``; each bin keeps its farthest end point (scatter max); a cell is free
        when it is nearer than its bin's range minus one cell, and lies in the box spanned
        by the camera and the rays' ends. Also returns which ends [F,N] cast a ray.
        """
        cfg = self.config
        consts = self._constants(origin.device)
        camera = origin[:, None, :2]
        offset = ends[..., :2] - camera
        length = torch.hypot(offset[..., 0], offset[..., 1])
        keep = ok & (length > 0) & (length <= cfg.max_range)
        index = consts.bearing_bin(offset)
        reach = torch.zeros((len(origin), consts.bins + 1), dtype=torch.float64,
                            device=origin.device)
        reach.scatter_reduce_(1, torch.where(keep, index, consts.bins), length, 'amax')
        # The box spanned by the camera and the kept ends (dropped ends stand in for the
        # camera, one of the box's points: an empty frame spans the camera alone).
        low, high = torch.cat([camera, torch.where(keep[..., None], ends[..., :2], camera)],
                              dim=1).aminmax(dim=1)
        # In cell units; a cell's column c is in [floor(lo), ceil(hi)) iff lo < c + 1 and
        # c < hi (c an integer): the reference's test without the rounding ops.
        bounds = (torch.stack([low, high]) - consts.origin_xy) / cfg.resolution  # [2,F,2]
        in_box = ((consts.colrow_next > bounds[0, :, None]) & (consts.colrow < bounds[1, :, None])
                  ).all(dim=2)
        cell_offset = consts.centres - camera
        distance = torch.hypot(cell_offset[..., 0], cell_offset[..., 1])
        near = distance < reach.gather(1, consts.bearing_bin(cell_offset)) - cfg.resolution
        return in_box & near, keep


class _GridConstants:
    """What the grid's configuration fixes, made once per device (no per-window uploads).

    Attributes:
        cells: cell count; bins: bearing bins of the range scan.
        origin_xy: [2] float64; size_xy: [2] float64 (width, height) in cells.
        cell_stride: [2] float64 (1, width): flat index = col + width * row.
        centres: [cells,2] float64 cell centres x, y (flat order).
        colrow, colrow_next: [cells,2] float64 column and row of each cell, and both + 1.
        table: [256, 2 max_level + 1] int16, the log-odds level after up to four frames
            (see ``log_odds``); None when the weights do not allow it.
        powers: [4,1] int64, 4^f times the table's row length.
        grid_values: [3,9] int8 static, dynamic and combined value of each code pair
            3 s + d (s, d: 0 unknown, 1 free, 2 occupied).

    """

    def __init__(self, cfg: GridConfig, device: torch.device) -> None:
        self.device = device
        self.config = cfg
        self.cells = cfg.height * cfg.width
        # Bearing bins of the range scan: about one cell wide at max_range.
        self.bins = int(min(max(math.ceil(2 * math.pi * cfg.max_range / cfg.resolution), 64),
                            8192))
        rows, cols = np.meshgrid(np.arange(cfg.height, dtype=np.float64),
                                 np.arange(cfg.width, dtype=np.float64), indexing='ij')
        colrow = np.stack([cols.ravel(), rows.ravel()], axis=1)
        centres = (colrow + 0.5) * cfg.resolution + np.asarray(cfg.origin_xy)
        table = _log_odds_table(cfg)
        host = {
            'origin_xy': np.asarray(cfg.origin_xy, np.float64),
            'size_xy': np.array([cfg.width, cfg.height], np.float64),
            'cell_stride': np.array([1.0, cfg.width]),
            'centres': centres, 'colrow': colrow, 'colrow_next': colrow + 1.0,
        }
        for name, value in host.items():
            setattr(self, name, torch.from_numpy(value).to(device))
        self.table = None if table is None else torch.from_numpy(table).to(device)
        self.grid_values = torch.from_numpy(_grid_values()).to(device)
        width = 2 * cfg.max_level + 1
        self.powers = torch.tensor([[4 ** f * width] for f in range(_TABLE_FRAMES)],
                                   device=device)
        self._offsets: dict[tuple[int, int], torch.Tensor] = {}

    def split_offset(self, points: int, split: int) -> torch.Tensor:
        """[points] int64: 0 before ``split``, one grid's cell count from it on."""
        key = (points, split)
        if key not in self._offsets:
            # Kept for the mapper's life (one entry per image size and stride): a recorded
            # CUDA graph reads this tensor's memory.
            self._offsets[key] = (torch.arange(points, device=self.device) >= split) * self.cells
        return self._offsets[key]

    def bearing_bin(self, offset: torch.Tensor) -> torch.Tensor:
        """[...] int64 bearing bin of offsets [...,2] (x, y)."""
        scale = self.bins / (2 * math.pi)
        bearing = torch.atan2(offset[..., 1], offset[..., 0])
        return torch.floor((bearing + math.pi) * scale).long() % self.bins

    def log_odds(self, level: torch.Tensor, free: torch.Tensor, hit: torch.Tensor
                 ) -> torch.Tensor:
        """Return the static level [cells] int16 after frames' free [F,cells] and hit [F,cells].

        Frame by frame (the clamps make the order matter): minus ``miss_weight`` where free
        (clamped at -max_level), then plus ``hit_weight`` where hit (clamped at max_level).
        Up to four frames in one lookup: each frame's event (free + 2 hit) is a base-4 digit
        of a code; ``table[code, level + max_level]`` is the level after them.
        """
        cfg = self.config
        if self.table is None:
            miss = free.to(torch.int16) * cfg.miss_weight
            gain = hit.to(torch.int16) * cfg.hit_weight
            for lose, add in zip(miss.unbind(0), gain.unbind(0)):
                level = level.sub_(lose).clamp_(min=-cfg.max_level)
                level = level.add_(add).clamp_(max=cfg.max_level)
            return level
        events = free + hit * 2  # [F,cells] int64 in 0..3
        for first in range(0, len(events), _TABLE_FRAMES):
            chunk = events[first: first + _TABLE_FRAMES]
            # Flat table index: code * (2 M + 1) + level + M.
            code = (chunk * self.powers[:len(chunk)]).sum(dim=0)
            level = self.table.take(code.add_(level).add_(cfg.max_level))
        return level


_TABLE_FRAMES = 4


def _grid_values() -> np.ndarray:
    """[3,9] int8: static, dynamic and combined grid value of the code pair 3 s + d."""
    value = np.array([UNKNOWN, FREE, OCCUPIED])
    s, d = np.divmod(np.arange(9), 3)
    # Combined: occupied where either is, else free where either is, else unknown.
    combined = np.where((s == 2) | (d == 2), OCCUPIED,
                        np.where((s == 1) | (d == 1), FREE, UNKNOWN))
    return np.stack([value[s], value[d], combined]).astype(np.int8)


def _log_odds_table(cfg: GridConfig) -> np.ndarray | None:
    """[4^4, 2 M + 1] int16: level after four frames' events (code digits), M = max_level.

    None when the steps could leave [-M, M] (negative weights) or the table would be large.
    """
    top = cfg.max_level
    if cfg.miss_weight < 0 or cfg.hit_weight < 0 or top < 0 or 2 * top + 1 > 4096:
        return None
    codes = np.arange(4 ** _TABLE_FRAMES)
    level = np.broadcast_to(np.arange(-top, top + 1), (len(codes), 2 * top + 1)).copy()
    for f in range(_TABLE_FRAMES):
        event = (codes[:, None] >> (2 * f)) & 3
        level = np.where(event & 1, np.maximum(level - cfg.miss_weight, -top), level)
        level = np.where(event & 2, np.minimum(level + cfg.hit_weight, top), level)
    return level.astype(np.int16)


def _scatter_cells(cells: torch.Tensor, ok: torch.Tensor, count: int) -> torch.Tensor:
    """[F,count] bool: True at the cells [F,N] where ok [F,N]."""
    hit = torch.zeros((cells.shape[0], count + 1), dtype=torch.bool, device=cells.device)
    hit.scatter_(1, torch.where(ok, cells, count), True)
    return hit[:, :count]
