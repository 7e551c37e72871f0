# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The pip-only pairing makes the same tuples as the real message_filters on the same arrivals.

``test/data/message_filters_approx_pairs.json`` was recorded once, outside the repository, by
feeding constructed stamp sequences (two inputs at one rate with an offset, 30 Hz against
10 Hz, jitter with drops and reordering, one input delayed past a small queue, equal and
duplicate stamps) to the real ``message_filters.ApproximateTimeSynchronizer`` of ROS 2 Jazzy
built from source (docs/ros.md, "Checked against a real ROS 2"). Each scenario stores the
arrivals in order, ``queue_size``, ``slop_s`` and the tuples the real synchroniser emitted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vggt4d_ros.runtime.sync import ApproximateSync

RECORDED = json.loads(
    (Path(__file__).resolve().parents[1] / 'data' / 'message_filters_approx_pairs.json')
    .read_text())


@pytest.mark.parametrize('name', sorted(RECORDED['scenarios']))
def test_same_tuples_as_the_real_approximate_time_synchronizer(name):
    scenario = RECORDED['scenarios'][name]
    inputs = 1 + max(index for index, _ in scenario['arrivals'])
    sync = ApproximateSync(inputs, scenario['queue_size'], scenario['slop_s'])
    emitted = []
    for index, stamp_ns in scenario['arrivals']:
        matched = sync.add(index, stamp_ns, stamp_ns)
        if matched is not None:
            emitted.append(list(matched))
    assert emitted == scenario['pairs']
