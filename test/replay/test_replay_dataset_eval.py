# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The whole ``vggt4d-eval`` / ``vggt4d-bag`` commands on tiny fixtures with stand-in backends.

The stand-in (``SequenceOracle``) answers every window with the ground truth as VGGT would
express it (own frame, random scale per window), so the known answers are: ATE 0 after the
Sim(3) alignment, J = F = 1 (or the hand-computed values of a shifted mask), zero
reconstruction error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import replay_dataset_fixtures as fx
import torch

from vggt4d_ros.replay import eval_runtime as rt
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay.dataset_eval import score_trajectory
from vggt4d_ros.replay.datasets import load_dataset
from vggt4d_ros.replay.datasets.base import FrameRef
from vggt4d_ros.replay.datasets.base import SequenceData
from vggt4d_ros.replay.datasets.testing import oracle_factory
from vggt4d_ros.replay.datasets.testing import SequenceOracle
from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.eval_cli import bag_main
from vggt4d_ros.replay.eval_cli import eval_main
from vggt4d_ros.replay.runner import ReplayConfig
from vggt4d_ros.replay.runner import run_replay
from vggt4d_ros.runtime.backend import LoadedBackend

REPO = Path(__file__).resolve().parents[2]


def _eval(dataset: str, root: Path, out: Path, params: Path, factory=oracle_factory,
          extra: tuple[str, ...] = ()) -> tuple[int, dict]:
    code = eval_main([dataset, str(root), '--params', str(params), '--out', str(out),
                      '--quiet', *extra], backend_factory=factory)
    return code, json.loads((out / 'metrics.json').read_text())


def test_davis_shifted_masks_give_the_hand_computed_j_and_f(tmp_path):
    """Every prediction is the truth moved 4 px right: J = 2/3, F = 0.475 (see the loader
    tests for the derivation), J-recall 1 (J > 0.5), F-recall 0."""
    fx.write_davis(tmp_path / 'davis', frames=6)
    params = fx.write_params(tmp_path / 'params.yaml')
    code, metrics = _eval('davis', tmp_path / 'davis', tmp_path / 'out', params,
                          factory=lambda s: SequenceOracle(s, mask_shift=(0, 4)))
    assert code == 0 and metrics['failed'] == [] and metrics['stand_in']
    mean = metrics['mean']['masks']
    assert mean['frames'] == 12
    assert mean['j_mean'] == pytest.approx(2 / 3) and mean['f_mean'] == pytest.approx(0.475)
    assert mean['j_recall'] == 1.0 and mean['f_recall'] == 0.0
    for record in metrics['sequences'].values():
        assert record['windows'] == 2 and record['window_size'] == 4
    report = (tmp_path / 'out' / 'report.md').read_text()
    assert 'STAND-IN BACKEND' in report and 'Easi3R' in report
    # The exact truth scores J = F = 1.
    code, metrics = _eval('davis', tmp_path / 'davis', tmp_path / 'exact', params)
    assert metrics['mean']['masks']['jf_mean'] == pytest.approx(1.0)


@pytest.mark.parametrize('dataset', ['vkitti', 'pointodyssey', 'tum', 'tum-bag', 'bonn',
                                     'dycheck'])
def test_exact_trajectories_give_zero_error(tmp_path, dataset):
    root = tmp_path / 'data'
    if dataset == 'vkitti':
        fx.write_vkitti(root, frames=8)
    elif dataset == 'pointodyssey':
        fx.write_pointodyssey(root, frames=10)
    elif dataset == 'tum':
        fx.write_tum_folder(root, 'rgbd_dataset_freiburg3_walking_xyz', frames=95)
    elif dataset == 'tum-bag':
        fx.write_tum_bag(root / 'rgbd_dataset_freiburg3_walking_static.bag', frames=95)
    elif dataset == 'bonn':
        fx.write_tum_folder(root, 'rgbd_bonn_balloon', frames=40)
    else:
        fx.write_dycheck(root, frames=40)
    code, metrics = _eval(dataset.split('-')[0], root, tmp_path / 'out',
                          fx.write_params(tmp_path / 'params.yaml'))
    assert code == 0, metrics['sequences']
    (record,) = metrics['sequences'].values()
    trajectory = record['trajectory']
    assert trajectory['matched'] == record['frames'] >= 4
    assert trajectory['ate_rmse'] < 1e-5 and trajectory['rpe_rot_deg_rmse'] < 1e-3
    assert trajectory['ate_rmse_se3'] > 1e-3  # the estimate's scale really was unknown
    if dataset == 'pointodyssey':  # the 500-frame single pass: one window of every frame
        assert record['long_window'] and record['window_size'] == 10 and record['windows'] == 1
    if dataset == 'dycheck':
        rec = record['reconstruction']
        assert rec['points'] == 4 * (24 * 32 - 4)  # every 2nd pixel, 4 invalid lidar pixels
        for key in ('accuracy', 'completeness', 'distance', 'distance_median'):
            assert rec[key] < 1e-5


