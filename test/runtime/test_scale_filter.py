# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Scale fusion over windows: outlier gate, bounded rate, gaps, relock, reset, diagnostics."""

import math

import numpy as np
import pytest

from vggt4d_ros.runtime.scale.config import ScaleFilterConfig
from vggt4d_ros.runtime.scale.filter import ScaleFilter


def test_first_estimate_is_taken_and_outlier_windows_are_rejected():
    fusion = ScaleFilter(ScaleFilterConfig(), source='depth')
    rng = np.random.default_rng(0)
    outputs = []
    for index in range(30):
        value = 2.0 * math.exp(0.01 * rng.standard_normal())
        if index in (8, 17):
            value *= 1.6  # a window whose estimate went wrong
        outputs.append(fusion.update(value, 0.01))
    assert outputs[0] == pytest.approx(2.0, rel=0.03)
    assert fusion.state.rejected == 2 and fusion.state.accepted == 28
    assert max(abs(o / 2.0 - 1.0) for o in outputs) < 0.03
    assert fusion.state.source == 'depth'
    assert fusion.state.spread == pytest.approx(0.01, rel=0.6)


def test_rate_of_change_is_bounded_and_a_lasting_change_relocks():
    config = ScaleFilterConfig(max_step=0.02, max_consecutive_rejects=5)
    fusion = ScaleFilter(config)
    for _ in range(10):
        fusion.update(1.0)
    outputs = [fusion.update(1.5) for _ in range(40)]
    steps = np.abs(np.diff(np.log([1.0] + outputs)))
    assert steps.max() <= 0.02 + 1e-12
    assert fusion.state.rejected == 5 and fusion.state.relocks == 1
    assert outputs[3] == pytest.approx(1.0)  # held while the change might be an outlier
    assert outputs[-1] == pytest.approx(1.5)


def test_windows_without_estimate_keep_the_scale_and_reset_forgets():
    fusion = ScaleFilter()
    assert fusion.update(None) is None  # nothing measured yet: no scale
    assert fusion.update(3.0) == pytest.approx(3.0)
    for bad in (None, float('nan'), -1.0, 0.0):
        assert fusion.update(bad) == pytest.approx(3.0)
    assert fusion.state.without_estimate == 5 and fusion.state.windows == 6
    fusion.reset()
    assert fusion.value is None and fusion.state.resets == 1
    assert math.isnan(fusion.state.metres_per_map_unit)
    assert fusion.update(0.5) == pytest.approx(0.5)  # new map units: taken as is
