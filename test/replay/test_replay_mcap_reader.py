# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Bags the project writes, decoded by an independent reader (mcap + mcap-ros2-support).

The project writes and reads bags with ``rosbags``; a bug shared by its serialiser and its
deserialiser (a wrong field order, a wrong schema text) would round-trip silently. Here the
bags are decoded a second time by the MCAP project's own ROS 2 CDR decoder, which knows
nothing but the schema text stored in the file, and every field of every message must match
what the project's reader returns.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

mcap_ros2_reader = pytest.importorskip('mcap_ros2.reader')

from vggt4d_ros.geometry.rigid import pose_from_translation_quaternion  # noqa: E402
from vggt4d_ros.replay.bag import BagReader  # noqa: E402
from vggt4d_ros.replay.cli import main as cli_main  # noqa: E402
from vggt4d_ros.replay.outputs import OUTPUT_TOPICS  # noqa: E402
from vggt4d_ros.replay.outputs import PLANNER_TOPICS  # noqa: E402
from vggt4d_ros.replay.synthetic import SceneConfig  # noqa: E402
from vggt4d_ros.replay.synthetic import write_synthetic_bag  # noqa: E402

SCENE = SceneConfig(num_frames=6, width=96, height=64, supersample=1)


@pytest.fixture(scope='module')
def written_bags(tmp_path_factory) -> dict[str, Path]:
    """The synthetic input bag and the output bag of an offline replay of it (tiny model)."""
    base = tmp_path_factory.mktemp('mcap_bags')
    source = write_synthetic_bag(base / 'scene', SCENE, 'mcap')
    out = base / 'replay'
    code = cli_main([str(source), '--out', str(out), '--window-size', '4', '--stride', '2',
                     '--device', 'cpu', '--no-refine', '--network-width', '126', '--quiet',
                     '--perception'])
    assert code == 0
    return {'scene': source, 'replay_output': out / 'output_bag'}


def independent_messages(bag: Path) -> dict[str, list[tuple[int, str, Any]]]:
    """Topic -> [(log time ns, schema name, decoded message)] of the bag's .mcap files."""
    files = sorted(bag.glob('*.mcap'))
    assert files, f'no .mcap file in {bag}'
    decoded: dict[str, list[tuple[int, str, Any]]] = {}
    for path in files:
        for item in mcap_ros2_reader.read_ros2_messages(str(path)):
            decoded.setdefault(item.channel.topic, []).append(
                (item.log_time_ns, item.schema.name, item.ros_msg))
    return decoded


def assert_same_message(ours: Any, theirs: Any, where: str) -> None:
    """Every field of the ``rosbags`` message ``ours`` equals the field in ``theirs``."""
    if dataclasses.is_dataclass(ours):
        # rosbags keeps a message's constants as fields too (upper case), the decoder does not.
        names = [f.name for f in dataclasses.fields(ours)
                 if f.name != '__msgtype__' and not f.name.isupper()]
        assert names == list(theirs.__slots__), where
        for name in names:
            assert_same_message(getattr(ours, name), getattr(theirs, name), f'{where}.{name}')
    elif isinstance(ours, np.ndarray):
        theirs_array = (np.frombuffer(theirs, np.uint8) if isinstance(theirs, (bytes, bytearray))
                        else np.asarray(theirs, dtype=ours.dtype))
        assert theirs_array.shape == ours.shape, where
        np.testing.assert_array_equal(theirs_array, ours, err_msg=where)
    elif isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs), where
        for index, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_message(a, b, f'{where}[{index}]')
    elif isinstance(ours, float) and np.isnan(ours):
        assert np.isnan(theirs), where
    else:
        assert ours == theirs, f'{where}: {ours!r} != {theirs!r}'


def test_the_bags_hold_the_planner_topics(written_bags):
    """The comparison below covers the planner outputs and the ground-truth objects."""
    assert set(PLANNER_TOPICS.values()) <= set(independent_messages(
        written_bags['replay_output']))
    assert '/ground_truth/objects' in independent_messages(written_bags['scene'])


@pytest.mark.parametrize('which', ['scene', 'replay_output'])
def test_independent_decoder_agrees_with_the_project_reader(written_bags, which):
    bag = written_bags[which]
    theirs = independent_messages(bag)
    with BagReader(bag) as reader:
        topics = reader.topics()
        assert set(theirs) == set(topics)
        for topic, msgtype in topics.items():
            ours = list(reader.messages(topic))
            assert len(ours) == len(theirs[topic]) > 0, topic
            for index, ((bag_time, message), (log_time, schema, decoded)) in enumerate(
                    zip(ours, theirs[topic])):
                assert schema == msgtype.replace('/msg/', '/') or schema == msgtype, topic
                assert log_time == bag_time, topic
                assert_same_message(message, decoded, f'{topic}[{index}]')


def test_independent_decoder_reads_the_replay_outputs(written_bags):
    """The masks, poses and map read back independently are those the replay produced."""
    bag = written_bags['replay_output']
    theirs = independent_messages(bag)
    stamps = [SCENE.stamp_ns(i) for i in range(SCENE.num_frames)]
    masks = theirs[OUTPUT_TOPICS['mask']]
    assert [log_time for log_time, _, _ in masks] == stamps
    with BagReader(bag) as reader:
        ours_masks = dict(reader.mono_images(OUTPUT_TOPICS['mask']))
        tf_stamps, tf_poses = reader.poses(OUTPUT_TOPICS['tf'])
    for _, _, mask in masks:
        assert (mask.height, mask.width, mask.encoding) == (SCENE.height, SCENE.width, 'mono8')
        pixels = np.frombuffer(mask.data, np.uint8).reshape(mask.height, mask.step)
        stamp = mask.header.stamp.sec * 1_000_000_000 + mask.header.stamp.nanosec
        np.testing.assert_array_equal(pixels[:, :mask.width], ours_masks[stamp])
        assert set(np.unique(pixels)) <= {0, 255}
    transforms = [t for _, _, message in theirs[OUTPUT_TOPICS['tf']] for t in message.transforms]
    assert [t.header.stamp.sec * 1_000_000_000 + t.header.stamp.nanosec
            for t in transforms] == list(tf_stamps) == stamps
    for transform, pose in zip(transforms, tf_poses):
        assert transform.header.frame_id == 'map'
        t, q = transform.transform.translation, transform.transform.rotation
        np.testing.assert_allclose(
            pose_from_translation_quaternion([t.x, t.y, t.z], [q.x, q.y, q.z, q.w]), pose,
            atol=1e-12)
    cloud = theirs[OUTPUT_TOPICS['map']][-1][2]
    assert [f.name for f in cloud.fields] == ['x', 'y', 'z', 'rgb'] and cloud.point_step == 16
    points = np.frombuffer(cloud.data, np.float32).reshape(-1, 4)[:, :3]
    assert len(points) == cloud.width and np.isfinite(points).all()
