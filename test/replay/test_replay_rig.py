# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Rig replay: the synthetic two-camera bag through the engine with an exact rig backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthetic_windows import exact_window
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.cli import main as replay_main
from vggt4d_ros.replay.outputs import PLANNER_FRAME
from vggt4d_ros.replay.outputs import PLANNER_TOPICS
from vggt4d_ros.replay.outputs import read_tum
from vggt4d_ros.replay.rig_runner import run_rig_replay
from vggt4d_ros.replay.runner import ReplayConfig
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticScene
from vggt4d_ros.replay.synthetic_rig import rig_cameras
from vggt4d_ros.replay.synthetic_rig import rig_extrinsics
from vggt4d_ros.replay.synthetic_rig import rig_topics
from vggt4d_ros.replay.synthetic_rig import write_synthetic_rig_bag
from vggt4d_ros.runtime.backend import LoadedBackend

SCENE = SceneConfig(num_frames=8, width=126, height=98, supersample=1)


class _ExactRigBackend:
    """The synthetic rig's exact answer per window, in window frame 0 at an arbitrary scale."""

    def __init__(self, config: SceneConfig, layout: str) -> None:
        self.config = config
        self.scene = SyntheticScene(config)
        self.cameras = list(rig_cameras(layout).values())
        self.layouts = []

    def run(self, frames, stamps_ns, layout=None):
        self.layouts.append(layout)
        period = 1e9 / self.config.fps
        views = [self.scene.render(int(round((s - self.config.start_ns) / period)),
                                   self.cameras[v])
                 for s, v in zip(stamps_ns, layout.view_of_frame)]
        return exact_window(views, stamps_ns, self.config, 0.7, layout)


