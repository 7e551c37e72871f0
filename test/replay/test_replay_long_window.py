# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``vggt4d-replay --window-size N --stride N``: one pass over N frames, N up to 500."""

from __future__ import annotations

from pathlib import Path

import pytest

from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.inputs import validate_options
from vggt4d_ros.replay.runner import engine_config
from vggt4d_ros.replay.runner import ReplayConfig


@pytest.mark.parametrize('frames', [128, 256, 500])
def test_single_pass_window_settings_are_accepted(tmp_path: Path, frames: int):
    bag = tmp_path / 'bag'
    bag.mkdir()
    config = ReplayConfig(bag=bag, out_dir=tmp_path / 'out', weights='', window_size=frames,
                          stride=frames)
    validate_options(config)
    window = engine_config(config).window
    assert (window.window_size, window.stride, window.overlap) == (frames, frames, 0)
    assert window.mode == 'replay'


def test_stride_beyond_the_window_is_refused(tmp_path: Path):
    bag = tmp_path / 'bag'
    bag.mkdir()
    config = ReplayConfig(bag=bag, out_dir=tmp_path / 'out', weights='', window_size=8,
                          stride=9)
    with pytest.raises(ReplayError, match='--stride 9'):
        validate_options(config)
