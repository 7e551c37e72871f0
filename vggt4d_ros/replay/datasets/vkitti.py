# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Virtual KITTI 2: camera poses (ATE / RPE).

Layout (the rgb and textgt archives extracted into one ROOT)::

    ROOT/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg ...
    ROOT/Scene01/clone/extrinsic.txt   header 'frame cameraID r1,1 r1,2 r1,3 t1 ... t3 0 0 0 1'
    ROOT/Scene01/clone/intrinsic.txt   header 'frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]'

The extrinsic rows are camera_from_world (world-to-camera) 4x4 matrices; the pose is their
inverse. A sequence is named ``Scene01/clone`` (scene / variation), camera 0 only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vggt4d_ros.replay.datasets.base import DatasetError
from vggt4d_ros.replay.datasets.base import FrameRef
from vggt4d_ros.replay.datasets.base import index_stamps
from vggt4d_ros.replay.datasets.base import intrinsics_matrix
from vggt4d_ros.replay.datasets.base import Loader
from vggt4d_ros.replay.datasets.base import pick_sequences
from vggt4d_ros.replay.datasets.base import Protocol
from vggt4d_ros.replay.datasets.base import read_rgb
from vggt4d_ros.replay.datasets.base import require_file
from vggt4d_ros.replay.datasets.base import SequenceData
from vggt4d_ros.replay.datasets.base import sorted_files
from vggt4d_ros.replay.datasets.base import TRAJECTORY

FPS = 10.0  # KITTI's frame rate, which Virtual KITTI clones
SCENES = ('Scene01', 'Scene02', 'Scene06', 'Scene18', 'Scene20')
CAMERA = 0

PROTOCOL = Protocol(notes=(
    'Scene01/02/06/18/20, variation clone, Camera_0, every frame: the paper does not say '
    'which frames or variations it used (not retrievable here)',
))


def _table(path: Path, columns: int) -> dict[int, np.ndarray]:
    """Rows of a VKITTI text file for camera 0, keyed by frame: values after 'frame cameraID'."""
    rows: dict[int, np.ndarray] = {}
    lines = require_file(path, 'Virtual KITTI 2 textgt').read_text().splitlines()
    for number, line in enumerate(lines[1:], start=2):  # line 1 is the header
        fields = line.split()
        if not fields:
            continue
        if len(fields) != columns + 2:
            raise DatasetError(f'{path}:{number}: expected {columns + 2} columns, '
                               f'got {len(fields)}')
        try:
            frame, camera = int(fields[0]), int(fields[1])
            values = np.array([float(v) for v in fields[2:]])
        except ValueError as error:
            raise DatasetError(f'{path}:{number}: {error}') from error
        if camera == CAMERA:
            rows[frame] = values
    return rows


def load_sequence(root: Path, name: str, protocol: Protocol = PROTOCOL) -> SequenceData:
    """One scene/variation of Virtual KITTI 2 (camera 0)."""
    folder = Path(root) / name
    images = sorted_files(folder / 'frames' / 'rgb' / 'Camera_0', 'rgb_*.jpg',
                          'Virtual KITTI 2 frames')
    extrinsics = _table(folder / 'extrinsic.txt', 16)
    intrinsics = _table(folder / 'intrinsic.txt', 4)
    stamps = index_stamps(len(images), FPS)
    frames, poses, ks = [], [], []
    for index in protocol.select(len(images)):
        image = images[index]
        number = int(image.stem.split('_')[-1])
        for table, file in ((extrinsics, 'extrinsic.txt'), (intrinsics, 'intrinsic.txt')):
            if number not in table:
                raise DatasetError(f'{folder / file}: no row for frame {number} camera '
                                   f'{CAMERA}')
        poses.append(np.linalg.inv(extrinsics[number].reshape(4, 4)))
        ks.append(intrinsics_matrix(*intrinsics[number]))
        frames.append(FrameRef(stamps[index], lambda p=image: read_rgb(p), image.name))
    return SequenceData('vkitti', name, frames, (TRAJECTORY,), poses=np.stack(poses),
                        intrinsics=np.stack(ks), fps=FPS)


def available(root: Path) -> list[str]:
    """'SceneXX/variation' folders that hold Camera_0 frames."""
    return sorted(f'{p.parents[3].name}/{p.parents[2].name}'
                  for p in Path(root).glob('Scene*/*/frames/rgb/Camera_0'))


def plan(root: Path, sequences: Sequence[str] | None = None,
         protocol: Protocol = PROTOCOL) -> list[tuple[str, Loader]]:
    """List the named sequences, else the clone variation of the five scenes."""
    found = available(root)
    if not found:
        raise DatasetError(f'missing folder {Path(root) / "Scene01/clone/frames/rgb/Camera_0"}'
                           ' (no Virtual KITTI 2 scene found)')
    names = pick_sequences(found, sequences or [f'{s}/clone' for s in SCENES
                                                if f'{s}/clone' in found], root)
    return [(n, lambda n=n: load_sequence(root, n, protocol)) for n in names]
