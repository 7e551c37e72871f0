# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""End-to-end offline replay: outputs, report, and clean failures that keep partial results."""

from __future__ import annotations

from dataclasses import replace
import json
from pathlib import Path
import struct

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer
import torch

from synthetic_windows import exact_window

from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay.cli import main as cli_main
from vggt4d_ros.replay.errors import BagError
from vggt4d_ros.replay.outputs import OUTPUT_TOPICS
from vggt4d_ros.replay.outputs import read_tum
from vggt4d_ros.replay.outputs import tum_line
from vggt4d_ros.replay.runner import ReplayConfig
from vggt4d_ros.replay.runner import run_replay
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticScene
from vggt4d_ros.replay.synthetic import write_synthetic_bag
from vggt4d_ros.runtime.backend import LoadedBackend

SCENE = SceneConfig(num_frames=6, supersample=1)


@pytest.fixture(scope='module')
def scene_bag(tmp_path_factory) -> Path:
    return write_synthetic_bag(tmp_path_factory.mktemp('scene') / 'bag', SCENE)


def test_tiny_model_replay_writes_every_output(scene_bag, tmp_path):
    out = tmp_path / 'out'
    config = ReplayConfig(bag=scene_bag, out_dir=out, weights='', device='cpu', window_size=4,
                          stride=2, refine=False, network_width=126, quiet=True)
    summary = run_replay(config)
    stamps = [SCENE.stamp_ns(i) for i in range(SCENE.num_frames)]
    assert summary.frames_in == summary.frames_out == SCENE.num_frames
    # Masks: one PNG per frame, named by the source stamp, camera resolution.
    pngs = sorted(int(p.stem) for p in (out / 'masks').glob('*.png'))
    assert pngs == stamps
    tum_stamps, tum_poses = read_tum(out / 'trajectory.tum')
    assert list(tum_stamps) == stamps and np.isfinite(tum_poses).all()
    assert (out / 'static_map.ply').read_bytes().startswith(b'ply\n')
    with BagReader(out / 'output_bag') as bag:
        topics = bag.topics()
        assert topics[OUTPUT_TOPICS['tf']] == m.TF_MESSAGE
        assert topics[OUTPUT_TOPICS['map']] == m.POINT_CLOUD2
        masks = list(bag.mono_images(OUTPUT_TOPICS['mask']))
        assert [s for s, _ in masks] == stamps
        assert all(mask.shape == (SCENE.height, SCENE.width) for _, mask in masks)
        assert set(np.unique(np.concatenate([mk.ravel() for _, mk in masks]))) <= {0, 255}
        tf_stamps, _ = bag.poses(OUTPUT_TOPICS['tf'])
        assert list(tf_stamps) == stamps
        assert bag.message_count(OUTPUT_TOPICS['path']) >= 1
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics['random_weights'] and 'RANDOM' in metrics['warning']
    assert metrics['frames_out'] == SCENE.num_frames and metrics['engine']['dropped'] == 0
    assert metrics['trajectory']['matched'] == SCENE.num_frames
    assert np.isfinite(metrics['trajectory']['ate_rmse'])
    assert 0.0 <= metrics['masks']['j_mean'] <= 1.0 and metrics['masks']['frames'] == 6
    assert {'pass1', 'pass2', 'engine.backend'} <= set(metrics['timings'])
    report = summary.report.read_text()
    assert 'RANDOM weights' in report
    for name in ('trajectory.png', 'trajectory_error.png', 'mask_scores.png',
                 'mask_overlays.png', 'timings.png'):
        assert f']({name})' in report
        assert (summary.report.parent / name).stat().st_size > 1000


def _corrupt_last_chunk(bag: Path) -> None:
    """Break the first record inside the last mcap chunk (the summary stays readable)."""
    path = next(bag.glob('*.mcap'))
    data = bytearray(path.read_bytes())
    position, chunks = 8, []
    while position < len(data) - 8:
        opcode = data[position]
        length = struct.unpack('<Q', data[position + 1:position + 9])[0]
        if opcode == 0x06:
            chunks.append(position)
        if opcode == 0x02:
            break
        position += 9 + length
    assert len(chunks) >= 2, 'the test bag must span several chunks'
    name = chunks[-1] + 9 + 28  # after start/end time, size and crc: the compression name
    name_length = struct.unpack('<I', data[name:name + 4])[0]
    record = name + 4 + name_length + 8
    data[record:record + 9] = b'\x05' + b'\xff' * 8
    path.write_bytes(bytes(data))


