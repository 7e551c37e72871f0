# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""DAVIS 2016 / 2017 at 480p: dynamic-object segmentation (J and F).

Layout (the DAVIS-2017 trainval 480p archive; DAVIS-2016 has the same two folders)::

    ROOT[/DAVIS]/JPEGImages/480p/<seq>/00000.jpg ...
    ROOT[/DAVIS]/Annotations/480p/<seq>/00000.png ...   (palette PNG: 0 background, k object k;
                                                        DAVIS-2016: 0/255 grey)
    ROOT[/DAVIS]/ImageSets/2016/val.txt, ImageSets/2017/val.txt   (optional sequence lists)

Protocol (Easi3R / DAS3R, whose lists VGGT4D's DAVIS tables compare against): every object of a
frame is merged into one foreground mask, every frame of the sequence is used, and the splits
are the 20 DAVIS-2016 val sequences, the 30 DAVIS-2017 val sequences, or all sequences
('all'). Lists are read from ``ImageSets`` when present, else the built-in official val lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from vggt4d_ros.replay.datasets.base import DatasetError
from vggt4d_ros.replay.datasets.base import FrameRef
from vggt4d_ros.replay.datasets.base import index_stamps
from vggt4d_ros.replay.datasets.base import Loader
from vggt4d_ros.replay.datasets.base import MASKS
from vggt4d_ros.replay.datasets.base import pick_sequences
from vggt4d_ros.replay.datasets.base import Protocol
from vggt4d_ros.replay.datasets.base import read_rgb
from vggt4d_ros.replay.datasets.base import require_dir
from vggt4d_ros.replay.datasets.base import require_file
from vggt4d_ros.replay.datasets.base import SequenceData
from vggt4d_ros.replay.datasets.base import sorted_files

FPS = 24.0  # DAVIS videos are 24 fps
#: Official DAVIS-2016 val split (20 sequences).
VAL_2016 = (
    'blackswan', 'bmx-trees', 'breakdance', 'camel', 'car-roundabout', 'car-shadow', 'cows',
    'dance-twirl', 'dog', 'drift-chicane', 'drift-straight', 'goat', 'horsejump-high',
    'kite-surf', 'libby', 'motocross-jump', 'paragliding-launch', 'parkour', 'scooter-black',
    'soapbox')
#: Official DAVIS-2017 val split (30 sequences).
VAL_2017 = (
    'bike-packing', 'blackswan', 'bmx-trees', 'breakdance', 'camel', 'car-roundabout',
    'car-shadow', 'cows', 'dance-twirl', 'dog', 'dogs-jump', 'drift-chicane', 'drift-straight',
    'goat', 'gold-fish', 'horsejump-high', 'india', 'judo', 'kite-surf', 'lab-coat', 'libby',
    'loading', 'mbike-trick', 'motocross-jump', 'paragliding-launch', 'parkour', 'pigs',
    'scooter-black', 'shooting', 'soapbox')
SPLITS = ('2016', '2017', 'all')

PROTOCOL = Protocol(notes=(
    'all objects merged into one foreground mask, every frame used (Easi3R/DAS3R DAVIS '
    'protocol)',
    'J and F at the annotation resolution (480p); Easi3R resizes the ground truth to its '
    'network crop instead',
))


def dataset_root(root: Path) -> Path:
    """ROOT or ROOT/DAVIS, whichever holds JPEGImages/480p."""
    for candidate in (Path(root), Path(root) / 'DAVIS'):
        if (candidate / 'JPEGImages' / '480p').is_dir():
            return candidate
    raise DatasetError(f'missing folder {Path(root) / "JPEGImages" / "480p"} (DAVIS images)')


def split_sequences(root: Path, split: str) -> list[str]:
    """Sequence names of a split ('2016', '2017' or 'all')."""
    if split not in SPLITS:
        raise DatasetError(f'DAVIS split must be one of {", ".join(SPLITS)}, got {split!r}')
    annotations = require_dir(root / 'Annotations' / '480p', 'DAVIS annotations')
    if split == 'all':
        return sorted(p.name for p in annotations.iterdir() if p.is_dir())
    listed = root / 'ImageSets' / split / 'val.txt'
    if listed.is_file():
        return [line.strip() for line in listed.read_text().splitlines() if line.strip()]
    return list(VAL_2016 if split == '2016' else VAL_2017)


def read_annotation(path: Path) -> np.ndarray:
    """[H,W] bool foreground of a DAVIS annotation (palette index or grey value > 0)."""
    try:
        with Image.open(require_file(path, 'DAVIS annotation')) as image:
            labels = np.asarray(image)
    except (OSError, ValueError) as error:
        raise DatasetError(f'cannot decode DAVIS annotation {path}: {error}') from error
    if labels.ndim == 3:
        return np.any(labels[..., :3] > 0, axis=2)
    return labels > 0


def load_sequence(root: Path, name: str, protocol: Protocol = PROTOCOL) -> SequenceData:
    """One DAVIS sequence; every selected frame must have its annotation PNG."""
    images = sorted_files(root / 'JPEGImages' / '480p' / name, '*.jpg', 'DAVIS frames')
    indices = protocol.select(len(images))
    stamps = index_stamps(len(images), FPS)
    notes = root / 'Annotations' / '480p' / name
    frames, masks = [], []
    for index in indices:
        image, annotation = images[index], notes / (images[index].stem + '.png')
        require_file(annotation, 'DAVIS annotation')
        frames.append(FrameRef(stamps[index], lambda p=image: read_rgb(p), image.name))
        masks.append(lambda p=annotation: read_annotation(p))
    return SequenceData('davis', name, frames, (MASKS,), load_mask=masks, fps=FPS,
                        units='pixels')


def plan(root: Path, sequences: Sequence[str] | None = None, split: str = '2017',
         protocol: Protocol = PROTOCOL) -> list[tuple[str, Loader]]:
    """(name, loader) of a DAVIS split's sequences (or the named ones, which must exist)."""
    root = dataset_root(Path(root))
    available = split_sequences(root, split)
    on_disk = [s for s in available if (root / 'JPEGImages' / '480p' / s).is_dir()]
    if sequences:
        names = pick_sequences(sorted(p.name for p in (root / 'JPEGImages' / '480p').iterdir()
                                      if p.is_dir()), sequences, root)
    else:
        missing = sorted(set(available) - set(on_disk))
        if missing:
            folders = ', '.join(str(root / 'JPEGImages' / '480p' / s) for s in missing)
            raise DatasetError(f'DAVIS split {split}: missing folder(s) {folders}')
        names = available
    return [(n, lambda n=n: load_sequence(root, n, protocol)) for n in names]
