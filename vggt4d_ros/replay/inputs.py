# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Up-front checks of a replay run's paths and options, before any frame is processed.

A run that fails on its inputs fails at once with a :class:`ReplayError` naming the option,
instead of after the whole bag was processed (a missing ``--gt-tum`` file used to surface only
at the evaluation, as a traceback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.parameters import resolve_weights
from vggt4d_ros.replay.outputs import read_tum

#: Checkpoint suffixes the model loader reads.
WEIGHT_SUFFIXES = ('.pt', '.pth', '.bin', '.safetensors')


def _readable_file(path: Path, option: str) -> None:
    if not path.exists():
        raise ReplayError(f'{option} {path}: no such file')
    if not path.is_file():
        raise ReplayError(f'{option} {path}: not a file')
    try:
        with open(path, 'rb'):
            pass
    except OSError as error:
        raise ReplayError(f'{option} {path}: cannot be read ({error.strerror})') from error


def validate_options(config: Any) -> None:
    """Check every path and numeric option of a ``ReplayConfig`` (the bag is not opened).

    Raises:
        ReplayError: the first problem found, naming the option and what to change.

    """
    bag = Path(config.bag)
    if not bag.exists():
        raise ReplayError(f'bag {bag} does not exist')
    out = Path(config.out_dir)
    if out.exists() and not out.is_dir():
        raise ReplayError(f'--out {out} exists and is not a directory')
    if config.params_file is not None:
        _readable_file(Path(config.params_file), '--params')
    if config.window_size is not None and config.window_size < 2:
        raise ReplayError(f'--window-size {config.window_size}: must be >= 2')
    if (config.stride is not None and config.window_size is not None
            and not 1 <= config.stride <= config.window_size):
        raise ReplayError(f'--stride {config.stride}: must be in [1, window size = '
                          f'{config.window_size}] (window size - 1 at most for windows that '
                          'overlap and chain into one map)')
    if config.stride is not None and config.stride < 1:
        raise ReplayError(f'--stride {config.stride}: must be >= 1')
    if config.max_frames is not None and config.max_frames < 1:
        raise ReplayError(f'--max-frames {config.max_frames}: must be >= 1')
    if config.network_width is not None and (config.network_width <= 0
                                             or config.network_width % 14):
        raise ReplayError(f'--network-width {config.network_width}: must be a positive '
                          'multiple of 14')
    weights = resolve_weights(config.weights)
    if weights is not None:
        _readable_file(weights, '--weights (or $VGGT4D_WEIGHTS)')
        if weights.suffix.lower() not in WEIGHT_SUFFIXES:
            raise ReplayError(f'--weights {weights}: unknown checkpoint extension '
                              f'{weights.suffix!r} (use {", ".join(WEIGHT_SUFFIXES)})')
    if config.gt_tum is not None:
        _readable_file(Path(config.gt_tum), '--gt-tum')
        try:
            read_tum(config.gt_tum)
        except (ValueError, UnicodeDecodeError) as error:
            raise ReplayError(f'--gt-tum {config.gt_tum}: not a TUM trajectory '
                              f'(stamp tx ty tz qx qy qz qw per line): {error}') from error
    if config.gt_mask_dir is not None:
        folder = Path(config.gt_mask_dir)
        if not folder.is_dir():
            raise ReplayError(f'--gt-mask-dir {folder}: no such directory')
        if not any(folder.glob('*.png')):
            raise ReplayError(f'--gt-mask-dir {folder}: holds no .png masks')


def validate_bag_options(config: Any, reader: Any) -> None:
    """Check the topics the options name against the opened bag (``BagReader``).

    A topic is checked only where it is used: ``--gt-tum`` and ``--gt-mask-dir`` take
    precedence over the ground-truth topics.

    Raises:
        TopicError: a named ground-truth topic is missing or has an unusable type.

    """
    from vggt4d_ros.replay.bag import POSE_TYPES
    from vggt4d_ros.replay.messages import IMAGE

    if config.gt_pose_topic and config.gt_tum is None:
        reader.require_topic(config.gt_pose_topic, POSE_TYPES)
    if config.gt_mask_topic and config.gt_mask_dir is None:
        reader.require_topic(config.gt_mask_topic, (IMAGE,))
    if config.gt_objects_topic:
        from vggt4d_ros.replay.planner_messages import OBSTACLE_ARRAY
        reader.require_topic(config.gt_objects_topic, (OBSTACLE_ARRAY,))
