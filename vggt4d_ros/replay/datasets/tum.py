# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""TUM RGB-D (dynamic fr3 sequences) and Bonn RGB-D Dynamic: camera poses (ATE / RPE).

Folder layout (both datasets)::

    ROOT/<seq>/rgb.txt           '# comments', then 'stamp rgb/<stamp>.png'
    ROOT/<seq>/groundtruth.txt   'stamp tx ty tz qx qy qz qw' (world_from_camera, metres)
    ROOT/<seq>/rgb/<stamp>.png

TUM also distributes each sequence as a ROS 1 bag, ``ROOT/<seq>.bag`` (colour images on
``/camera/rgb/image_color``, ``/camera/rgb/camera_info``, motion capture on ``/tf``), read here
with ``rosbags``. Ground truth then comes from ``<seq>-groundtruth.txt`` or
``<seq>/groundtruth.txt`` beside the bag, else from the bag's ``/tf`` (world -> kinect).

Association follows TUM's ``associate.py``: entries of the two lists whose stamps differ by
less than ``max_difference`` (0.02 s) are candidates; candidates are taken greedily by smallest
difference, each stamp used at most once; matches are returned in stamp order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from vggt4d_ros.geometry.rigid import pose_from_translation_quaternion
from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.datasets.base import DatasetError
from vggt4d_ros.replay.datasets.base import FrameRef
from vggt4d_ros.replay.datasets.base import intrinsics_matrix
from vggt4d_ros.replay.datasets.base import Loader
from vggt4d_ros.replay.datasets.base import pick_sequences
from vggt4d_ros.replay.datasets.base import Protocol
from vggt4d_ros.replay.datasets.base import read_rgb
from vggt4d_ros.replay.datasets.base import require_file
from vggt4d_ros.replay.datasets.base import SequenceData
from vggt4d_ros.replay.datasets.base import TRAJECTORY

MAX_DIFFERENCE_S = 0.02  # associate.py's default
FPS = 30.0
#: The dynamic sequences of TUM RGB-D (fr3 sitting / walking).
TUM_DYNAMIC = tuple(f'rgbd_dataset_freiburg3_{kind}_{motion}' for kind in ('sitting', 'walking')
                    for motion in ('static', 'xyz', 'halfsphere', 'rpy'))
#: TUM's published intrinsics of the freiburg3 colour camera (ROS default calibration).
FR3_INTRINSICS = intrinsics_matrix(535.4, 539.2, 320.1, 247.6)
IMAGE_TOPIC = '/camera/rgb/image_color'
CAMERA_INFO_TOPIC = '/camera/rgb/camera_info'
TF_PARENTS, TF_CHILDREN = ('/world', 'world'), ('/kinect', 'kinect')

TUM_PROTOCOL = Protocol(stride=30, notes=(
    'TUM is not in the VGGT4D paper; protocol of Easi3R (associate rgb.txt with '
    'groundtruth.txt, max difference 0.02 s, then every 30th associated frame)',
))
BONN_PROTOCOL = Protocol(start=30, max_frames=110, notes=(
    'Bonn is not in the VGGT4D paper; frames 30-139 of the associated list (the 110-frame '
    'window MonST3R-style evaluations use on Bonn)',
    'groundtruth.txt is used as shipped (no marker-to-camera correction)',
))


def read_file_list(path: Path) -> dict[float, list[str]]:
    """TUM list file as {stamp: fields}: ',' and tabs count as spaces, '#' lines skipped."""
    entries: dict[float, list[str]] = {}
    text = require_file(path, 'TUM list').read_text()
    for number, line in enumerate(text.replace(',', ' ').replace('\t', ' ').splitlines(), 1):
        fields = line.split()
        if not line or line.startswith('#') or len(fields) < 2:
            continue
        try:
            entries[float(fields[0])] = fields[1:]
        except ValueError as error:
            raise DatasetError(f'{path}:{number}: bad stamp: {error}') from error
    return entries


def associate(first: Sequence[float], second: Sequence[float], offset: float = 0.0,
              max_difference: float = MAX_DIFFERENCE_S) -> list[tuple[float, float]]:
    """Associate two stamp lists greedily, as TUM's associate.py (see the module docstring)."""
    candidates = sorted((abs(a - (b + offset)), a, b) for a in first for b in second
                        if abs(a - (b + offset)) < max_difference)
    free_a, free_b = set(first), set(second)
    matches = []
    for _, a, b in candidates:
        if a in free_a and b in free_b:
            free_a.remove(a)
            free_b.remove(b)
            matches.append((a, b))
    return sorted(matches)


