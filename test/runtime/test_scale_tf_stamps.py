# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Image stamps waiting on TF: the one rule of the node and the replay (runtime/scale/tf_stamps).

Fed by the ROS-free TF tree (the node's fallback buffer and the replay's bag TF).
"""

from __future__ import annotations

from collections import Counter
import threading

import numpy as np
import pytest

from vggt4d_ros.runtime.scale.tf_stamps import PENDING_STAMPS
from vggt4d_ros.runtime.scale.tf_stamps import PendingStamps
from vggt4d_ros.runtime.tf_tree import failure_kind
from vggt4d_ros.runtime.tf_tree import TfTree
from vggt4d_ros.runtime.tf_tree import TransformException

UNIT = (0.0, 0.0, 0.0, 1.0)


def _lookup(tree: TfTree, target: str = 'odom', source: str = 'base'):
    def lookup(stamp_ns: int):
        try:
            return tree.lookup(target, source, stamp_ns)[0], ''
        except TransformException as error:
            return None, failure_kind(error)
    return lookup


def test_waits_for_the_future_and_counts_the_past():
    tree = TfTree(cache_ns=10)
    delivered = []
    queue = PendingStamps(_lookup(tree), lambda stamp, pose: delivered.append((stamp, pose[0, 3])))
    queue.add(100)  # no TF yet: an unknown frame waits
    assert queue.pending == 1 and not delivered
    tree.set_transform('odom', 'base', 100, (1, 0, 0), UNIT)
    tree.set_transform('odom', 'base', 120, (3, 0, 0), UNIT)
    queue.add(110)  # both resolve, oldest first, interpolated at the stamp
    assert delivered == [(100, 1.0), (110, 2.0)] and queue.pending == 0
    queue.add(130)  # beyond the newest sample: waits
    queue.add(125)  # behind a waiting stamp: waits too (oldest first)
    assert queue.pending == 2 and len(delivered) == 2
    tree.set_transform('odom', 'base', 140, (5, 0, 0), UNIT)
    queue.resolve()  # what the worker does before an estimate
    assert delivered[2:] == [(130, 4.0), (125, 3.5)] and queue.pending == 0
    queue.add(105)  # older than the cache kept (100 was pruned): never resolves
    assert queue.pending == 0 and len(delivered) == 4
    assert queue.counts == {'odometry_samples': 4, 'odometry_unresolved': 1}


def test_an_unconnected_frame_waits_until_its_link_comes():
    tree = TfTree()
    tree.set_transform('odom', 'base_footprint', 10, (1, 0, 0), UNIT)
    tree.set_transform('odom', 'base_footprint', 30, (3, 0, 0), UNIT)
    tree.set_transform('base_link', 'camera', 0, (0, 0, 1), UNIT, static=True)
    delivered = []
    queue = PendingStamps(_lookup(tree, 'odom', 'base_link'),
                          lambda stamp, pose: delivered.append((stamp, pose[:3, 3])))
    queue.add(20)  # base_link is known (static child) but not linked to odom yet
    assert queue.pending == 1 and not delivered
    tree.set_transform('base_footprint', 'base_link', 0, (0, 0, 0.1), UNIT, static=True)
    queue.resolve()
    assert len(delivered) == 1 and delivered[0][0] == 20
    np.testing.assert_allclose(delivered[0][1], [2.0, 0.0, 0.1], atol=1e-12)


def test_bounds_the_waiting_stamps_and_counts_into_the_given_counter():
    tree = TfTree()
    tree.set_transform('odom', 'base', 1, (0, 0, 0), UNIT)
    counts = Counter({'depth_received': 4})  # the node's own counters
    queue = PendingStamps(_lookup(tree), lambda stamp, pose: None, counts)
    for stamp in range(10, 10 + PENDING_STAMPS + 3):
        queue.add(stamp)
    assert queue.pending == PENDING_STAMPS
    assert counts == {'depth_received': 4, 'odometry_unresolved': 3}
    assert queue.counts is counts


def test_concurrent_add_and_resolve_deliver_each_stamp_once_in_order():
    """The node adds on the executor and resolves on the worker."""
    tree = TfTree(cache_ns=10**12)
    for stamp in (0, 10**9):
        tree.set_transform('odom', 'base', stamp, (stamp * 1e-9, 0, 0), UNIT)
    delivered = []
    queue = PendingStamps(_lookup(tree), lambda stamp, pose: delivered.append(stamp),
                          limit=10_000)
    stamps = list(range(1, 2001))
    done = threading.Event()

    def worker():
        while not done.is_set():
            queue.resolve()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        for stamp in stamps:
            queue.add(stamp)
    finally:
        done.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert delivered == stamps and queue.pending == 0


def test_limit_must_be_positive():
    with pytest.raises(ValueError, match='limit'):
        PendingStamps(lambda stamp: (None, 'other'), lambda stamp, pose: None, limit=0)
