# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""ApproximateSync against the documented ApproximateTimeSynchronizer (rclpy) behaviour."""

import random

import pytest

from vggt4d_ros.runtime.sync import ApproximateSync
from vggt4d_ros.runtime.sync import DepthPairing

MS = 1_000_000


def _collect(sync, events):
    out = []
    for index, stamp in events:
        matched = sync.add(index, stamp, (index, stamp))
        if matched is not None:
            out.append(tuple(stamp for _, stamp in matched))
    return out


def test_equal_stamps_pair_one_by_one():
    sync = ApproximateSync(2, queue_size=1, slop_s=0.1)
    for t in range(10):
        assert sync.add(0, t * 10**9, 'a') is None
        assert sync.add(1, t * 10**9, 'b') == ('a', 'b')
    assert sync.stats.matched == 10


@pytest.mark.parametrize('count', [1, 4, 9])
def test_scrambled_sequences_recombine_with_a_large_enough_queue(count):
    rng = random.Random(count)
    sync = ApproximateSync(2, queue_size=count, slop_s=0.1)
    stamps = [t * 10**9 for t in range(count)]
    first, second = rng.sample(stamps, count), rng.sample(stamps, count)
    out = _collect(sync, [(0, s) for s in first] + [(1, s) for s in second])
    assert sorted(out) == [(s, s) for s in stamps]


def test_slop_is_inclusive_for_candidates_but_the_span_must_be_strictly_below():
    sync = ApproximateSync(2, queue_size=5, slop_s=0.01)
    assert _collect(sync, [(0, 0), (1, 10 * MS)]) == []  # span == slop: no set
    assert _collect(sync, [(0, 100 * MS), (1, 109 * MS)]) == [(100 * MS, 109 * MS)]
    assert _collect(sync, [(0, 200 * MS), (1, 230 * MS)]) == []


def test_the_nearest_candidate_wins_and_each_message_is_used_once():
    sync = ApproximateSync(2, queue_size=5, slop_s=0.01)
    out = _collect(sync, [(1, 96 * MS), (1, 102 * MS), (0, 100 * MS), (0, 101 * MS)])
    # 100 takes 102 (nearer than 96); 101 then only has 96 (5 ms away): paired too.
    assert out == [(100 * MS, 102 * MS), (101 * MS, 96 * MS)]
    assert sync.pending(0) == [] and sync.pending(1) == []
    # Two images near one depth: the first one to arrive after it gets it, the other waits.
    out = _collect(sync, [(1, 300 * MS), (0, 301 * MS), (0, 302 * MS)])
    assert out == [(301 * MS, 300 * MS)] and sync.pending(0) == [302 * MS]


def test_only_the_arriving_message_triggers_a_match():
    sync = ApproximateSync(2, queue_size=5, slop_s=0.01)
    # 0 ms and 5 ms are both in queue 0 when depth 4 ms arrives: the nearer (5 ms) pairs; the
    # 0 ms image stays although a later depth at 1 ms pairs it only when that depth arrives.
    out = _collect(sync, [(0, 0), (0, 5 * MS), (1, 4 * MS), (1, 1 * MS)])
    assert out == [(5 * MS, 4 * MS), (0, 1 * MS)]


def test_queue_size_pushes_out_the_oldest_unmatched_messages():
    sync = ApproximateSync(2, queue_size=2, slop_s=0.01)
    _collect(sync, [(0, 0), (0, 100 * MS), (0, 200 * MS)])
    assert sync.stats.dropped == [1, 0] and sync.pending(0) == [100 * MS, 200 * MS]
    assert _collect(sync, [(1, 1 * MS)]) == []  # its partner is gone
    # An arriving message older than a full queue is pushed out at once and never matches.
    assert _collect(sync, [(0, 2 * MS)]) == []
    assert sync.stats.dropped == [2, 0]


def test_three_inputs_need_a_set_spanning_less_than_the_slop():
    sync = ApproximateSync(3, queue_size=5, slop_s=0.01)
    out = _collect(sync, [(0, 0), (1, 8 * MS), (2, -4 * MS), (2, 3 * MS)])
    # With -4 ms the span is 12 ms; the later 3 ms completes (0, 8, 3): span 8 ms.
    assert out == [(0, 8 * MS, 3 * MS)]


def test_depth_pairing_records_pairs_and_counts_dropped_images():
    pairing = DepthPairing(queue_size=3, slop_s=0.005, max_pairs=2)
    assert not pairing.add_image(0)
    assert pairing.add_depth(2 * MS, 'd0')  # the depth came after its image
    assert pairing.add_image(100 * MS) is False
    for stamp in (200 * MS, 300 * MS, 400 * MS):
        pairing.add_image(stamp)
    assert pairing.dropped_images == 1  # 100 ms was pushed out without a depth
    assert pairing.add_depth(399 * MS, 'd4')
    pairing.add_image(500 * MS)
    assert pairing.add_depth(501 * MS, 'd5')
    assert list(pairing.depths.items()) == [(400 * MS, 'd4'), (500 * MS, 'd5')]
