# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The replay tool's parameters: a node parameter file plus command-line overrides.

``vggt4d-replay --params FILE`` reads the node's parameter file (``config/vggt4d.yaml`` or any
other) into the flat parameter dict the node would declare, forces ``mode: replay`` (nothing is
dropped), applies the command-line options that were given, and hands the result to
:func:`vggt4d_ros.runtime.parameters.engine_config_from_parameters`, the function the node
uses: the same file gives the same engine. The DDS mode passes the same dict to the node.

Without a parameter file the tool evaluates every frame (the replay window policy,
:data:`vggt4d_ros.runtime.window.REPLAY_WINDOW`) and, without weights, runs the tiny model
with seeded random weights (a plumbing check; the report says so).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.runtime.parameters import load_parameter_file
from vggt4d_ros.runtime.parameters import replay_window_parameters

WEIGHTS_ENV = 'VGGT4D_WEIGHTS'
RANDOM_WEIGHTS_WARNING = (
    'NO WEIGHTS GIVEN: running with RANDOM weights. Every number and mask below is a plumbing '
    'check and means NOTHING about VGGT4D quality. Pass --weights PATH (or set '
    f'{WEIGHTS_ENV}) to a VGGT checkpoint for a real evaluation.')


def resolve_weights(weights: str | Path | None) -> Path | None:
    """Return the checkpoint to use: the argument, else $VGGT4D_WEIGHTS, else None.

    An empty string means "no weights" and does not fall back to the environment.
    """
    if weights is None:
        weights = os.environ.get(WEIGHTS_ENV, '')
    return Path(weights).expanduser() if weights else None


def replay_parameters(params_file: Path | None, weights: str | None = None,
                      overrides: dict[str, Any] | None = None,
                      every_frame: bool = False) -> dict[str, Any]:
    """Flat node parameters of one replay run.

    Args:
        params_file: node parameter file (None: defaults, every frame a keyframe).
        weights: checkpoint (None: the file's ``weights``, else ``$VGGT4D_WEIGHTS``; '': none).
        overrides: further ``name: value`` pairs (command-line options that were given).
        every_frame: apply the replay window policy on top of the file.

    Raises:
        ReplayError: unreadable parameter file.

    """
    flat: dict[str, Any] = {}
    if params_file is not None:
        try:
            flat = load_parameter_file(params_file)
        except ValueError as error:
            raise ReplayError(str(error)) from error
    if params_file is None or every_frame:
        flat.update(replay_window_parameters())
    flat['mode'] = 'replay'
    if weights is None and flat.get('weights'):
        weights = str(flat['weights'])
    path = resolve_weights(weights)
    flat['weights'] = str(path) if path is not None else ''
    if path is None and params_file is None:
        flat.update({'model_config': 'tiny', 'allow_random_weights': True})
    flat.update(overrides or {})
    return flat