def test_corrupt_bag_fails_cleanly_and_keeps_partial_outputs(tmp_path):
    bag = write_synthetic_bag(tmp_path / 'bag', SceneConfig(num_frames=12, supersample=1))
    _corrupt_last_chunk(bag)
    oracle = OracleBackend(start_ns=SCENE.start_ns)
    backend = LoadedBackend(oracle, torch.device('cpu'), torch.float32, 'oracle')
    out = tmp_path / 'out'
    config = ReplayConfig(bag=bag, out_dir=out, window_size=4, stride=2, quiet=True)
    with pytest.raises(BagError, match=f'{bag}.*corrupt or truncated'):
        run_replay(config, backend)
    written = sorted((out / 'masks').glob('*.png'))
    assert 4 <= len(written) < 12
    assert len(read_tum(out / 'trajectory.tum')[0]) == len(written)
    with BagReader(out / 'output_bag') as output:  # closed properly: metadata is there
        assert output.message_count(OUTPUT_TOPICS['mask']) == len(written)
    failure = json.loads((out / 'metrics.json').read_text())
    assert 'corrupt' in failure['error'] and failure['frames_out'] == len(written)


def test_cli_missing_topic_exits_non_zero(scene_bag, tmp_path, capsys):
    code = cli_main([str(scene_bag), '--out', str(tmp_path / 'o'), '--image-topic', '/cam/x',
                     '--quiet'])
    assert code == 2
    error = capsys.readouterr().err
    assert '/cam/x' in error and str(scene_bag) in error


def test_cli_empty_bag_exits_non_zero(tmp_path, capsys):
    bag = tmp_path / 'empty'
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    writer.add_connection('/camera/image_raw', m.IMAGE, typestore=m.TYPESTORE)
    writer.close()
    assert cli_main([str(bag), '--out', str(tmp_path / 'o'), '--quiet']) == 2
    assert 'empty' in capsys.readouterr().err


def test_cli_truncated_bag_exits_non_zero(scene_bag, tmp_path, capsys):
    bag = tmp_path / 'cut'
    bag.mkdir()
    for item in scene_bag.iterdir():
        data = item.read_bytes()
        (bag / item.name).write_bytes(data[:len(data) // 3] if item.suffix == '.mcap' else data)
    assert cli_main([str(bag), '--out', str(tmp_path / 'o'), '--quiet']) == 2
    assert str(bag) in capsys.readouterr().err


class _GroundTruthBackend:
    """Stand-in for VGGT4D returning the synthetic scene's exact answer per window.

    Poses are expressed as VGGT does: in the window's frame-0 camera, with an arbitrary
    per-window scale. The network resolution equals the camera's (identity resize).
    """

    def __init__(self, scene_config: SceneConfig) -> None:
        self.config = scene_config
        self.scene = SyntheticScene(scene_config)

    def run(self, frames, stamps_ns):
        period = 1e9 / self.config.fps
        views = [self.scene.render(int(round((s - self.config.start_ns) / period)))
                 for s in stamps_ns]
        scale = 0.5 + 0.1 * len(stamps_ns)  # arbitrary, differs from the ground truth's
        return exact_window(views, stamps_ns, self.config, scale)


@pytest.mark.parametrize('truth_source', ['bag', 'files'])
def test_exact_backend_gives_zero_error_through_the_whole_chain(tmp_path, truth_source):
    """Known answer: exact poses and masks in, ATE ~ 0 and J = F = 1 out of the replay.

    Ground truth comes from the bag's topics, or from a TUM file and a folder of mask PNGs
    numbered in frame order (with the sqlite3 output storage).
    """
    scene = SceneConfig(num_frames=10, width=154, height=112, supersample=1)
    bag = write_synthetic_bag(tmp_path / 'bag', scene)
    backend = LoadedBackend(_GroundTruthBackend(scene), torch.device('cpu'), torch.float32,
                            'exact')
    config = ReplayConfig(bag=bag, out_dir=tmp_path / 'out', window_size=4, stride=2,
                          quiet=True)
    if truth_source == 'files':
        frames = list(SyntheticScene(scene).frames())
        tum = tmp_path / 'truth.tum'
        tum.write_text(''.join(tum_line(f.stamp_ns, f.world_from_camera) + '\n'
                               for f in frames[:8]))  # 8 poses: shows the file is used
        mask_dir = tmp_path / 'truth_masks'
        mask_dir.mkdir()
        for index, frame in enumerate(frames):
            cv2.imwrite(str(mask_dir / f'{index:05d}.png'), frame.dynamic_mask)
        config = replace(config, gt_pose_topic='/absent', gt_mask_topic='/absent',
                         gt_tum=tum, gt_mask_dir=mask_dir, storage='sqlite3')
    summary = run_replay(config, backend)
    trajectory, masks = summary.metrics['trajectory'], summary.metrics['masks']
    assert trajectory['matched'] == (10 if truth_source == 'bag' else 8)
    assert trajectory['ate_rmse'] < 1e-3 and trajectory['rpe_rot_deg_rmse'] < 0.05
    assert trajectory['scale'] == pytest.approx(1 / 0.9, rel=1e-4)  # the backend's 0.5+0.1*4
    assert masks['frames'] == 10
    assert masks['j_mean'] == pytest.approx(1.0) and masks['f_mean'] == pytest.approx(1.0)
    assert 'RANDOM' not in summary.report.read_text()
