# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node republishes its latched map at once when the map was rescaled (became metric).

``NodeSink.static_map_due`` decides on the worker whether the engine snapshots the static map
with a window: after ``map_period_s``, on a map reset, on the final flush, and when the window
scaled the whole segment (``MapUpdate.segment_rescaled``): otherwise the latched map would
stay in the old units for up to a period while TF is already metric.
"""

from __future__ import annotations

from types import SimpleNamespace
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')

from vggt4d_ros.geometry.sim3 import Sim3  # noqa: E402
from vggt4d_ros.mapping.mapper import AlignmentStats  # noqa: E402
from vggt4d_ros.mapping.mapper import MapUpdate  # noqa: E402
from vggt4d_ros.mapping.mapper import MetricInfo  # noqa: E402
from vggt4d_ros.ros.engine_sink import NodeSink  # noqa: E402


def update(metric: MetricInfo, reset: bool = False) -> MapUpdate:
    return MapUpdate(stamps_ns=[1], new_indices=[0], poses=np.eye(4)[None],
                     points_xyz=np.zeros((0, 3), np.float32),
                     points_rgb=np.zeros((0, 3), np.uint8), reset=reset, reset_reason='',
                     segment=0, alignment=AlignmentStats('dense', 10, 1.0, 0.0, 1.0, 1.0),
                     window_to_global=Sim3(), map_size=0, metric=metric)


def sink() -> SimpleNamespace:
    """The decision's state: a period that has not run out since the last snapshot."""
    return SimpleNamespace(_params=SimpleNamespace(map_period_s=3600.0, publish_static_map=True),
                           _last_map_s=time.monotonic(), force_map=False)


def test_a_rescaled_map_is_due_at_once():
    became_metric = MetricInfo(metric=True, metres_per_map_unit=2.5, rescaled=2.5,
                               change=Sim3(2.5))
    assert update(became_metric).segment_rescaled
    assert NodeSink.static_map_due(sink(), update(became_metric))


def test_a_correction_or_an_unchanged_scale_waits_for_the_period():
    corrected = MetricInfo(metric=True, metres_per_map_unit=2.6,
                           change=Sim3(1.04, np.eye(3), np.array([0.1, 0.0, 0.0])))
    for metric in (corrected, MetricInfo(), MetricInfo(metric=True, metres_per_map_unit=2.5)):
        assert not update(metric).segment_rescaled
        assert not NodeSink.static_map_due(sink(), update(metric))
    assert NodeSink.static_map_due(sink(), update(MetricInfo(), reset=True))
