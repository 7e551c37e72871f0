# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The ROS-free TF tree gives the same lookups and errors as the real tf2_ros.Buffer.

``test/data/tf2_lookup_reference.json`` was recorded once, outside the repository
(``/work/scratch/tfrec/record_tf2.py`` on the machine of docs/ros.md, "Checked against a real
ROS 2"), by feeding constructed transform sets to the real ``tf2_ros.Buffer`` of ROS 2 Jazzy
built from source (``set_transform`` / ``set_transform_static``, then ``lookup_transform``):
a chain of three links under a dynamic odom and map, static and dynamic links mixed (a link
turning static), interpolation between two stamps (also the long way round and a large
rotation), time 0 = the latest common time, extrapolation into the future and the past, one
sample only, the 10 s cache pruning and too-old data refused, unknown frames, invalid names,
trees that are not connected, a frame re-parented over time, a stamp sent twice and a dynamic
link replaced by a static one. Each lookup stores the real result (translation, quaternion,
result stamp) or the error class and, for extrapolation, its direction. Needs only numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vggt4d_ros.geometry.rotation import rotation_from_quaternion_xyzw
from vggt4d_ros.runtime import tf_tree
from vggt4d_ros.runtime.tf_tree import TfTree

RECORDED = json.loads(
    (Path(__file__).resolve().parents[1] / 'data' / 'tf2_lookup_reference.json').read_text())


def _replay(steps: list[dict]):
    """Feed the steps to a TF tree; yield (lookup step, what the tree gave)."""
    buffer = TfTree(int(RECORDED['cache_time_s'] * 1e9))
    for step in steps:
        if 'set' in step:
            s = step['set']
            buffer.set_transform(s['parent'], s['child'], s['stamp_ns'], s['translation'],
                                 s['rotation'], static=s['static'])
            continue
        q = step['lookup']
        try:
            yield step, buffer.lookup(q['target'], q['source'], q['stamp_ns'])
        except tf_tree.TransformException as error:
            yield step, error


def _direction(error: Exception) -> str:
    text = str(error)
    return 'future' if 'into the future' in text else 'past' if 'into the past' in text else ''


@pytest.mark.parametrize('name', sorted(RECORDED['scenarios']))
def test_same_lookups_as_the_real_tf2_buffer(name):
    lookups = 0
    for step, got in _replay(RECORDED['scenarios'][name]):
        want, where = step['result'], step['lookup']
        lookups += 1
        if 'error' in want:
            assert isinstance(got, Exception), (where, want, got)
            assert type(got).__name__ == want['error'], (where, got)
            assert _direction(got) == want['direction'], (where, got)
            continue
        assert not isinstance(got, Exception), (where, want, got)
        pose, stamp_ns = got
        assert stamp_ns == want['stamp_ns'], where
        np.testing.assert_allclose(pose[:3, 3], want['translation'], rtol=0, atol=1e-9,
                                   err_msg=str(where))
        np.testing.assert_allclose(pose[:3, :3], rotation_from_quaternion_xyzw(
            np.asarray(want['rotation'])), rtol=0, atol=1e-9, err_msg=str(where))
    assert lookups >= 5


def test_the_reference_covers_each_error_kind_and_the_chains():
    results = [step['result'] for steps in RECORDED['scenarios'].values()
               for step in steps if 'lookup' in step]
    kinds = {(r.get('error', 'ok'), r.get('direction', '')) for r in results}
    assert {('ok', ''), ('LookupException', ''), ('ConnectivityException', ''),
            ('ExtrapolationException', 'future'), ('ExtrapolationException', 'past'),
            ('ExtrapolationException', ''), ('InvalidArgumentException', '')} <= kinds


def test_refused_transforms():
    buffer = TfTree()
    unit = (0.0, 0.0, 0.0, 1.0)
    assert not buffer.set_transform('a', 'a', 1, (0, 0, 0), unit)
    assert not buffer.set_transform('', 'b', 1, (0, 0, 0), unit)
    assert not buffer.set_transform('a', 'b', 1, (float('nan'), 0, 0), unit)
    assert not buffer.set_transform('a', 'b', 1, (0, 0, 0), (0.0, 0.0, 0.0, 2.0))
    with pytest.raises(tf_tree.LookupException):
        buffer.lookup('a', 'b', 0)  # nothing refused above made the frames known
    assert buffer.set_transform('/a', 'b', 1, (1, 2, 3), unit)  # a leading '/' is stripped
    assert buffer.lookup('a', 'b', 1)[0][:3, 3].tolist() == [1, 2, 3]


def test_clear_keeps_static_links():
    buffer = TfTree()
    unit = (0.0, 0.0, 0.0, 1.0)
    buffer.set_transform('base', 'camera', 5, (0, 0, 1), unit, static=True)
    buffer.set_transform('odom', 'base', 5, (1, 0, 0), unit)
    buffer.clear()
    assert buffer.lookup('base', 'camera', 99)[0][2, 3] == 1
    with pytest.raises(tf_tree.TransformException):
        buffer.lookup('odom', 'camera', 5)
