# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Benchmark loaders (each dataset's exact on-disk layout) for vggt4d-eval and vggt4d-bag.

``plan_dataset(name, root, sequences, ...)`` lists the protocol's sequences with a loader each;
a loader returns :class:`~vggt4d_ros.replay.datasets.base.SequenceData` (frames selected by the
protocol, ground truth per frame).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from vggt4d_ros.replay.datasets import davis
from vggt4d_ros.replay.datasets import dycheck
from vggt4d_ros.replay.datasets import pointodyssey
from vggt4d_ros.replay.datasets import tum
from vggt4d_ros.replay.datasets import vkitti
from vggt4d_ros.replay.datasets.base import DatasetError
from vggt4d_ros.replay.datasets.base import Loader
from vggt4d_ros.replay.datasets.base import Protocol
from vggt4d_ros.replay.datasets.base import SequenceData

DATASETS = ('davis', 'vkitti', 'pointodyssey', 'dycheck', 'tum', 'bonn')
PROTOCOLS: dict[str, Protocol] = {
    'davis': davis.PROTOCOL, 'vkitti': vkitti.PROTOCOL, 'pointodyssey': pointodyssey.PROTOCOL,
    'dycheck': dycheck.PROTOCOL, 'tum': tum.TUM_PROTOCOL, 'bonn': tum.BONN_PROTOCOL,
}


def plan_dataset(name: str, root: str | Path, sequences: Sequence[str] | None = None,
                 protocol: Protocol | None = None, davis_split: str = '2017',
                 tum_source: str = 'auto') -> list[tuple[str, Loader]]:
    """(sequence name, loader) pairs of benchmark ``name`` under ``root``.

    Finding the sequences checks the dataset's top-level layout (DatasetError naming what is
    missing); each loader reads one sequence's files when called, so one broken sequence fails
    alone.
    """
    if name not in PROTOCOLS:
        raise DatasetError(f'unknown dataset {name!r} (one of {", ".join(DATASETS)})')
    root = Path(root)
    if not root.exists():
        raise DatasetError(f'missing folder {root} (dataset root)')
    protocol = protocol or PROTOCOLS[name]
    if name == 'davis':
        return davis.plan(root, sequences, davis_split, protocol)
    if name == 'tum':
        return tum.plan(root, sequences, protocol, tum_source)
    if name == 'bonn':
        return tum.plan_bonn(root, sequences, protocol)
    module = {'vkitti': vkitti, 'pointodyssey': pointodyssey, 'dycheck': dycheck}[name]
    return module.plan(root, sequences, protocol)


def load_dataset(name: str, root: str | Path, sequences: Sequence[str] | None = None,
                 **options: object) -> list[SequenceData]:
    """Every sequence of :func:`plan_dataset`, loaded."""
    return [load() for _, load in plan_dataset(name, root, sequences, **options)]
