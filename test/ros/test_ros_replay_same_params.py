# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""One bag, one node parameter file, both front ends: identical masks and poses.

``vggt4d-replay --params FILE`` drives the engine offline; ``--mode dds`` runs the real node
over DDS with the same file (through the DDS replay driver). Both build their EngineConfig with
the same function, so the tiny model (seeded random weights, CPU) must give the same masks,
bit for bit, and the same poses (the node publishes them in the map frame: REP-103 body axes
over VGGT's optical axes; the TUM text keeps 9 decimals).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip('rclpy')

from vggt4d_ros.replay.cli import main as cli_main  # noqa: E402
from vggt4d_ros.replay.outputs import read_mask_dir  # noqa: E402
from vggt4d_ros.replay.outputs import read_tum  # noqa: E402
from vggt4d_ros.replay.synthetic import SceneConfig  # noqa: E402
from vggt4d_ros.replay.synthetic import write_synthetic_bag  # noqa: E402
from vggt4d_ros.ros.frames import homogeneous  # noqa: E402
from vggt4d_ros.ros.frames import R_BODY_FROM_OPTICAL  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / 'ci' / 'fastdds_ci_shm.xml'


def _parameter_file(tmp_path: Path) -> Path:
    """config/vggt4d.yaml as a user edits it for a CPU evaluation run (node name section)."""
    tree = yaml.safe_load((ROOT / 'config' / 'vggt4d.yaml').read_text())
    params = tree['/**']['ros__parameters']
    params.update({'model_config': 'tiny', 'allow_random_weights': True, 'random_seed': 3,
                   'device': 'cpu', 'network_width': 126})
    params['window'].update({'window_size': 4, 'stride': 2, 'min_parallax_px': 0.0,
                             'max_keyframe_interval_s': 0.0})
    path = tmp_path / 'evaluation.yaml'
    path.write_text(yaml.safe_dump({'vggt4d': {'ros__parameters': params}}))
    return path


def test_offline_and_node_over_dds_agree_with_one_parameter_file(tmp_path):
    scene = SceneConfig(num_frames=7, supersample=1)
    bag = write_synthetic_bag(tmp_path / 'bag', scene)
    params = _parameter_file(tmp_path)
    offline, dds = tmp_path / 'offline', tmp_path / 'dds'
    assert cli_main([str(bag), '--out', str(offline), '--params', str(params), '--quiet']) == 0
    code = cli_main([str(bag), '--out', str(dds), '--params', str(params), '--mode', 'dds',
                     '--timeout', '600', '--quiet', '--dds-profile', str(PROFILE)])
    assert code == 0, (dds / 'node.log').read_text() if (dds / 'node.log').exists() else ''

    stamps = [scene.stamp_ns(i) for i in range(scene.num_frames)]
    masks_offline = read_mask_dir(offline / 'masks')
    masks_dds = read_mask_dir(dds / 'masks')
    assert sorted(masks_offline) == sorted(masks_dds) == stamps
    for stamp in stamps:
        np.testing.assert_array_equal(masks_dds[stamp], masks_offline[stamp], err_msg=stamp)
    assert any(mask.any() for mask in masks_offline.values())  # not trivially equal

    stamps_offline, poses_offline = read_tum(offline / 'trajectory.tum')
    stamps_dds, poses_dds = read_tum(dds / 'trajectory.tum')
    assert list(stamps_offline) == list(stamps_dds) == stamps
    map_from_vggt = homogeneous(R_BODY_FROM_OPTICAL)
    np.testing.assert_allclose(poses_dds, map_from_vggt @ poses_offline, atol=1e-6)
    assert np.abs(poses_offline[-1][:3, 3] - poses_offline[0][:3, 3]).max() > 1e-3  # moved