def _pose(fields: list[str], where: str) -> np.ndarray:
    if len(fields) != 7:
        raise DatasetError(f'{where}: expected tx ty tz qx qy qz qw, got {len(fields)} values')
    values = [float(v) for v in fields]
    return pose_from_translation_quaternion(values[:3], values[3:])


def _ns(stamp_s: float) -> int:
    return int(round(stamp_s * 1e9))


def _stamp_s(message: Any) -> float:
    return m.stamp_ns_of(message.header) * 1e-9


def _intrinsics_for(name: str) -> np.ndarray | None:
    return FR3_INTRINSICS if 'freiburg3' in name else None


def load_folder(root: Path, name: str, protocol: Protocol, dataset: str) -> SequenceData:
    """Load a sequence from rgb.txt + groundtruth.txt + rgb/*.png."""
    folder = Path(root) / name
    images = read_file_list(folder / 'rgb.txt')
    truth = read_file_list(folder / 'groundtruth.txt')
    matches = associate(list(images), list(truth))
    if not matches:
        raise DatasetError(f'{folder}: no rgb.txt stamp within {MAX_DIFFERENCE_S} s of a '
                           'groundtruth.txt stamp')
    frames, poses = [], []
    for index in protocol.select(len(matches)):
        rgb_stamp, gt_stamp = matches[index]
        path = folder / images[rgb_stamp][0]
        require_file(path, f'{dataset} frame')
        frames.append(FrameRef(_ns(rgb_stamp), lambda p=path: read_rgb(p), path.name))
        poses.append(_pose(truth[gt_stamp], f'{folder / "groundtruth.txt"} at {gt_stamp}'))
    k = _intrinsics_for(name)
    return SequenceData(dataset, name, frames, (TRAJECTORY,), poses=np.stack(poses),
                        intrinsics=None if k is None else np.repeat(k[None], len(frames), 0),
                        fps=FPS, info={'source': str(folder)})


@dataclass
class _BagIndex:
    """Where the images and ground truth of a TUM bag are."""

    path: Path
    image_topic: str
    stamps: list[float]
    truth: dict[float, np.ndarray]
    intrinsics: np.ndarray | None


def _messages(reader: Any, topic: str) -> Iterator[Any]:
    connections = [c for c in reader.connections if c.topic == topic]
    for connection, _, raw in reader.messages(connections=connections):
        yield reader.deserialize(raw, connection.msgtype)


def _truth_from_tf(reader: Any) -> dict[float, np.ndarray]:
    truth: dict[float, np.ndarray] = {}
    if '/tf' not in {c.topic for c in reader.connections}:
        return truth
    for message in _messages(reader, '/tf'):
        for transform in message.transforms:
            if transform.header.frame_id in TF_PARENTS and \
                    transform.child_frame_id in TF_CHILDREN:
                truth[_stamp_s(transform)] = m.transform_to_matrix(transform.transform)
    return truth


def _truth_file(bag: Path) -> Path | None:
    for candidate in (bag.parent / f'{bag.stem}-groundtruth.txt',
                      bag.parent / bag.stem / 'groundtruth.txt'):
        if candidate.is_file():
            return candidate
    return None


def _open_bag(path: Path) -> Any:
    from rosbags.highlevel import AnyReader
    reader = AnyReader([require_file(path, 'TUM ROS 1 bag')])
    try:
        reader.open()
    except Exception as error:  # rosbags raises several reader errors
        raise DatasetError(f'cannot read ROS 1 bag {path}: {error}') from error
    return reader


