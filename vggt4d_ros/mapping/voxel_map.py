# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Bounded voxel-hashed colour point map with vectorised (loop-free per point) fusion.

Each occupied voxel stores the running mean position and colour of the points that fell into
it, a hit count (points fused) and the index of the last integration that saw it. Storage is a
set of flat arrays of ``max_voxels`` slots plus an open-addressing hash table (linear probing,
load <= 0.5) from packed voxel keys to slots. Lookups and inserts are vectorised over the batch;
the only Python loop is over probe rounds (a handful). Per-call cost therefore depends on the
number of new points, not on the map size.

When the map would exceed ``max_voxels``, it is cut down to ``evict_to_fraction * max_voxels``
and the table is rebuilt (amortised, rare). Stale outliers go first (fewer than
``min_hits_export`` hits and not seen for ``stale_after`` integrations), then the voxels seen
longest ago (ties: fewest hits). Voxels with fewer than ``min_hits_export`` hits are not
exported (single-pixel outliers), and ``prune`` removes stale low-hit voxels on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_BITS = 21
_OFFSET = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class VoxelMapConfig:
    """Voxel map settings."""

    voxel_size: float = field(default=0.02, metadata={
        'description': 'edge length in map units (see docs/mapping.md for the scale convention).',
        'range': (1e-06, 1000000.0)})
    max_voxels: int = field(default=500_000, metadata={
        'description': 'hard bound on stored voxels.', 'range': (1, 1000000000)})
    evict_to_fraction: float = field(default=0.9, metadata={
        'description':
            'after an eviction the map holds at most this fraction of ``max_voxels`` (headroom '
            'so evictions are rare).', 'range': (0.0, 1.0)})
    min_hits_export: int = field(default=2, metadata={
        'description': 'voxels with fewer fused points are left out of ``points()``.',
        'range': (0, 1000000)})
    stale_after: int = field(default=10, metadata={
        'description':
            'integrations without a new hit after which a low-hit voxel is an outlier that '
            'eviction removes first.', 'range': (0, 1000000)})

    def __post_init__(self) -> None:
        if self.voxel_size <= 0 or self.max_voxels < 1:
            raise ValueError('voxel_size must be > 0 and max_voxels >= 1')
        if not 0.0 < self.evict_to_fraction <= 1.0:
            raise ValueError('evict_to_fraction must be in (0, 1]')


