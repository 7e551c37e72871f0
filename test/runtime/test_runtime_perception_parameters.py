# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The ``perception.*`` parameters: flattened from PerceptionConfig, validated, comparable."""

from __future__ import annotations

import numpy as np
import pytest

from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.runtime.config import EngineConfig
from vggt4d_ros.runtime.parameters import engine_config_from_parameters
from vggt4d_ros.runtime.parameters import engine_parameter_specs


def test_perception_parameters_build_the_config():
    specs = {spec.name: spec for spec in engine_parameter_specs()}
    names = [name for name in specs if name.startswith('perception.')]
    assert {'perception.enabled', 'perception.points.max_points_per_frame',
            'perception.tracker.gate_distance', 'perception.grid.resolution',
            'perception.grid.origin_xy'} <= set(names)
    assert not any('output_from_world' in name for name in names)  # set by the front end
    assert all(specs[name].description for name in names)
    assert specs['perception.tracker.depth_completion'].choices == ('half_width', 'none')
    assert specs['perception.grid.resolution'].limits[0] > 0
    config = engine_config_from_parameters({
        'perception.enabled': False, 'perception.grid.origin_xy': [1.0, -2.5],
        'perception.grid.width': 50, 'perception.tracker.depth_completion': 'none',
        'perception.points.max_depth': 3})  # int -> float
    perception = config.perception
    assert (perception.enabled, perception.grid.origin_xy, perception.grid.width) == (
        False, (1.0, -2.5), 50)
    assert perception.tracker.depth_completion == 'none'
    assert perception.points.max_depth == 3.0
    assert engine_config_from_parameters({}).perception == PerceptionConfig()


@pytest.mark.parametrize('name, value, words', [
    ('perception.grid.resolution', 0.0, 'must be in'),
    ('perception.tracker.depth_completion', 'full', 'one of: half_width, none'),
    ('perception.grid.origin_xy', [1.0], 'list of 2'),
    ('perception.enabled', 'yes', 'must be a bool'),
])
def test_invalid_perception_parameters_are_rejected(name, value, words):
    with pytest.raises(ValueError) as error:
        engine_config_from_parameters({name: value})
    assert name in str(error.value) and words in str(error.value)


def test_configs_compare_by_value():
    moved = np.eye(4)
    moved[:3, 3] = [0.0, 0.0, 1.0]
    assert PerceptionConfig() == PerceptionConfig()
    assert PerceptionConfig(output_from_world=moved) != PerceptionConfig()
    assert PerceptionConfig(output_from_world=moved) == PerceptionConfig(
        output_from_world=moved.copy())
    assert EngineConfig() == EngineConfig()
    assert EngineConfig(perception=PerceptionConfig(enabled=False)) != EngineConfig()