def test_a_known_sim3_is_removed():
    """Estimate = s R (truth) + t: ATE 0 with the Sim(3) fit, scale 1/s; not with SE(3)."""
    frames = [FrameRef(1_000_000_000 + i * 100_000_000, lambda: fx.texture(0))
              for i in range(12)]
    sequence = SequenceData('vkitti', 'x', frames, ('trajectory',), poses=fx.trajectory(12))
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])
    scale, shift = 2.5, np.array([3.0, -1.0, 0.5])
    estimate = sequence.poses.copy()
    estimate[:, :3, :3] = rotation @ estimate[:, :3, :3]
    estimate[:, :3, 3] = scale * estimate[:, :3, 3] @ rotation.T + shift
    run = rt.SequenceRun([rt.FrameResult(f.stamp_ns, p, np.zeros(fx.HW, np.uint8))
                          for f, p in zip(sequence.frames, estimate)])
    result = score_trajectory(sequence, run)
    assert result['ate_rmse'] < 1e-9 and result['rpe_rot_deg_rmse'] < 1e-6
    assert result['scale'] == pytest.approx(1 / scale)
    assert result['ate_rmse_se3'] > 0.1


def test_weights_are_required(tmp_path, capsys):
    fx.write_davis(tmp_path / 'davis', frames=2)
    out = tmp_path / 'out'
    assert eval_main(['davis', str(tmp_path / 'davis'), '--out', str(out)]) == 2
    assert '--weights' in capsys.readouterr().err
    assert eval_main(['davis', str(tmp_path / 'davis'), '--out', str(out), '--weights',
                      str(tmp_path / 'absent.pt')]) == 2
    assert 'absent.pt does not exist' in capsys.readouterr().err
    with pytest.raises(ReplayError, match='Random weights are refused'):
        rt.build_backend(None, rt.engine_configs({}))


def test_failed_sequence_is_reported_and_the_rerun_resumes(tmp_path, capsys):
    fx.write_davis(tmp_path / 'davis', frames=4)
    params = fx.write_params(tmp_path / 'params.yaml')
    annotation = tmp_path / 'davis' / 'DAVIS' / 'Annotations' / '480p' / 'camel' / '00002.png'
    saved = annotation.read_bytes()
    annotation.unlink()
    calls = []

    def counting(sequence):
        calls.append(sequence.name)
        return SequenceOracle(sequence)

    code, metrics = _eval('davis', tmp_path / 'davis', tmp_path / 'out', params, counting)
    assert code == 3 and metrics['failed'] == ['camel']
    assert str(annotation) in metrics['sequences']['camel']['error']
    assert metrics['sequences']['bear']['masks']['j_mean'] == 1.0
    assert metrics['mean']['sequences'] == 1
    assert 'camel' in (tmp_path / 'out' / 'report.md').read_text()
    annotation.write_bytes(saved)
    calls.clear()
    code, metrics = _eval('davis', tmp_path / 'davis', tmp_path / 'out', params, counting)
    assert code == 0 and calls == ['camel']  # bear was kept from the first run
    assert metrics['mean']['masks']['frames'] == 8
    # Other settings do not reuse the results.
    calls.clear()
    _eval('davis', tmp_path / 'davis', tmp_path / 'out', params, counting,
          ('--window-size', '3', '--stride', '1'))
    assert calls == ['bear', 'camel']


