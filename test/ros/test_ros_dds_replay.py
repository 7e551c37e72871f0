# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A synthetic bag replayed through the node over DDS on sim time: nothing lost, stamps kept."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('rclpy')

from test_ros_node import FAST_WINDOWS  # noqa: E402
from waiting import load_stretch  # noqa: E402

from vggt4d_ros.replay.bag import BagReader  # noqa: E402
from vggt4d_ros.replay.synthetic import SceneConfig  # noqa: E402
from vggt4d_ros.replay.synthetic import write_synthetic_bag  # noqa: E402
from vggt4d_ros.tools.dds_replay import replay_bag_through_node  # noqa: E402
from vggt4d_ros.tools.dds_replay import write_result  # noqa: E402


def test_bag_replayed_through_node_keeps_every_frame(ros_context, tmp_path, monkeypatch):
    here = Path(__file__).resolve().parent
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join([str(here), str(here.parents[1])]))
    bag = write_synthetic_bag(tmp_path / 'scene', SceneConfig(num_frames=9))
    with BagReader(bag) as reader:
        frames = list(reader.images(reader.pick_image_topic(None)))
    params = {**FAST_WINDOWS, 'backend_factory': 'fake_backends:make_plane',
              'warmup_height': 120, 'warmup_width': 160}
    result = replay_bag_through_node(bag, params=params, timeout_s=60.0 * load_stretch(),
                                     max_in_flight=4,
                                     log_path=tmp_path / 'node.log')
    stamps = [frame.stamp_ns for frame in frames]
    assert result.frames_sent == 9
    # 9 frames, windows of 4 advancing by 2: the 9th only comes out of the flush at the end.
    assert list(result.masks) == stamps, (tmp_path / 'node.log').read_text()
    assert all(mask.shape == frames[0].rgb.shape[:2] for mask in result.masks.values())
    assert sorted(result.poses) == stamps
    assert result.static_map is not None and len(result.static_map[0]) > 0
    assert result.diagnostics['dropped_total'] == '0'
    # Sim time: the driver published the bag stamps on /clock and the node's ROS clock (the
    # /diagnostics header stamp) followed them; wall time (2026+) is years past the bag (2023).
    assert result.clock_ns == stamps[-1]
    assert result.node_clock_ns is not None and stamps[0] <= result.node_clock_ns <= stamps[-1]

    write_result(result, tmp_path / 'out')
    assert len(list((tmp_path / 'out' / 'masks').glob('*.png'))) == 9
    lines = (tmp_path / 'out' / 'trajectory.tum').read_text().splitlines()
    assert len(lines) == 9 and all(len(line.split()) == 8 for line in lines)
    assert np.load(tmp_path / 'out' / 'static_map.npz')['points'].shape[1] == 3
