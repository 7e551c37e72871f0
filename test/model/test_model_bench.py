# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The benchmark tool runs end to end on CPU with the tiny config."""

from vggt4d_ros.tools import bench_model


def test_bench_prints_a_table(capsys) -> None:
    bench_model.main([
        '--config', 'tiny', '--device', 'cpu', '--frames', '2', '--height', '28',
        '--width', '42', '--weights-dtype', 'fp32', 'bf16', '--heads', 'camera,depth', 'none',
        '--vggt4d', '--warmup', '0', '--repeats', '1',
    ])
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith('| ')]
    assert table[0].startswith('| variant | frames | median_s')
    # 2 weight dtypes x (2 head sets + VGGT4D).
    assert len(table) == 1 + 6
    assert all(line.endswith('| ok |') for line in table[1:])
    assert any('VGGT4D 2 passes' in line for line in table)
