# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Flat parameters <-> EngineConfig: specs from field metadata, validation, parameter files."""

from pathlib import Path

import pytest

from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.runtime.config import EngineConfig
from vggt4d_ros.runtime.parameters import build_config
from vggt4d_ros.runtime.parameters import engine_config_from_parameters
from vggt4d_ros.runtime.parameters import engine_parameter_specs
from vggt4d_ros.runtime.parameters import field_specs
from vggt4d_ros.runtime.parameters import load_parameter_file
from vggt4d_ros.runtime.parameters import replay_window_parameters
from vggt4d_ros.runtime.parameters import write_parameter_file
from vggt4d_ros.runtime.window import replay_window

ROOT = Path(__file__).resolve().parents[2]


def test_config_parameters_round_trip():
    for config_cls in (MapperConfig, PipelineConfig):
        specs = list(field_specs(config_cls))
        assert specs, config_cls
        assert build_config(config_cls, {s.name: s.default for s in specs}) == config_cls()
    nested = build_config(PipelineConfig, {'refine_enabled': False, 'coarse.clusters': 9})
    assert nested.refine_enabled is False and nested.coarse.clusters == 9


def test_every_engine_parameter_is_described_and_every_number_has_a_range():
    specs = engine_parameter_specs()
    names = [spec.name for spec in specs]
    assert len(names) == len(set(names))
    for spec in specs:
        assert spec.description.strip(), spec.name
        if isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool):
            assert spec.limits is not None, spec.name
            assert spec.limits[0] <= spec.default <= spec.limits[1], spec.name
    by_name = {spec.name: spec for spec in specs}
    # Allowed values come from the Literal types, not from a second list.
    assert by_name['pipeline.refine.mode'].choices == ('cluster', 'gradient')
    assert by_name['pipeline.refine.neighbour_search'].choices == ('image', 'exact')
    assert by_name['pipeline.cues.empty_window'].choices == ('nearest', 'none')
    assert by_name['mode'].choices == ('live', 'replay')
    assert 'window.mode' not in by_name


@pytest.mark.parametrize('name, value, words', [
    ('pipeline.refine.mode', 'banana', 'one of: cluster, gradient'),
    ('pipeline.refine.neighbour_search', 'fast', 'one of: image, exact'),
    ('pipeline.cues.empty_window', 'zero', 'one of: nearest, none'),
    ('mode', 'banana', 'one of: live, replay'),
    ('mapper.voxel.voxel_size', -0.5, 'must be in'),
    ('window.stride', 0, 'must be in'),
    ('window.stride', 2.5, 'must be a int'),
    ('model_config', 'huge', 'one of: full, tiny'),
])
def test_invalid_values_are_rejected_with_the_parameter_named(name, value, words):
    with pytest.raises(ValueError) as error:
        engine_config_from_parameters({name: value})
    assert name in str(error.value) and words in str(error.value)


def test_flat_parameters_build_the_engine_config():
    config = engine_config_from_parameters({
        'mode': 'replay', 'window.stride': 2, 'window.window_size': 4, 'model_config': 'tiny',
        'pipeline.refine.mode': 'gradient', 'mapper.voxel.voxel_size': 1,  # int -> float
        'image_topic': '/ignored'})
    assert isinstance(config, EngineConfig)
    assert (config.window.mode, config.window.stride, config.window.window_size) == (
        'replay', 2, 4)
    assert config.backend.model_config == 'tiny'
    assert config.pipeline.refine.mode == 'gradient'
    assert config.mapper.voxel.voxel_size == 1.0
    assert engine_config_from_parameters({}) == EngineConfig()


def test_replay_window_policy_in_both_forms():
    flat = engine_config_from_parameters(replay_window_parameters())
    assert flat.window == replay_window()
    assert 'mode' not in replay_window_parameters(include_mode=False)


def test_the_node_config_file_holds_the_defaults():
    flat = load_parameter_file(ROOT / 'config' / 'vggt4d.yaml')
    assert engine_config_from_parameters(flat) == EngineConfig()


