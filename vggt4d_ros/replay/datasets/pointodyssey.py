# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""PointOdyssey: camera poses on long (500-frame) sequences.

Layout (one split folder, e.g. ``test/``)::

    ROOT[/test]/<seq>/rgbs/rgb_00000.jpg ...
    ROOT[/test]/<seq>/depths/depth_00000.png ...   (16 bit, metres = value / 65535 * 1000)
    ROOT[/test]/<seq>/anno.npz   keys extrinsics [T,4,4] camera_from_world, intrinsics [T,3,3],
                                 trajs_2d, trajs_3d, valids, visibs (point tracks, unused here)

The paper's long-sequence setting runs 500 frames in one pass; this protocol selects the first
500 frames and asks for the long-window mode (see :class:`Protocol`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence
import zipfile

import numpy as np

from vggt4d_ros.replay.datasets.base import DatasetError
from vggt4d_ros.replay.datasets.base import FrameRef
from vggt4d_ros.replay.datasets.base import index_stamps
from vggt4d_ros.replay.datasets.base import Loader
from vggt4d_ros.replay.datasets.base import pick_sequences
from vggt4d_ros.replay.datasets.base import Protocol
from vggt4d_ros.replay.datasets.base import read_rgb
from vggt4d_ros.replay.datasets.base import require_file
from vggt4d_ros.replay.datasets.base import SequenceData
from vggt4d_ros.replay.datasets.base import sorted_files
from vggt4d_ros.replay.datasets.base import TRAJECTORY

FPS = 30.0  # stamps only (the dataset has no time stamps)
LONG_FRAMES = 500

PROTOCOL = Protocol(max_frames=LONG_FRAMES, long_window=True, notes=(
    'first 500 frames of each sequence in one window (the paper: single-pass inference on '
    '500 frames). NEEDS THE LONG-WINDOW MODE: until it exists the window is the largest the '
    'configuration allows and the memory this takes is not bounded',
    "sequence list: every sequence of the split folder (the paper's list is not retrievable "
    'here)',
))


def read_anno(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Extrinsics [T,4,4] (camera_from_world) and intrinsics [T,3,3] of an anno.npz."""
    try:
        with np.load(require_file(path, 'PointOdyssey annotations')) as anno:
            missing = [k for k in ('extrinsics', 'intrinsics') if k not in anno.files]
            if missing:
                raise DatasetError(f'{path} has no {", ".join(missing)} '
                                   f'(keys: {", ".join(anno.files)})')
            extrinsics = np.asarray(anno['extrinsics'], np.float64)
            intrinsics = np.asarray(anno['intrinsics'], np.float64)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(f'cannot read PointOdyssey annotations {path}: {error}') from error
    if extrinsics.ndim != 3 or extrinsics.shape[1:] != (4, 4):
        raise DatasetError(f'{path}: extrinsics have shape {extrinsics.shape}, want [T,4,4]')
    if intrinsics.ndim != 3 or intrinsics.shape[1:] != (3, 3):
        raise DatasetError(f'{path}: intrinsics have shape {intrinsics.shape}, want [T,3,3]')
    return extrinsics, intrinsics


def load_sequence(root: Path, name: str, protocol: Protocol = PROTOCOL) -> SequenceData:
    """One PointOdyssey sequence."""
    folder = Path(root) / name
    images = sorted_files(folder / 'rgbs', 'rgb_*.jpg', 'PointOdyssey frames')
    extrinsics, intrinsics = read_anno(folder / 'anno.npz')
    if len(extrinsics) < len(images) or len(intrinsics) < len(images):
        raise DatasetError(f'{folder / "anno.npz"}: {len(extrinsics)} extrinsics / '
                           f'{len(intrinsics)} intrinsics for {len(images)} frames')
    indices = protocol.select(len(images))
    stamps = index_stamps(len(images), FPS)
    frames = [FrameRef(stamps[i], lambda p=images[i]: read_rgb(p), images[i].name)
              for i in indices]
    poses = np.stack([np.linalg.inv(extrinsics[i]) for i in indices])
    return SequenceData('pointodyssey', name, frames, (TRAJECTORY,), poses=poses,
                        intrinsics=intrinsics[indices], fps=FPS)


def split_root(root: Path) -> Path:
    """ROOT if it holds sequences (<seq>/anno.npz), else ROOT/test."""
    root = Path(root)
    if any(root.glob('*/anno.npz')) or not (root / 'test').is_dir():
        return root
    return root / 'test'


def plan(root: Path, sequences: Sequence[str] | None = None,
         protocol: Protocol = PROTOCOL) -> list[tuple[str, Loader]]:
    """List the named sequences, else every sequence folder of the split."""
    root = split_root(root)
    found = sorted(p.name for p in root.iterdir() if (p / 'rgbs').is_dir()) \
        if root.is_dir() else []
    if not found:
        raise DatasetError(f'missing folder {root / "<sequence>" / "rgbs"} '
                           '(no PointOdyssey sequence found)')
    return [(n, lambda n=n: load_sequence(root, n, protocol))
            for n in pick_sequences(found, sequences, root)]
