# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``vggt4d-replay --mode dds``: the real node (tiny model) over DDS delivers every frame."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip('rclpy')

from waiting import load_stretch  # noqa: E402

from vggt4d_ros.replay.cli import main as cli_main  # noqa: E402
from vggt4d_ros.replay.outputs import read_tum  # noqa: E402
from vggt4d_ros.replay.synthetic import SceneConfig  # noqa: E402
from vggt4d_ros.replay.synthetic import write_synthetic_bag  # noqa: E402

#: Shared-memory-only Fast DDS profile of the repository (nothing leaves the host).
PROFILE = Path(__file__).resolve().parents[2] / 'ci' / 'fastdds_ci_shm.xml'


def test_dds_mode_delivers_every_frame(tmp_path):
    scene = SceneConfig(num_frames=6, supersample=1)
    bag = write_synthetic_bag(tmp_path / 'bag', scene)
    out = tmp_path / 'out'
    # Network width 126: the tiny model's warm-up and windows take seconds, not minutes, on a
    # busy 2-core CPU; the node only subscribes after its warm-up.
    code = cli_main([str(bag), '--out', str(out), '--mode', 'dds', '--window-size', '4',
                     '--stride', '2', '--device', 'cpu', '--network-width', '126',
                     '--quiet', '--dds-profile', str(PROFILE),
                     '--timeout', str(max(600, 120 * load_stretch()))])
    log = (out / 'node.log').read_text() if (out / 'node.log').exists() else ''
    assert code == 0, log
    stamps = [scene.stamp_ns(i) for i in range(scene.num_frames)]
    assert sorted(int(p.stem) for p in (out / 'masks').glob('*.png')) == stamps
    assert list(read_tum(out / 'trajectory.tum')[0]) == stamps
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['mode'] == 'dds' and metrics['frames_missing'] == 0
    assert metrics['frames_out'] == scene.num_frames
    assert (out / 'report' / 'report.md').exists()