def test_parameter_file_sections(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text('/**:\n  ros__parameters:\n    window:\n      stride: 2\n'
                    'other_node:\n  ros__parameters:\n    mode: replay\n'
                    '/robot/vggt4d:\n  ros__parameters:\n    weights: w.pt\n'
                    '    pipeline:\n      refine:\n        mode: gradient\n')
    assert load_parameter_file(path) == {'window.stride': 2, 'weights': 'w.pt',
                                         'pipeline.refine.mode': 'gradient'}
    assert load_parameter_file(path, node_name='camera') == {'window.stride': 2}
    assert load_parameter_file(path, node_name='other_node') == {'window.stride': 2,
                                                                 'mode': 'replay'}
    named = tmp_path / 'named.yaml'
    named.write_text('vggt4d:\n  ros__parameters:\n    mode: replay\n')
    with pytest.raises(ValueError, match='no section for node'):
        load_parameter_file(named, node_name='camera')
    written = write_parameter_file({'window.stride': 3, 'pipeline.cues.eps': 1e-6,
                                    'weights': ''}, tmp_path / 'w.yaml')
    assert load_parameter_file(written) == {'window.stride': 3, 'pipeline.cues.eps': 1e-6,
                                            'weights': ''}
    bad = tmp_path / 'bad.yaml'
    bad.write_text('vggt4d:\n  parameters: {}\n')
    with pytest.raises(ValueError, match='ros__parameters'):
        load_parameter_file(bad)


def test_rig_parameters_are_engine_parameters_with_typed_arrays_of_any_length():
    by_name = {spec.name: spec for spec in engine_parameter_specs()}
    topics, extrinsics = by_name['image_topics'], by_name['rig_extrinsics']
    assert (topics.default, topics.item_type, topics.length) == ([], str, None)
    assert (extrinsics.item_type, extrinsics.length) == (float, None)
    assert by_name['rig_sync'].choices == ('auto', 'message_filters', 'builtin')
    assert by_name['rig_queue_size'].limits is not None
    # A fixed-length array keeps its default's length.
    assert by_name['perception.grid.origin_xy'].length == 2
    assert 'rig.image_topics' not in by_name  # top-level names, as the node always had

    config = engine_config_from_parameters({
        'image_topics': ['/front/image_raw', '/left/image_raw'], 'rig_slop_s': 0.02,
        'rig_extrinsics': [0, 0, 0, 0, 0, 0, 1, 0.1, 0, 0, 0, 0, 0, 1]})  # ints -> floats
    assert config.rig.enabled and config.rig.rig_slop_s == 0.02
    assert all(isinstance(v, float) for v in config.rig.rig_extrinsics)
    setup = config.rig.setup()
    assert setup.camera_names == ('front', 'left')
    assert setup.base_from_camera[1][0, 3] == pytest.approx(0.1)
    assert not engine_config_from_parameters({}).rig.enabled


@pytest.mark.parametrize('values, words', [
    ({'image_topics': ['/a/image_raw']}, 'image_topics needs 2 to 4 topics, got 1'),
    ({'image_topics': '/a/image_raw'}, 'image_topics must be a list of str values'),
    ({'image_topics': ['/a/image', 3]}, 'image_topics must be a list of str values'),
    ({'image_topics': ['/a/image', '/b/image'], 'camera_names': ['a']},
     'camera_names needs one name per image topic (2)'),
    ({'image_topics': ['/a/image', '/b/image'], 'rig_extrinsics': [0.0] * 6},
     'rig extrinsics need 7 numbers'),
    ({'image_topics': ['/x/a/image', '/y/a/image']}, 'camera names must be unique'),
    ({'rig_sync': 'magic'}, 'one of: auto, message_filters, builtin'),
    ({'rig_extrinsics': ['x']}, 'rig_extrinsics must be a list of numbers'),
])
def test_invalid_rig_parameters_are_rejected_with_the_parameter_named(values, words):
    with pytest.raises(ValueError, match=words.replace('(', r'\(').replace(')', r'\)')):
        engine_config_from_parameters(values)