def _index_bag(path: Path) -> _BagIndex:
    reader = _open_bag(path)
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        image_topic = IMAGE_TOPIC if topics.get(IMAGE_TOPIC) == m.IMAGE else next(
            (t for t, kind in sorted(topics.items()) if kind == m.IMAGE), None)
        if image_topic is None:
            raise DatasetError(f'bag {path} has no sensor_msgs/Image topic (topics: '
                               f'{", ".join(sorted(topics))})')
        stamps = [_stamp_s(msg) for msg in _messages(reader, image_topic)]
        info = next(_messages(reader, CAMERA_INFO_TOPIC), None) \
            if CAMERA_INFO_TOPIC in topics else None
        truth_file = _truth_file(path)
        if truth_file is not None:
            truth = {s: _pose(f, f'{truth_file} at {s}')
                     for s, f in read_file_list(truth_file).items()}
        else:
            truth = _truth_from_tf(reader)
    finally:
        reader.close()
    if not truth:
        raise DatasetError(f'no ground truth for bag {path}: missing file '
                           f'{path.parent / (path.stem + "-groundtruth.txt")} and no '
                           'world->kinect transforms on /tf')
    # ROS 1 CameraInfo spells the matrix K, ROS 2 k.
    values = None if info is None else getattr(info, 'K', getattr(info, 'k', None))
    k = None if values is None else np.asarray(values, np.float64).reshape(3, 3)
    return _BagIndex(path, image_topic, stamps, truth, k)


def _bag_images(path: Path, topic: str, wanted: set[float]) -> dict[float, np.ndarray]:
    reader = _open_bag(path)
    try:
        return {_stamp_s(msg): m.image_to_rgb(msg) for msg in _messages(reader, topic)
                if _stamp_s(msg) in wanted}
    finally:
        reader.close()


def load_bag(path: Path, protocol: Protocol, dataset: str = 'tum') -> SequenceData:
    """Load a sequence from a TUM ROS 1 bag (only the selected images are decoded)."""
    index = _index_bag(path)
    matches = associate(index.stamps, list(index.truth))
    if not matches:
        raise DatasetError(f'bag {path}: no image stamp within {MAX_DIFFERENCE_S} s of a '
                           'ground-truth stamp')
    selected = [matches[i] for i in protocol.select(len(matches))]
    images = _bag_images(path, index.image_topic, {a for a, _ in selected})
    frames = [FrameRef(_ns(a), lambda a=a: images[a], f'{index.image_topic}@{a:.6f}')
              for a, _ in selected]
    poses = np.stack([index.truth[b] for _, b in selected])
    k = index.intrinsics if index.intrinsics is not None else _intrinsics_for(path.stem)
    return SequenceData(dataset, path.stem, frames, (TRAJECTORY,), poses=poses,
                        intrinsics=None if k is None else np.repeat(k[None], len(frames), 0),
                        fps=FPS, info={'source': str(path)})


def _discover(root: Path, prefix: str) -> tuple[list[str], list[str]]:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f'missing folder {root}')
    folders = sorted(p.parent.name for p in root.glob(f'{prefix}*/rgb.txt'))
    bags = sorted(p.stem for p in root.glob(f'{prefix}*.bag'))
    return folders, bags


def plan(root: Path, sequences: Sequence[str] | None = None,
         protocol: Protocol = TUM_PROTOCOL, source: str = 'auto') -> list[tuple[str, Loader]]:
    """TUM sequences: folders (rgb.txt) or, with ``source='bag'`` or no folder, ROS 1 bags."""
    folders, bags = _discover(root, 'rgbd_dataset_')
    if source not in ('auto', 'folder', 'bag'):
        raise DatasetError(f"TUM source must be auto, folder or bag, got {source!r}")
    use_bags = source == 'bag' or (source == 'auto' and not folders)
    found = bags if use_bags else folders
    if not found:
        kind = '<seq>.bag' if use_bags else '<seq>/rgb.txt'
        raise DatasetError(f'missing file {Path(root) / kind} (no TUM sequence found)')
    default = [name for name in TUM_DYNAMIC if name in found] or found
    names = pick_sequences(found, sequences or default, root)
    if use_bags:
        return [(n, lambda n=n: load_bag(Path(root) / f'{n}.bag', protocol)) for n in names]
    return [(n, lambda n=n: load_folder(root, n, protocol, 'tum')) for n in names]


def plan_bonn(root: Path, sequences: Sequence[str] | None = None,
              protocol: Protocol = BONN_PROTOCOL) -> list[tuple[str, Loader]]:
    """Bonn RGB-D Dynamic sequences (rgbd_bonn_* folders, TUM formats)."""
    folders, _ = _discover(root, 'rgbd_bonn_')
    if not folders:
        raise DatasetError(f'missing file {Path(root) / "rgbd_bonn_<seq>" / "rgb.txt"} '
                           '(no Bonn sequence found)')
    return [(n, lambda n=n: load_folder(root, n, protocol, 'bonn'))
            for n in pick_sequences(folders, sequences, root)]
