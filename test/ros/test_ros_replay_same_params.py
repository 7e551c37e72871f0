# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""One bag, one node parameter file, both front ends: identical masks and poses.

``vggt4d-replay --params FILE`` drives the engine offline; ``--mode dds`` runs the real node
over DDS with the same file (through the DDS replay driver). Both build their EngineConfig with
the same function, so the tiny model (seeded random weights, CPU) must give the same masks,
bit for bit, and the same poses (the node publishes them in the map frame: REP-103 body axes
over VGGT's optical axes; the TUM text keeps 9 decimals). A parameter file with a rig gives
the node and the replay tool the same EngineConfig, rig included (in-process node, read by
rcl's own parameter-file parser).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip('rclpy')

from vggt4d_ros.replay.cli import build_parser  # noqa: E402
from vggt4d_ros.replay.cli import config_from_args  # noqa: E402
from vggt4d_ros.replay.cli import main as cli_main  # noqa: E402
from vggt4d_ros.replay.outputs import read_mask_dir  # noqa: E402
from vggt4d_ros.replay.outputs import read_tum  # noqa: E402
from vggt4d_ros.replay.synthetic import SceneConfig  # noqa: E402
from vggt4d_ros.replay.synthetic import write_synthetic_bag  # noqa: E402
from vggt4d_ros.ros.frames import homogeneous  # noqa: E402
from vggt4d_ros.ros.frames import R_BODY_FROM_OPTICAL  # noqa: E402
from vggt4d_ros.replay.runner import engine_config  # noqa: E402
from vggt4d_ros.runtime.parameters import engine_config_from_parameters  # noqa: E402
from vggt4d_ros.runtime.parameters import load_parameter_file  # noqa: E402

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


#: A two-camera rig as a user writes it into the node's parameter file.
RIG = {'image_topics': ['/front/image_raw', '/left/image_raw'], 'camera_names': ['front', 'left'],
       'camera_info_topics': ['/front/camera_info', '/left/camera_info'],
       'rig_extrinsics': [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5,
                          0.0, 0.06, 0.0, -0.5, 0.5, -0.5, 0.5],
       'rig_slop_s': 0.02, 'rig_queue_size': 4, 'rig_sync': 'builtin'}


def _node_engine_config(params: Path):
    """EngineConfig the node builds at configure from ``params`` (rcl parses the file)."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from vggt4d_ros.ros.node import Vggt4dNode

    node = Vggt4dNode(cli_args=['--ros-args', '--params-file', str(params)])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, node.last_error
        return node.engine_config
    finally:
        node.destroy_node()


def _replay_engine_config(params: Path, *flags: str):
    """EngineConfig ``vggt4d-replay BAG --params FILE [flags]`` runs (before opening the bag)."""
    args = build_parser().parse_args(['bag', '--out', 'out', '--params', str(params), *flags])
    return engine_config(config_from_args(args))


def test_a_parameter_file_with_a_rig_gives_the_node_and_replay_one_engine_config(
        ros_context, tmp_path, monkeypatch):
    monkeypatch.delenv('VGGT4D_WEIGHTS', raising=False)
    tree = yaml.safe_load((ROOT / 'config' / 'vggt4d.yaml').read_text())
    params = tree['/**']['ros__parameters']
    params.update({'mode': 'replay', 'model_config': 'tiny', **RIG})
    path = tmp_path / 'rig.yaml'
    path.write_text(yaml.safe_dump({'vggt4d': {'ros__parameters': params}}))

    node = _node_engine_config(path)
    offline = _replay_engine_config(path)
    assert node == offline
    assert node.rig.image_topics == RIG['image_topics'] and node.rig.rig_sync == 'builtin'
    np.testing.assert_array_equal(node.rig.setup().base_from_camera,
                                  offline.rig.setup().base_from_camera)
    assert node.rig.setup().base_from_camera[1][1, 3] == pytest.approx(0.06)
    # The command-line flags override the file, as every other flag does.
    flags = _replay_engine_config(path, '--image-topics', '/a/image_raw', '/b/image_raw',
                                  '--rig-slop', '0.005')
    assert flags.rig.image_topics == ['/a/image_raw', '/b/image_raw']
    assert flags.rig.rig_slop_s == 0.005 and flags.rig.camera_names == ['front', 'left']
    # The shipped file (arrays written as []) is one camera in both front ends.
    shipped = ROOT / 'config' / 'vggt4d.yaml'
    node = _node_engine_config(shipped)
    assert not node.rig.enabled and node.rig == offline.rig.__class__()
    assert replace(node, window=replace(node.window, mode='replay')) == (
        engine_config_from_parameters({**load_parameter_file(shipped), 'mode': 'replay'}))