@pytest.fixture(scope='module', params=['stereo', 'front_side'])
def rig_bag(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / 'bag'
    return request.param, write_synthetic_rig_bag(path, SCENE, request.param)


def test_synthetic_rig_bag_has_per_camera_truth(rig_bag):
    layout, bag = rig_bag
    names = list(rig_cameras(layout))
    with BagReader(bag) as reader:
        topics = reader.topics()
        for name in names:
            for topic in rig_topics(name).values():
                assert reader.message_count(topic) == SCENE.num_frames, topic
        _, left = reader.poses(rig_topics(names[0])['pose'])
        _, right = reader.poses(rig_topics(names[1])['pose'])
        masks = [dict(reader.mono_images(rig_topics(n)['mask'])) for n in names]
        assert '/tf_static' in topics
    relative = np.linalg.inv(left[0]) @ right[0]
    np.testing.assert_allclose(relative, rig_cameras(layout)[names[1]], atol=1e-9)
    # The second camera sees something else: its truth is not the reference camera's.
    assert any(not np.array_equal(masks[0][s], masks[1][s]) for s in masks[0])


def test_rig_replay_scores_every_camera_and_writes_the_rig_trajectory(rig_bag, tmp_path):
    layout, bag = rig_bag
    names = list(rig_cameras(layout))
    backend = _ExactRigBackend(SCENE, layout)
    loaded = LoadedBackend(backend, torch.device('cpu'), torch.float32, 'exact rig')
    topics = [rig_topics(n)['image'] for n in names]
    config = ReplayConfig(bag=bag, out_dir=tmp_path / 'out', window_size=4, stride=2,
                          quiet=True, samples=2, image_topics=topics, camera_names=names)
    summary = run_rig_replay(config, loaded)
    assert summary.frames_in == summary.frames_out == 2 * SCENE.num_frames
    assert all(window.num_views == 2 and window.num_steps == 2 for window in backend.layouts)
    metrics = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert metrics['extrinsics_known'] and metrics['rig']['groups'] == SCENE.num_frames
    assert metrics['rig']['incomplete'] == 0
    for name in names:
        scores = metrics['cameras_out'][name]
        assert scores['frames_out'] == SCENE.num_frames
        assert scores['masks']['j_mean'] == pytest.approx(1.0)
        assert scores['trajectory']['ate_rmse'] < 1e-3
        assert (tmp_path / 'out' / name / 'trajectory.tum').exists()
    # The rig trajectory is base_link: the reference camera's pose through its mount.
    stamps, poses = read_tum(tmp_path / 'out' / 'rig_trajectory.tum')
    assert len(stamps) == SCENE.num_frames
    _, camera = read_tum(tmp_path / 'out' / names[0] / 'trajectory.tum')
    mount = rig_extrinsics(layout)[0]
    np.testing.assert_allclose(poses, camera @ np.linalg.inv(mount), atol=1e-5)
    report = summary.report.read_text()
    assert f'camera {names[1]}' in report and 'J 1.000' in report


def test_cli_runs_a_rig_replay(rig_bag, tmp_path, monkeypatch, capsys):
    layout, bag = rig_bag
    if layout != 'stereo':
        pytest.skip('one CLI run is enough')
    import vggt4d_ros.replay.runner as runner

    def exact(config, pipeline):
        return LoadedBackend(_ExactRigBackend(SCENE, layout), torch.device('cpu'),
                             torch.float32, 'exact rig')

    monkeypatch.setattr(runner, 'build_backend', exact)  # replay_backend builds it
    out = tmp_path / 'cli'
    code = replay_main([str(bag), '--out', str(out), '--image-topics',
                        '/rig/left/image_raw', '/rig/right/image_raw', '--window-size', '4',
                        '--stride', '2', '--quiet'])
    assert code == 0, capsys.readouterr()
    assert json.loads((out / 'metrics.json').read_text())['cameras'] == ['left', 'right']
    assert replay_main([str(bag), '--out', str(out), '--image-topics', '/rig/left/image_raw',
                        '/absent', '--quiet']) == 2


def test_cli_reads_the_rig_from_the_parameter_file(rig_bag, tmp_path, monkeypatch, capsys):
    """The node's rig parameters in --params make a rig replay; rig_extrinsics beat the bag's."""
    layout, bag = rig_bag
    if layout != 'stereo':
        pytest.skip('one CLI run is enough')
    import vggt4d_ros.replay.runner as runner
    from vggt4d_ros.runtime.parameters import write_parameter_file

    monkeypatch.setattr(runner, 'build_backend', lambda config, pipeline: LoadedBackend(
        _ExactRigBackend(SCENE, layout), torch.device('cpu'), torch.float32, 'exact rig'))
    # Both cameras at base_link's origin, unrotated (the bag's /tf_static says otherwise).
    params = write_parameter_file({
        'image_topics': ['/rig/left/image_raw', '/rig/right/image_raw'],
        'camera_names': ['one', 'two'], 'window.window_size': 4, 'window.stride': 2,
        'rig_extrinsics': [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0] * 2}, tmp_path / 'rig.yaml')
    out = tmp_path / 'cli'
    assert replay_main([str(bag), '--out', str(out), '--params', str(params), '--quiet']) == 0, \
        capsys.readouterr()
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['cameras'] == ['one', 'two'] and metrics['rig']['groups'] == SCENE.num_frames
    _, rig_poses = read_tum(out / 'rig_trajectory.tum')
    _, camera = read_tum(out / 'one' / 'trajectory.tum')
    np.testing.assert_allclose(rig_poses, camera, atol=1e-6)  # the identity mount
    # One camera topic with a rig, or the rig over DDS: refused before anything runs.
    assert replay_main([str(bag), '--out', str(out), '--params', str(params),
                        '--image-topic', '/rig/left/image_raw', '--quiet']) == 2
    assert replay_main([str(bag), '--out', str(out), '--params', str(params), '--mode', 'dds',
                        '--quiet']) == 2
    assert 'offline only' in capsys.readouterr().err


def test_rig_replay_writes_the_planner_outputs_once_per_step(tmp_path):
    bag = write_synthetic_rig_bag(tmp_path / 'bag', SCENE, 'stereo')
    names = list(rig_cameras('stereo'))
    loaded = LoadedBackend(_ExactRigBackend(SCENE, 'stereo'), torch.device('cpu'),
                           torch.float32, 'exact rig')
    config = ReplayConfig(bag=bag, out_dir=tmp_path / 'out', window_size=4, stride=2,
                          quiet=True, samples=2, perception=True,
                          image_topics=[rig_topics(n)['image'] for n in names],
                          camera_names=names)
    summary = run_rig_replay(config, loaded)
    perception = summary.metrics['perception']
    assert perception['steps'] == SCENE.num_frames and perception['frames'] == 2 * perception[
        'steps'] and perception['skipped'] == 0
    steps, _ = read_tum(tmp_path / 'out' / 'rig_trajectory.tum')
    with BagReader(tmp_path / 'out' / names[0] / 'output_bag') as reader:
        clouds = [msg for _, msg in reader.messages(PLANNER_TOPICS['dynamic_cloud'])]
        detections = [msg for _, msg in reader.messages(PLANNER_TOPICS['detections'])]
        assert reader.message_count(PLANNER_TOPICS['static']) == summary.metrics['windows']
    # One cloud per rig step (both cameras' points), stamped with the step.
    assert [m.stamp_ns_of(c.header) for c in clouds] == [int(s) for s in steps]
    assert all(c.header.frame_id == PLANNER_FRAME for c in clouds)
    assert {m.stamp_ns_of(d.header) for d in detections} <= {int(s) for s in steps}
    with BagReader(tmp_path / 'out' / names[1] / 'output_bag') as reader:
        assert PLANNER_TOPICS['dynamic_cloud'] not in reader.topics()
