# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Per-frame global camera poses with stamps: storage, interpolation, TUM export, path.

Poses are world-from-camera (camera centre and orientation in the map frame, OpenCV camera
axes), stored as translation + XYZW quaternion in float64 with the integer stamp and the map
segment. Storage is bounded (``max_poses``; the oldest are dropped and counted).

TUM format (one line per pose): ``timestamp tx ty tz qx qy qz qw`` with the timestamp in seconds
printed from the integer nanoseconds with exactly 9 decimals (no float rounding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vggt4d_ros.geometry.rotation import quaternion_xyzw_from_rotation
from vggt4d_ros.geometry.rotation import rotation_from_quaternion_xyzw
from vggt4d_ros.geometry.rotation import slerp_xyzw


def format_stamp(stamp_ns: int) -> str:
    """Nanoseconds -> seconds with 9 decimals, exact (e.g. 1700000000.000000123)."""
    stamp_ns = int(stamp_ns)
    sign = '-' if stamp_ns < 0 else ''
    whole, frac = divmod(abs(stamp_ns), 1_000_000_000)
    return f'{sign}{whole}.{frac:09d}'


def poses_to_matrices(translations: np.ndarray, quats_xyzw: np.ndarray) -> np.ndarray:
    """Convert translations [N,3] + quaternions [N,4] to rigid matrices [N,4,4]."""
    mats = np.tile(np.eye(4), (len(translations), 1, 1))
    mats[:, :3, :3] = rotation_from_quaternion_xyzw(quats_xyzw)
    mats[:, :3, 3] = translations
    return mats


class Trajectory:
    """Append-only (stamp-ordered) pose store; see the module docstring."""

    def __init__(self, max_poses: int = 200_000) -> None:
        if max_poses < 2:
            raise ValueError('max_poses must be >= 2')
        self.max_poses = max_poses
        self.dropped = 0
        self._capacity = min(1024, max_poses)
        self._stamps = np.zeros(self._capacity, np.int64)
        self._trans = np.zeros((self._capacity, 3))
        self._quat = np.zeros((self._capacity, 4))
        self._segment = np.zeros(self._capacity, np.int64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        self._size = 0

    @property
    def stamps_ns(self) -> np.ndarray:
        return self._stamps[: self._size].copy()

    @property
    def segments(self) -> np.ndarray:
        return self._segment[: self._size].copy()

    def append(self, stamp_ns: int, world_from_camera: np.ndarray, segment: int = 0) -> None:
        """Add a pose; stamps must be strictly increasing (call ``clear`` on a time reset)."""
        self.extend([stamp_ns], np.asarray(world_from_camera)[None], segment)

    def extend(
        self, stamps_ns: list[int], world_from_camera: np.ndarray, segment: int = 0
    ) -> None:
        """Add poses [K,4,4] with strictly increasing stamps [K] (one quaternion conversion)."""
        stamps = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
        poses = np.asarray(world_from_camera, dtype=np.float64).reshape(-1, 4, 4)
        previous = self._stamps[: self._size][-1:]
        if np.any(np.diff(np.concatenate([previous, stamps])) <= 0):
            raise ValueError(f'trajectory stamps must increase: {stamps} after {previous}')
        quats = quaternion_xyzw_from_rotation(poses[:, :3, :3])
        for stamp, pose, quat in zip(stamps, poses, quats):
            if self._size == self._capacity:
                self._grow_or_drop()
            index = self._size
            self._stamps[index] = stamp
            self._trans[index] = pose[:3, 3]
            self._quat[index] = quat
            self._segment[index] = segment
            self._size += 1

    def _grow_or_drop(self) -> None:
        if self._capacity < self.max_poses:
            new_capacity = min(self._capacity * 2, self.max_poses)
            self._stamps = np.resize(self._stamps, new_capacity)
            self._trans = np.resize(self._trans, (new_capacity, 3))
            self._quat = np.resize(self._quat, (new_capacity, 4))
            self._segment = np.resize(self._segment, new_capacity)
            self._capacity = new_capacity
            return
        # Full: drop the oldest quarter in one move (amortised O(1) per append).
        drop = max(1, self._capacity // 4)
        for array in (self._stamps, self._trans, self._quat, self._segment):
            array[: self._size - drop] = array[drop: self._size]
        self._size -= drop
        self.dropped += drop

    def scale_segment(self, segment: int, factor: float) -> None:
        """Multiply the camera positions of one segment by ``factor`` (its units changed)."""
        chosen = self._segment[: self._size] == segment
        self._trans[: self._size][chosen] *= factor

    def matrices(self) -> np.ndarray:
        """All stored poses as [N,4,4] world-from-camera."""
        return poses_to_matrices(self._trans[: self._size], self._quat[: self._size])

    def positions(self) -> np.ndarray:
        """Camera centres [N,3]."""
        return self._trans[: self._size].copy()

    def interpolate(self, stamps_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poses at arbitrary stamps: slerp rotation, lerp translation between neighbours.

        Args:
            stamps_ns: [K] query stamps.

        Returns:
            (poses [K,4,4], valid [K] bool). Valid means the stamp lies within the stored range
            and both neighbours belong to the same map segment; invalid rows are identity.

        """
        query = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
        poses = np.tile(np.eye(4), (len(query), 1, 1))
        valid = np.zeros(len(query), bool)
        if self._size == 0:
            return poses, valid
        stamps = self._stamps[: self._size]
        upper = np.searchsorted(stamps, query, side='left')
        exact = (upper < self._size) & (stamps[np.minimum(upper, self._size - 1)] == query)
        lower = np.clip(upper - 1, 0, self._size - 1)
        upper = np.clip(upper, 0, self._size - 1)
        lower = np.where(exact, upper, lower)
        inside = (query >= stamps[0]) & (query <= stamps[-1])
        same = self._segment[lower] == self._segment[upper]
        valid = inside & same
        span = (stamps[upper] - stamps[lower]).astype(np.float64)
        alpha = np.where(span > 0, (query - stamps[lower]) / np.where(span > 0, span, 1.0), 0.0)
        trans = self._trans[lower] * (1 - alpha[:, None]) + self._trans[upper] * alpha[:, None]
        quat = slerp_xyzw(self._quat[lower], self._quat[upper], alpha)
        mats = poses_to_matrices(trans, quat)
        poses[valid] = mats[valid]
        return poses, valid

    def path(self, max_poses: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Bounded path for publishing: (stamps [P], poses [P,4,4]) with P <= max_poses.

        The newest pose is always included; older ones are decimated evenly.
        """
        if self._size <= max_poses:
            index = np.arange(self._size)
        else:
            index = np.unique(np.linspace(0, self._size - 1, max_poses).round().astype(np.int64))
        return self._stamps[index].copy(), poses_to_matrices(self._trans[index], self._quat[index])

    def tum_lines(self) -> list[str]:
        """TUM lines ``timestamp tx ty tz qx qy qz qw``."""
        lines = []
        for stamp, trans, quat in zip(
            self._stamps[: self._size], self._trans[: self._size], self._quat[: self._size]
        ):
            values = ' '.join(f'{v:.9f}' for v in (*trans, *quat))
            lines.append(f'{format_stamp(stamp)} {values}')
        return lines

    def write_tum(self, path: str | Path) -> int:
        """Write the stored poses as a TUM trajectory file; returns the number of lines."""
        lines = self.tum_lines()
        Path(path).write_text(''.join(line + '\n' for line in lines))
        return len(lines)


def read_tum(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM file into (stamps_ns [N] int64, poses [N,4,4]); '#' lines are comments."""
    stamps, rows = [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if not parts or parts[0].startswith('#'):
            continue
        whole, _, frac = parts[0].partition('.')
        stamps.append(_parse_stamp_ns(whole, frac))
        rows.append([float(v) for v in parts[1:8]])
    data = np.array(rows, dtype=np.float64).reshape(-1, 7)
    return np.array(stamps, np.int64), poses_to_matrices(data[:, :3], data[:, 3:])


def _parse_stamp_ns(whole: str, frac: str) -> int:
    negative = whole.startswith('-')
    seconds = abs(int(whole)) if whole not in ('', '-') else 0
    nanos = int((frac + '000000000')[:9]) if frac else 0
    total = seconds * 1_000_000_000 + nanos
    return -total if negative else total
