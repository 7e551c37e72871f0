# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""DyCheck (iPhone): reconstruction accuracy, completeness and distance, plus poses.

Layout (the released iPhone captures)::

    ROOT/<seq>/dataset.json        {"ids": [...], "train_ids": [...], "val_ids": [...], ...}
    ROOT/<seq>/rgb/1x/<id>.png
    ROOT/<seq>/camera/<id>.json    orientation [3x3] (camera_from_world rotation), position [3]
                                   (camera centre in world), focal_length, principal_point
                                   [cx, cy], pixel_aspect_ratio (fy = f * ratio), image_size
    ROOT/<seq>/depth/1x/<id>.npy   lidar z-depth [H,W,1] in metres (0 = invalid)
    ROOT/<seq>/extra.json          optional, {"fps": ...}

Protocol (Easi3R's DyCheck evaluation, which VGGT4D's DyCheck table follows in its metric set):
the training (monocular) ids, every 10th frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vggt4d_ros.replay.datasets.base import DatasetError
from vggt4d_ros.replay.datasets.base import FIRST_STAMP_NS
from vggt4d_ros.replay.datasets.base import FrameRef
from vggt4d_ros.replay.datasets.base import intrinsics_matrix
from vggt4d_ros.replay.datasets.base import Loader
from vggt4d_ros.replay.datasets.base import pick_sequences
from vggt4d_ros.replay.datasets.base import pose_from_rt
from vggt4d_ros.replay.datasets.base import Protocol
from vggt4d_ros.replay.datasets.base import read_rgb
from vggt4d_ros.replay.datasets.base import RECONSTRUCTION
from vggt4d_ros.replay.datasets.base import require_file
from vggt4d_ros.replay.datasets.base import SequenceData
from vggt4d_ros.replay.datasets.base import TRAJECTORY

DEFAULT_FPS = 30.0

PROTOCOL = Protocol(stride=10, notes=(
    'training (monocular) ids of dataset.json, every 10th frame (Easi3R DyCheck protocol)',
    "ground truth: the dataset's own cameras (camera/*.json) and lidar depth (depth/1x); "
    "Easi3R uses Shape-of-Motion's COLMAP-refined cameras and aligned depth instead, which are "
    'not part of the DyCheck release',
    'points are compared at every 2nd camera pixel (about the network resolution) after a '
    'Sim(3) alignment of the camera centres; lens distortion is ignored',
))


def _json(path: Path, what: str) -> Any:
    try:
        return json.loads(require_file(path, what).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f'cannot parse {what} {path}: {error}') from error


def read_camera(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """World_from_camera [4,4] and intrinsics [3,3] of a DyCheck camera JSON."""
    camera = _json(path, 'DyCheck camera')
    try:
        orientation = np.asarray(camera['orientation'], np.float64).reshape(3, 3)
        position = np.asarray(camera['position'], np.float64).reshape(3)
        focal = float(camera['focal_length'])
        cx, cy = (float(v) for v in camera['principal_point'])
        aspect = float(camera.get('pixel_aspect_ratio', 1.0))
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f'DyCheck camera {path}: bad or missing field {error}') from error
    # camera_from_world = [R | -R c]; its inverse is [R^T | c].
    return pose_from_rt(orientation.T, position), intrinsics_matrix(focal, focal * aspect, cx, cy)


def read_depth(path: Path) -> np.ndarray:
    """[H,W] float32 metres of a DyCheck depth .npy (0 = invalid)."""
    try:
        depth = np.load(require_file(path, 'DyCheck depth'))
    except (OSError, ValueError) as error:
        raise DatasetError(f'cannot read DyCheck depth {path}: {error}') from error
    depth = np.asarray(depth, np.float32)
    if depth.ndim == 3:
        depth = depth[..., 0]
    return np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)


def load_sequence(root: Path, name: str, protocol: Protocol = PROTOCOL) -> SequenceData:
    """One DyCheck capture."""
    folder = Path(root) / name
    meta = _json(folder / 'dataset.json', 'DyCheck dataset.json')
    ids = meta.get('train_ids') or meta.get('ids')
    if not ids:
        raise DatasetError(f'{folder / "dataset.json"} lists no train_ids or ids')
    extra = folder / 'extra.json'
    fps = float(_json(extra, 'DyCheck extra.json').get('fps', DEFAULT_FPS)) \
        if extra.is_file() else DEFAULT_FPS
    frames, poses, ks, depths = [], [], [], []
    for index in protocol.select(len(ids)):
        frame_id = str(ids[index])
        image = require_file(folder / 'rgb' / '1x' / f'{frame_id}.png', 'DyCheck frame')
        depth = require_file(folder / 'depth' / '1x' / f'{frame_id}.npy', 'DyCheck depth')
        pose, k = read_camera(folder / 'camera' / f'{frame_id}.json')
        frames.append(FrameRef(FIRST_STAMP_NS + int(round(index * 1e9 / fps)),
                               lambda p=image: read_rgb(p),
                               image.name))
        poses.append(pose)
        ks.append(k)
        depths.append(lambda p=depth: read_depth(p))
    return SequenceData('dycheck', name, frames, (TRAJECTORY, RECONSTRUCTION),
                        poses=np.stack(poses), intrinsics=np.stack(ks), load_depth=depths,
                        fps=fps)


def plan(root: Path, sequences: Sequence[str] | None = None,
         protocol: Protocol = PROTOCOL) -> list[tuple[str, Loader]]:
    """List the named captures, else every folder of ROOT holding a dataset.json."""
    if sequences:  # a named folder without dataset.json fails naming the file
        folders = sorted(p.name for p in Path(root).iterdir() if p.is_dir()) \
            if Path(root).is_dir() else []
        names = pick_sequences(folders, sequences, root)
    else:
        names = sorted(p.parent.name for p in Path(root).glob('*/dataset.json'))
        if not names:
            raise DatasetError(f'missing file {Path(root) / "<sequence>" / "dataset.json"} '
                               '(no DyCheck capture found)')
    return [(n, lambda n=n: load_sequence(root, n, protocol)) for n in names]