def voxel_keys(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Pack voxel coordinates of points [N,3] into int64 keys [N] (21 bits per axis).

    Coordinates beyond +-2^20 voxels wrap; with the default voxel size that is +-20 000 map
    units, far outside any window's reach.
    """
    coords = np.floor(points / voxel_size).astype(np.int64) + _OFFSET
    coords &= _MASK
    return (coords[:, 0] << (2 * _BITS)) | (coords[:, 1] << _BITS) | coords[:, 2]


class VoxelMap:
    """Fused static map (see the module docstring)."""

    def __init__(self, config: VoxelMapConfig | None = None) -> None:
        self.config = config or VoxelMapConfig()
        capacity = self.config.max_voxels
        self._keys = np.zeros(capacity, np.int64)
        # Running means of x, y, z, red, green, blue in one array: one gather/scatter per update.
        self._attr = np.zeros((capacity, 6), np.float32)
        self._hits = np.zeros(capacity, np.int32)
        self._last_seen = np.zeros(capacity, np.int64)
        self._size = 0
        self._table_bits = max(4, int(np.ceil(np.log2(2 * capacity))))
        self._table = np.full(1 << self._table_bits, -1, np.int32)
        self.integrations = 0
        self.evicted = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the map's arrays (fixed at construction)."""
        arrays = (self._keys, self._attr, self._hits, self._last_seen, self._table)
        return sum(a.nbytes for a in arrays)

    def clear(self) -> None:
        self._size = 0
        self._table.fill(-1)

    # -- hashing ----------------------------------------------------------------------------

    def _home(self, keys: np.ndarray) -> np.ndarray:
        """Fibonacci hashing of keys [N] into table positions [N] (int64)."""
        mixed = keys.astype(np.uint64) * _GOLDEN
        return (mixed >> np.uint64(64 - self._table_bits)).astype(np.int64)

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slots [N] of keys [N] (int64), -1 where absent."""
        slots = np.full(len(keys), -1, np.int64)
        pos = self._home(keys)
        pending = np.arange(len(keys))
        table_mask = (1 << self._table_bits) - 1
        while pending.size:
            found = self._table[pos[pending]].astype(np.int64)
            occupied = found >= 0
            hit = occupied.copy()
            hit[occupied] = self._keys[found[occupied]] == keys[pending[occupied]]
            slots[pending[hit]] = found[hit]
            pending = pending[occupied & ~hit]
            pos[pending] = (pos[pending] + 1) & table_mask
        return slots

    def _insert(self, keys: np.ndarray, slots: np.ndarray) -> None:
        """Put distinct absent keys [N] into the table pointing at ``slots`` [N]."""
        pos = self._home(keys)
        pending = np.arange(len(keys))
        table_mask = (1 << self._table_bits) - 1
        while pending.size:
            where = pos[pending]
            empty = self._table[where] < 0
            # Several keys may claim one empty cell; one write wins, the others probe on.
            self._table[where[empty]] = slots[pending[empty]]
            placed = self._table[where] == slots[pending]
            pending = pending[~placed]
            pos[pending] = (pos[pending] + 1) & table_mask

    def _rebuild_table(self) -> None:
        self._table.fill(-1)
        if self._size:
            self._insert(self._keys[: self._size], np.arange(self._size, dtype=np.int32))

    # -- fusion -----------------------------------------------------------------------------

    def integrate(self, xyz: np.ndarray, rgb: np.ndarray) -> int:
        """Fuse points into the map.

        Args:
            xyz: [N,3] float points in the map frame.
            rgb: [N,3] uint8 colours.

        Returns:
            Number of voxels created.

        """
        self.integrations += 1
        if len(xyz) == 0:
            return 0
        xyz = np.asarray(xyz, np.float32)
        rgb = np.asarray(rgb)
        finite = np.isfinite(xyz).all(axis=1)
        if not finite.all():
            xyz, rgb = xyz[finite], rgb[finite]
        keys = voxel_keys(xyz, self.config.voxel_size)
        unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        sums = np.empty((len(unique), 6), np.float32)
        for axis in range(3):
            sums[:, axis] = np.bincount(inverse, weights=xyz[:, axis], minlength=len(unique))
            sums[:, 3 + axis] = np.bincount(inverse, weights=rgb[:, axis], minlength=len(unique))
        slots = self._lookup(unique)
        known = slots >= 0
        self._update(slots[known], sums[known], counts[known])
        fresh = np.flatnonzero(~known)
        if fresh.size:
            self._make_room(fresh.size)
            # A batch larger than the whole map keeps its most populated voxels.
            if fresh.size > self.config.max_voxels - self._size:
                order = np.argsort(-counts[fresh], kind='stable')
                fresh = fresh[order[: self.config.max_voxels - self._size]]
            self._add(unique[fresh], sums[fresh], counts[fresh])
        return int(fresh.size)

    def _update(self, slots: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> None:
        old = self._hits[slots]
        total = old.astype(np.int64) + counts
        weight_old = (old / total).astype(np.float32)[:, None]
        weight_new = (1.0 / total).astype(np.float32)[:, None]
        self._attr[slots] = self._attr[slots] * weight_old + sums * weight_new
        self._hits[slots] = np.minimum(total, np.iinfo(np.int32).max)
        self._last_seen[slots] = self.integrations

    def _add(self, keys: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> None:
        start, stop = self._size, self._size + len(keys)
        slots = np.arange(start, stop, dtype=np.int32)
        self._keys[start:stop] = keys
        self._attr[start:stop] = sums / counts[:, None].astype(np.float32)
        self._hits[start:stop] = counts
        self._last_seen[start:stop] = self.integrations
        self._size = stop
        self._insert(keys, slots)

    def _make_room(self, incoming: int) -> None:
        capacity = self.config.max_voxels
        if self._size + incoming <= capacity:
            return
        target = max(0, min(int(capacity * self.config.evict_to_fraction), capacity - incoming))
        size = self._size
        # Keep the `target` best by (not a stale outlier, last_seen, hits).
        hits = self._hits[:size].astype(np.int64)
        score = self._last_seen[:size] * (1 << 31) + hits
        stale = self.integrations - self._last_seen[:size] > self.config.stale_after
        score[stale & (hits < self.config.min_hits_export)] = -1
        keep = np.zeros(0, np.int64)
        if target:
            keep = np.sort(np.argpartition(-score, target - 1)[:target])
        self._compact(keep)

    def _compact(self, keep: np.ndarray) -> None:
        count = len(keep)
        self.evicted += self._size - count
        for array in (self._keys, self._attr, self._hits, self._last_seen):
            array[:count] = array[keep]
        self._size = count
        self._rebuild_table()

    def rescale(self, factor: float) -> None:
        """Multiply every stored point by ``factor`` (the map's units changed) and re-bin.

        Voxels that land in the same cell merge (hit-weighted means, summed hits, newest
        ``last_seen``); the voxel size stays the configured one, now in the new units.
        """
        size = self._size
        if size == 0:
            return
        attr = self._attr[:size].copy()
        attr[:, :3] *= np.float32(factor)
        hits = self._hits[:size].astype(np.float64)
        last_seen = self._last_seen[:size].copy()
        keys = voxel_keys(attr[:, :3], self.config.voxel_size)
        unique, inverse = np.unique(keys, return_inverse=True)
        count = len(unique)
        sums = np.empty((count, 6), np.float64)
        for column in range(6):
            sums[:, column] = np.bincount(inverse, weights=attr[:, column] * hits,
                                          minlength=count)
        total = np.bincount(inverse, weights=hits, minlength=count)
        newest = np.zeros(count, np.int64)
        np.maximum.at(newest, inverse, last_seen)
        self._keys[:count] = unique
        self._attr[:count] = (sums / total[:, None]).astype(np.float32)
        self._hits[:count] = np.minimum(total, np.iinfo(np.int32).max).astype(np.int32)
        self._last_seen[:count] = newest
        self._size = count
        self._rebuild_table()

    def prune(self, min_hits: int, max_age: int) -> int:
        """Remove voxels with fewer than ``min_hits`` hits not seen in the last ``max_age`` calls.

        Returns:
            Number of voxels removed.

        """
        size = self._size
        stale = self.integrations - self._last_seen[:size] > max_age
        drop = stale & (self._hits[:size] < min_hits)
        if not drop.any():
            return 0
        self._compact(np.flatnonzero(~drop))
        return int(drop.sum())

    # -- export -----------------------------------------------------------------------------

    def points(self, min_hits: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Export the map: (xyz [M,3] float32, rgb [M,3] uint8) of voxels with enough hits."""
        threshold = self.config.min_hits_export if min_hits is None else min_hits
        sel = self._hits[: self._size] >= threshold
        attr = self._attr[: self._size][sel]
        xyz = np.ascontiguousarray(attr[:, :3])
        rgb = np.clip(np.rint(attr[:, 3:]), 0, 255).astype(np.uint8)
        return xyz, rgb

    def hits(self) -> np.ndarray:
        """Hit counts [size] int32 of the stored voxels (same order as the storage)."""
        return self._hits[: self._size].copy()

    def write_ply(self, path: str | Path, min_hits: int | None = None) -> int:
        """Write the exported map as binary little-endian PLY (x y z float, red green blue uchar).

        Returns:
            Number of points written.

        """
        xyz, rgb = self.points(min_hits)
        return write_ply(path, xyz, rgb)


def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray) -> int:
    """Write points [M,3] float32 with colours [M,3] uint8 as binary little-endian PLY."""
    record = np.dtype([
        ('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('red', 'u1'), ('green', 'u1'), ('blue', 'u1')
    ])
    data = np.empty(len(xyz), record)
    data['x'], data['y'], data['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    data['red'], data['green'], data['blue'] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    header = (
        'ply\nformat binary_little_endian 1.0\n'
        f'element vertex {len(xyz)}\n'
        'property float x\nproperty float y\nproperty float z\n'
        'property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n'
    )
    with open(path, 'wb') as handle:
        handle.write(header.encode('ascii'))
        handle.write(data.tobytes())
    return len(xyz)


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a PLY written by :func:`write_ply` back into (xyz [M,3] float32, rgb [M,3] uint8)."""
    raw = Path(path).read_bytes()
    end = raw.index(b'end_header\n') + len(b'end_header\n')
    header = raw[:end].decode('ascii')
    element = next(line for line in header.splitlines() if line.startswith('element vertex'))
    count = int(element.split()[2])
    record = np.dtype([
        ('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('red', 'u1'), ('green', 'u1'), ('blue', 'u1')
    ])
    data = np.frombuffer(raw[end:], record, count=count)
    xyz = np.stack([data['x'], data['y'], data['z']], axis=1)
    rgb = np.stack([data['red'], data['green'], data['blue']], axis=1)
    return xyz, rgb
