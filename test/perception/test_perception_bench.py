# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""tools/bench_perception.py: the table it prints and its stage split over several passes."""

from __future__ import annotations

from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.perception.perception_tracker import STAGES
from vggt4d_ros.tools import bench_perception

_SMALL = ['--windows', '3', '--height', '60', '--width', '80']


def test_stage_split_is_the_median_of_passes_of_one_reset_tracker(monkeypatch):
    args = bench_perception._parse(_SMALL)
    outputs, scale = bench_perception._windows(args)
    config = bench_perception._settings(scale)['cloud + tracks (grids off)']
    calls = {'update': 0, 'reset': 0}
    update, reset = PerceptionTracker.update, PerceptionTracker.reset

    def counted_update(self, frames):
        calls['update'] += 1
        return update(self, frames)

    def counted_reset(self):
        calls['reset'] += 1
        reset(self)

    monkeypatch.setattr(PerceptionTracker, 'update', counted_update)
    monkeypatch.setattr(PerceptionTracker, 'reset', counted_reset)
    stages = bench_perception._stages(outputs, config, passes=3)
    assert calls == {'update': 3 * len(outputs), 'reset': 3}
    assert set(stages) == {'copy', *STAGES}
    assert stages['points'] > 0 and stages['tracker'] > 0 and stages['grid'] == 0.0


def test_main_prints_one_row_per_chosen_setting(capsys):
    assert bench_perception.main(_SMALL + ['--only', 'surface', '--split-passes', '2']) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith('| cloud + tracks, surface centre')]
    assert len(rows) == 1
    cells = [cell.strip() for cell in rows[0].strip('|').split('|')]
    assert len(cells) == 6 + len(STAGES) + 1  # label, 4 times, copy, the stages, tracks
    assert all(float(cell) >= 0 for cell in cells[1:4] + cells[5:])
    assert int(cells[-1]) >= 1  # the scene's objects were tracked
