# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What every dataset loader returns: a :class:`SequenceData` of lazily loaded frames.

A loader reads one benchmark's on-disk layout and hands out sequences whose frames are already
selected by the protocol (start, stride, frame cap). Ground truth is per selected frame, in the
project's conventions: poses are 4x4 float64 ``world_from_camera`` (OpenCV camera axes),
intrinsics [3,3] in camera pixels, masks [H,W] bool (True = dynamic), depth [H,W] float32
z-depth in the dataset's units (0 = invalid).

Every missing or unreadable file raises :class:`DatasetError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from vggt4d_ros.replay.errors import ReplayError

#: Metric groups a sequence can be scored on.
MASKS, TRAJECTORY, RECONSTRUCTION = 'masks', 'trajectory', 'reconstruction'


class DatasetError(ReplayError):
    """A dataset folder is incomplete or corrupt; the message names the file."""


@dataclass
class Protocol:
    """Frame selection and window settings of one benchmark (see docs/replay.md).

    Attributes:
        start: first frame index used.
        stride: take every ``stride``-th frame after ``start``.
        max_frames: cap on the selected frames (None: all).
        window_size: engine window override (None: the parameter file's).
        stride_frames: engine stride override (None: the parameter file's).
        long_window: the sequence is meant to run in one pass (the paper's single-pass long
            sequences); the window is as large as the configuration allows.
        notes: what this protocol follows and where it departs from the paper.

    """

    start: int = 0
    stride: int = 1
    max_frames: int | None = None
    window_size: int | None = None
    stride_frames: int | None = None
    long_window: bool = False
    notes: tuple[str, ...] = ()

    def select(self, count: int) -> list[int]:
        """Return the indices of the selected frames among ``count`` available ones."""
        indices = list(range(self.start, count, max(1, self.stride)))
        return indices if self.max_frames is None else indices[:self.max_frames]


@dataclass
class FrameRef:
    """One selected frame.

    Attributes:
        stamp_ns: stamp (the dataset's own time where it has one, else index / fps).
        load_rgb: returns HxWx3 uint8 RGB.
        name: file or message name (for error messages and the bag writer).

    """

    stamp_ns: int
    load_rgb: Callable[[], np.ndarray]
    name: str = ''


@dataclass
class SequenceData:
    """One benchmark sequence, frames selected by the protocol.

    Attributes:
        dataset: loader name ('davis', 'vkitti', ...).
        name: sequence name (unique within the dataset; used as the result folder name).
        frames: [N] selected frames in time order.
        metrics: metric groups this sequence is scored on.
        poses: [N,4,4] ground-truth world_from_camera per frame, or None.
        intrinsics: [N,3,3] ground-truth intrinsics in camera pixels, or None.
        load_mask: per frame, a loader of the ground-truth dynamic mask, or None.
        load_depth: per frame, a loader of the ground-truth depth, or None.
        units: units of ground-truth poses and depth ('m', 'scale-free', ...).
        fps: frame rate used for synthetic stamps and bags.

    """

    dataset: str
    name: str
    frames: list[FrameRef]
    metrics: tuple[str, ...]
    poses: np.ndarray | None = None
    intrinsics: np.ndarray | None = None
    load_mask: list[Callable[[], np.ndarray]] | None = None
    load_depth: list[Callable[[], np.ndarray]] | None = None
    units: str = 'm'
    fps: float = 30.0
    info: dict[str, str] = field(default_factory=dict)

    @property
    def stamps_ns(self) -> list[int]:
        return [frame.stamp_ns for frame in self.frames]


#: Loads one sequence on demand (a broken sequence fails alone, not the whole dataset).
Loader = Callable[[], SequenceData]


def require_file(path: Path, what: str = '') -> Path:
    """Return ``path`` if it is a file; else DatasetError naming it (and what it is)."""
    if not Path(path).is_file():
        label = f' ({what})' if what else ''
        raise DatasetError(f'missing file {path}{label}')
    return Path(path)


def require_dir(path: Path, what: str = '') -> Path:
    """Return ``path`` if it is a directory; else DatasetError naming it."""
    if not Path(path).is_dir():
        label = f' ({what})' if what else ''
        raise DatasetError(f'missing folder {path}{label}')
    return Path(path)


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB of an image file; DatasetError when missing or undecodable."""
    image = cv2.imread(str(require_file(path, 'image')), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f'cannot decode image {path}')
    return np.ascontiguousarray(image[..., ::-1])


def read_unchanged(path: Path, what: str) -> np.ndarray:
    """Raw pixels of a PNG (8/16 bit, 1 or more channels); DatasetError when unreadable."""
    image = cv2.imread(str(require_file(path, what)), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f'cannot decode {what} {path}')
    return image


def sorted_files(folder: Path, pattern: str, what: str) -> list[Path]:
    """Files of ``folder`` matching ``pattern`` in name order; DatasetError when none."""
    files = sorted(require_dir(folder, what).glob(pattern))
    if not files:
        raise DatasetError(f'no {what} ({pattern}) in {folder}')
    return files


#: First synthetic stamp: one second, because a zero stamp reads as "unset" in ROS tools.
FIRST_STAMP_NS = 1_000_000_000


def index_stamps(count: int, fps: float) -> list[int]:
    """Synthetic stamps [count] int ns for datasets without time: 1 s + frame index / fps."""
    period = 1e9 / fps
    return [FIRST_STAMP_NS + int(round(index * period)) for index in range(count)]


def pick_sequences(available: Sequence[str], wanted: Sequence[str] | None, root: Path
                   ) -> list[str]:
    """``wanted`` (checked against ``available``) or all available; DatasetError if unknown."""
    if not wanted:
        return list(available)
    missing = [name for name in wanted if name not in available]
    if missing:
        raise DatasetError(f'sequence(s) {", ".join(missing)} not found under {root} '
                           f'(available: {", ".join(available) or "none"})')
    return list(wanted)


def pose_from_rt(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 transform from a rotation [3,3] and a translation [3]."""
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = np.asarray(translation, np.float64).reshape(3)
    return pose


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """[3,3] pinhole intrinsics."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
