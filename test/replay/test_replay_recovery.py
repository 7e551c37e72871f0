# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Output bags carry per-chunk CRCs; a damaged byte is detected and the rest recovered."""

from __future__ import annotations

from pathlib import Path

from mcap.reader import make_reader
import numpy as np
import pytest

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay.bag import BagWriter
from vggt4d_ros.replay.errors import BagError
from vggt4d_ros.replay.recovery import CHUNK_BYTES
from vggt4d_ros.replay.recovery import recover_mcap

FRAMES = 24
STEP_NS = 100_000_000


def _frame(index: int) -> np.ndarray:
    rng = np.random.default_rng(index)  # incompressible: each frame fills its own chunk
    return rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)


@pytest.fixture
def written_bag(tmp_path) -> Path:
    with BagWriter(tmp_path / 'bag', 'mcap') as writer:
        for index in range(FRAMES):
            stamp = (index + 1) * STEP_NS
            writer.write('/camera/image_raw', m.IMAGE,
                         m.image_msg(_frame(index), stamp, 'cam', 'rgb8'), stamp)
            writer.write('/pose', m.POSE_STAMPED,
                         m.pose_stamped_msg(np.eye(4), stamp, 'map'), stamp)
    return tmp_path / 'bag'


def _mcap(bag: Path) -> Path:
    return next(bag.glob('*.mcap'))


def test_written_chunks_carry_crcs_and_read_back(written_bag):
    with open(_mcap(written_bag), 'rb') as stream:
        reader = make_reader(stream)
        chunks = reader.get_summary().chunk_indexes
        # Bounded chunks (a few frames at most): one damaged byte costs only its chunk.
        assert len(chunks) >= 5
        assert max(c.uncompressed_size for c in chunks) <= CHUNK_BYTES + 400_000
        crcs = []
        for index in chunks:
            stream.seek(index.chunk_start_offset + 1 + 8 + 24)
            crcs.append(int.from_bytes(stream.read(4), 'little'))
        assert all(crcs)
    with BagReader(written_bag) as reader:  # rosbags still reads it
        frames = list(reader.images('/camera/image_raw'))
        assert [f.stamp_ns for f in frames] == [(i + 1) * STEP_NS for i in range(FRAMES)]
        np.testing.assert_array_equal(frames[5].rgb, _frame(5))
        assert reader.message_count('/pose') == FRAMES


def test_a_corrupted_byte_is_detected_and_the_intact_records_recovered(written_bag):
    path = _mcap(written_bag)
    with open(path, 'rb') as stream:
        chunks = sorted(make_reader(stream).get_summary().chunk_indexes,
                        key=lambda item: item.chunk_start_offset)
    victim = chunks[len(chunks) // 2]
    data = bytearray(path.read_bytes())
    data[victim.chunk_start_offset + victim.chunk_length // 2] ^= 0x5A  # inside a message
    path.write_bytes(bytes(data))

    with BagReader(written_bag) as reader:  # the CRC turns silent corruption into an error
        with pytest.raises(BagError, match='recover_mcap'):
            list(reader.images('/camera/image_raw'))

    recovery = recover_mcap(path)
    assert len(recovery.lost) == 1
    lost = recovery.lost[0]
    assert lost.offset == victim.chunk_start_offset and 'CRC' in lost.reason
    assert lost.messages and sum(lost.messages.values()) >= 1
    images = [r for r in recovery.messages if r.topic == '/camera/image_raw']
    poses = [r for r in recovery.messages if r.topic == '/pose']
    assert len(images) + lost.messages.get('/camera/image_raw', 0) == FRAMES
    assert len(poses) + lost.messages.get('/pose', 0) == FRAMES
    assert lost.start_ns <= lost.end_ns
    for record in images:  # every recovered frame is bit-exact, before and after the damage
        message = m.TYPESTORE.deserialize_cdr(record.data, record.msgtype)
        index = record.log_time_ns // STEP_NS - 1
        np.testing.assert_array_equal(m.image_to_rgb(message), _frame(index))
    assert images[0].log_time_ns == STEP_NS and images[-1].log_time_ns == FRAMES * STEP_NS
    assert 'damaged chunks skipped' in recovery.report() and '/camera/image_raw' in (
        recovery.report())
