# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""vggt4d-replay validates every path and option before processing anything (exit code 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vggt4d_ros.replay.cli import main as cli_main
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import write_synthetic_bag


@pytest.fixture(scope='module')
def small_bag(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('inputs')
    return write_synthetic_bag(folder / 'bag', SceneConfig(num_frames=4, supersample=1))


def _files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / 'bad.tum').write_text('1.0 0 0 0\n')
    (tmp_path / 'weights.txt').write_text('not a checkpoint')
    (tmp_path / 'masks').mkdir()
    (tmp_path / 'a_file').write_text('')
    return {'dir': tmp_path}


@pytest.mark.parametrize('extra, message', [
    (['--gt-tum', '{dir}/missing.tum'], '--gt-tum {dir}/missing.tum: no such file'),
    (['--gt-tum', '{dir}/masks'], 'not a file'),
    (['--gt-tum', '{dir}/bad.tum'], 'not a TUM trajectory'),
    (['--gt-mask-dir', '{dir}/nowhere'], '--gt-mask-dir'),
    (['--gt-mask-dir', '{dir}/masks'], 'holds no .png masks'),
    (['--weights', '{dir}/missing.pt'], 'no such file'),
    (['--weights', '{dir}/weights.txt'], 'unknown checkpoint extension'),
    (['--window-size', '1'], '--window-size 1'),
    (['--stride', '8'], '--stride 8'),
    (['--max-frames', '0'], '--max-frames 0'),
    (['--network-width', '100'], 'multiple of 14'),
    (['--timeout', '0'], '--timeout'),
    (['--gt-pose-topic', '/no/such/pose'], '/no/such/pose'),
    (['--gt-mask-topic', '/ground_truth/pose'], 'expected one of sensor_msgs/msg/Image'),
    (['--gt-pose-topic', '/ground_truth/pose'], None),  # exists: accepted
])
def test_bad_options_exit_2_before_processing(small_bag, tmp_path, capsys, extra, message):
    values = _files(tmp_path)
    out = tmp_path / 'out'
    args = [str(small_bag), '--out', str(out), '--quiet', '--network-width', '70',
            '--window-size', '4', '--stride', '2'] + [a.format(**values) for a in extra]
    code = cli_main(args)
    error = capsys.readouterr().err
    if message is None:
        assert code == 0, error
        return
    assert code == 2, error
    assert message.format(**values) in error
    assert not (out / 'metrics.json').exists() and not (out / 'masks').exists()


def test_missing_bag_and_out_that_is_a_file_exit_2(small_bag, tmp_path, capsys):
    assert cli_main([str(tmp_path / 'nobag'), '--out', str(tmp_path / 'o')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    (tmp_path / 'file').write_text('')
    assert cli_main([str(small_bag), '--out', str(tmp_path / 'file')]) == 2
    assert 'not a directory' in capsys.readouterr().err