def test_params_file_of_the_node_is_read():
    params = rt.read_params(REPO / 'config' / 'vggt4d.yaml')
    assert params['window.window_size'] == 8 and params['pipeline.refine_enabled'] is True
    settings = rt.engine_configs(params, window_size=6, stride=3)
    assert (settings.window.window_size, settings.window.stride) == (6, 3)
    assert settings.window.mode == 'replay' and settings.window.max_keyframe_interval_s == 0.0
    assert settings.mapper.pixel_stride == params['mapper.pixel_stride']
    long = rt.long_window(settings, 500)
    assert (long.window.window_size, long.window.stride) == (500, 250)
    assert rt.long_window(settings, 900).window.window_size == rt.MAX_WINDOW_SIZE
    with pytest.raises(ReplayError, match='does not exist'):
        rt.read_params('/nonexistent/params.yaml')
    with pytest.raises(ReplayError, match='pipeline.refine_enabled'):
        rt.engine_configs({'pipeline.refine_enabled': 'false'})


def test_bag_of_a_sequence_plays_through_the_replay_tool(tmp_path, capsys):
    truth = fx.write_davis(tmp_path / 'davis', frames=6)
    out = tmp_path / 'bear_bag'
    assert bag_main(['davis', str(tmp_path / 'davis'), 'bear', str(out)]) == 0
    with BagReader(out) as reader:
        frames = list(reader.images('/camera/image_raw'))
        masks = dict(reader.mono_images('/ground_truth/dynamic_mask'))
    assert len(frames) == 6 and frames[0].rgb.shape == (*fx.HW, 3)
    np.testing.assert_array_equal(masks[frames[3].stamp_ns] > 0, truth['bear'][3])
    sequence = load_dataset('davis', tmp_path / 'davis', ['bear'])[0]
    summary = run_replay(ReplayConfig(bag=out, out_dir=tmp_path / 'replay', window_size=4,
                                      stride=2, quiet=True),
                         LoadedBackend(SequenceOracle(sequence), torch.device('cpu'),
                                       torch.float32, 'oracle'))
    assert summary.metrics['masks']['frames'] == 6
    assert summary.metrics['masks']['jf_mean'] == pytest.approx(1.0)

    poses = fx.write_vkitti(tmp_path / 'vk', frames=5)
    assert bag_main(['vkitti', str(tmp_path / 'vk'), 'Scene01/clone',
                     str(tmp_path / 'vk_bag')]) == 0
    with BagReader(tmp_path / 'vk_bag') as reader:
        stamps, read = reader.poses('/ground_truth/pose')
        _, tf_poses = reader.poses('/tf')
        info = reader.camera_info('/camera/camera_info')
    np.testing.assert_allclose(read, poses, atol=1e-9)
    np.testing.assert_allclose(tf_poses, poses, atol=1e-9)
    assert list(info.k[:3]) == [60.0, 0.0, 31.5]
    assert bag_main(['vkitti', str(tmp_path / 'vk'), 'Scene09/clone',
                     str(tmp_path / 'x')]) == 2
    assert 'Scene09/clone' in capsys.readouterr().err


def test_real_pipeline_results_flow_through_the_depth_capture(tmp_path):
    """The tiny VGGT4D pipeline (random weights, as a stand-in) on DyCheck: real
    WindowResults (network resolution != camera resolution) reach the reconstruction metrics.
    The numbers are meaningless; the run must finish with finite values for every pixel."""
    from dataclasses import replace

    from vggt4d_ros.motion.pipeline import PipelineConfig
    from vggt4d_ros.runtime.backend import build_backend
    from vggt4d_ros.runtime.config import BackendConfig

    fx.write_dycheck(tmp_path / 'dy', frames=31)
    tiny = build_backend(BackendConfig(allow_random_weights=True, model_config='tiny',
                                       device='cpu', network_width=28),
                         replace(PipelineConfig(), refine_enabled=False))
    code, metrics = _eval('dycheck', tmp_path / 'dy', tmp_path / 'out',
                          fx.write_params(tmp_path / 'params.yaml', window_size=5, stride=2),
                          factory=lambda sequence: tiny.backend)
    assert code == 0, metrics['sequences']
    rec = metrics['sequences']['apple']['reconstruction']
    assert rec['points'] == 4 * (24 * 32 - 4)
    assert all(np.isfinite(rec[key]) for key in ('accuracy', 'completeness', 'distance'))
