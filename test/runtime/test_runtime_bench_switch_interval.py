# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""tools/bench_switch_interval: one row per interval, Python's interval left as found."""

from __future__ import annotations

import sys

from vggt4d_ros.tools import bench_switch_interval


def test_bench_prints_a_row_per_interval_and_leaves_python_s_interval(capsys):
    found = sys.getswitchinterval()
    assert bench_switch_interval.main(['--ops', '20', '--repeats', '2', '--size', '64',
                                       '--intervals', '1', '0.2']) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| ')]
    assert 'switch interval ms' in rows[0]
    assert [row.split('|')[1].strip() for row in rows[1:]] == ['1', '0.2']
    for row in rows[1:]:
        alone, together = (cell.strip() for cell in row.split('|')[2:4])
        assert all(float(v) >= 0 for v in [alone, *together.split(' / ')])
    assert sys.getswitchinterval() == found
