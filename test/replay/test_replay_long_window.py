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


def test_one_window_over_the_whole_sequence(tmp_path: Path):
    """The tiny model over a 6-frame bag in one window: every frame gets a mask and a pose."""
    from vggt4d_ros.replay.runner import run_replay
    from vggt4d_ros.replay.synthetic import SceneConfig
    from vggt4d_ros.replay.synthetic import write_synthetic_bag

    scene = SceneConfig(num_frames=6, supersample=1)
    bag = write_synthetic_bag(tmp_path / 'bag', scene)
    config = ReplayConfig(bag=bag, out_dir=tmp_path / 'out', weights='', device='cpu',
                          window_size=6, stride=6, refine=False, network_width=126,
                          quiet=True)
    summary = run_replay(config)
    assert summary.frames_in == summary.frames_out == 6
    assert len(list((tmp_path / 'out' / 'masks').glob('*.png'))) == 6
