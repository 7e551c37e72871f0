# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""vggt4d-replay with each metric scale source on the synthetic bag: metrics.json and report.

The backend is the synthetic scene's oracle (its ground truth per window as VGGT would give it:
own frame, normalised, a random scale in [0.5, 2]); the sources read the bag's simulated
sensors (16UC1 depth with noise and holes, noisy odometry on /tf, the camera mount on
/tf_static). The run goes through the replay's parameter path like the node's.
"""

from __future__ import annotations

import json

import pytest
import torch

from vggt4d_ros.replay.cli import build_parser
from vggt4d_ros.replay.cli import config_from_args
from vggt4d_ros.replay.cli import main as cli_main
from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.runner import engine_config
from vggt4d_ros.replay.runner import run_replay
from vggt4d_ros.replay.synthetic import METRIC_TOPICS
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SensorConfig
from vggt4d_ros.replay.synthetic import synthetic_oracle_backend
from vggt4d_ros.replay.synthetic import write_synthetic_bag
from vggt4d_ros.runtime.backend import LoadedBackend
from vggt4d_ros.runtime.parameters import write_parameter_file
from vggt4d_ros.runtime.scale.estimate import ScaleEstimate
from vggt4d_ros.runtime.scale.runtime import MetricScale

SCENE = SceneConfig(num_frames=24, width=96, height=72, supersample=1)
#: Every frame a keyframe, windows of 6 advancing by 3, a map fine enough for 96 x 72.
PARAMS = {'window.window_size': 6, 'window.stride': 3, 'window.min_parallax_px': 0.0,
          'window.max_keyframe_interval_s': 0.0, 'mapper.min_align_points': 20,
          'mapper.pixel_stride': 2, 'mapper.voxel.voxel_size': 0.1}


#: Oracle seed: the same per-window scales and noise in every run of this module.
SEED = 3


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    return write_synthetic_bag(tmp_path_factory.mktemp('scale_bag') / 'bag', SCENE,
                               sensors=SensorConfig())


@pytest.fixture(scope='module')
def params_file(tmp_path_factory):
    return write_parameter_file(PARAMS, tmp_path_factory.mktemp('params') / 'params.yaml')


def _replay(bag, params_file, out, *flags: str, oracle=None):
    args = build_parser().parse_args([str(bag), '--out', str(out), '--params', str(params_file),
                                      '--quiet', '--no-images', *flags])
    config = config_from_args(args)
    oracle = oracle or synthetic_oracle_backend(SCENE, seed=SEED)
    backend = LoadedBackend(oracle, torch.device('cpu'), torch.float32, 'synthetic oracle')
    summary = run_replay(config, backend)
    metrics = json.loads((out / 'metrics.json').read_text())
    assert metrics == json.loads(json.dumps(summary.metrics))
    return metrics['scale'], summary.report.read_text(), summary


@pytest.fixture(scope='module')
def exact_scale_ate(bag, params_file, tmp_path_factory):
    """Metric ATE of the same run with each window's EXACT metres per unit as the estimate.

    The oracle's poses carry 3 mm / 1 mrad noise per frame, so its Sim(3) chain drifts by
    ~0.5 % in scale and the Sim(3) ATE is only ~5 mm: then even the exact scale gives metric
    ATEs 1.04-1.42x the Sim(3) ATE (seeds 0-3). A source is judged against the better of the
    two.
    """
    oracle = synthetic_oracle_backend(SCENE, seed=SEED)

    def exact(self, result):
        return ScaleEstimate('depth', 1.0 / oracle.window_scales[-1], 0.001, 100)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MetricScale, 'estimate', exact)
        scale, _, _ = _replay(bag, params_file, tmp_path_factory.mktemp('exact'),
                              '--scale-source', 'depth', oracle=oracle)
    assert abs(scale['scale_error']) < 0.01
    return scale['ate_rmse_metric']


# Scale error bounds: depth and odometry as the issue asks (2 %, 3 %); camera_height on this
# scene is only good to ~10 %: the synthetic camera bobs +-0.15 m around its 1.45 m mount
# (docs/scale.md), which a ground robot does not.
@pytest.mark.parametrize('flags, source, max_error, check_ate', [
    (('--scale-source', 'depth', '--depth-topic', METRIC_TOPICS['depth']), 'depth', 0.02, True),
    (('--scale-source', 'odometry', '--odom-topic', METRIC_TOPICS['tf']), 'odometry', 0.03,
     True),
    (('--scale-source', 'camera_height'), 'camera_height', 0.12, False),
])
def test_each_source_writes_metric_ate_and_scale_error(bag, params_file, tmp_path, flags,
                                                       source, max_error, check_ate,
                                                       exact_scale_ate):
    scale, report, summary = _replay(bag, params_file, tmp_path / source, *flags)
    assert scale['source'] == source and scale['units'] == 'metres', scale
    assert scale['windows'] == 7 and scale['windows_with_estimate'] >= 5, scale
    assert abs(scale['scale_error']) < max_error, scale
    assert scale['ate_rmse_metric'] >= scale['ate_rmse_sim3'] > 0
    if check_ate:  # within 1.1x of the Sim(3) ATE, or of what the exact scale gives
        bound = 1.1 * max(scale['ate_rmse_sim3'], exact_scale_ate)
        assert scale['ate_rmse_metric'] < bound, (scale, exact_scale_ate)
    over = scale['over_time']
    assert len(over['stamps_ns']) == len(over['fused_metres_per_map_unit']) == 7
    assert len(over['segment_scale_error']) >= 3
    # The report shows the numbers and the scale over time.
    assert '## Metric scale' in report and f'Source `{source}`' in report
    assert f'{scale["ate_rmse_metric"]:.4f}' in report
    assert '](scale_over_time.png)' in report
    assert (summary.report.parent / 'scale_over_time.png').stat().st_size > 1000


def test_without_a_source_the_report_says_vggt_units(bag, params_file, tmp_path):
    scale, report, _ = _replay(bag, params_file, tmp_path / 'none')
    assert scale == {'source': 'none', 'units': 'vggt_units',
                     'note': 'no scale source: poses and maps are in VGGT units'}
    assert "VGGT's scale-free units" in report


def test_parameter_file_scale_values_apply_and_flags_override(bag, tmp_path):
    params = write_parameter_file({**PARAMS, 'scale.source': 'camera_height',
                                   'scale.camera_height.camera_height_m': 1.2,
                                   'scale.depth.max_range_m': 4.0}, tmp_path / 'p.yaml')
    args = build_parser().parse_args([str(bag), '--out', str(tmp_path / 'o'), '--params',
                                      str(params), '--scale-source', 'depth',
                                      '--camera-height', '1.45'])
    config = engine_config(config_from_args(args))
    assert config.scale.source == 'depth'  # the flag wins
    assert config.scale.camera_height.camera_height_m == 1.45
    assert config.scale.depth.max_range_m == 4.0  # from the file


def test_missing_depth_topic_is_a_clear_error(bag, params_file, tmp_path):
    with pytest.raises(ReplayError, match='--scale-source depth.*/no/depth'):
        _replay(bag, params_file, tmp_path / 'x', '--scale-source', 'depth',
                '--depth-topic', '/no/depth')


def test_dds_mode_with_a_scale_source_exits_with_code_2(bag, params_file, tmp_path, capsys):
    code = cli_main([str(bag), '--out', str(tmp_path / 'dds'), '--params', str(params_file),
                     '--mode', 'dds', '--scale-source', 'depth', '--quiet'])
    assert code == 2
    assert '--mode offline' in capsys.readouterr().err


@pytest.fixture(scope='module')
def chained_bag(tmp_path_factory):
    """The same scene and sensors, TF written as odom -> base_footprint -> base_link ->
    camera_link -> camera_optical_frame."""
    return write_synthetic_bag(tmp_path_factory.mktemp('chained_bag') / 'bag', SCENE,
                               sensors=SensorConfig(chained_tf=True))


@pytest.mark.parametrize('source', ['odometry', 'camera_height'])
def test_chained_tf_gives_the_one_edge_metric_scale(bag, chained_bag, params_file, tmp_path,
                                                    source):
    """The node reads chains through its TF buffer; the replay must give the same scale."""
    flags = ('--scale-source', source)
    one_edge, _, _ = _replay(bag, params_file, tmp_path / 'one', *flags)
    chained, _, _ = _replay(chained_bag, params_file, tmp_path / 'chained', *flags)
    assert one_edge['units'] == chained['units'] == 'metres'
    assert chained['windows_with_estimate'] == one_edge['windows_with_estimate'] >= 5
    assert abs(chained['scale_error']) < (0.03 if source == 'odometry' else 0.12)
    for key in ('metres_per_map_unit', 'scale_error', 'ate_rmse_metric'):
        assert chained[key] == pytest.approx(one_edge[key], rel=1e-9, abs=1e-12), key
    for key in ('window_metres_per_unit', 'fused_metres_per_map_unit'):
        assert chained['over_time'][key] == pytest.approx(one_edge['over_time'][key],
                                                          rel=1e-9), key
    assert chained['extrinsic'] == one_edge['extrinsic'] == \
        'tf base_link -> camera_optical_frame'
    if source == 'odometry':  # every image stamp resolved through the chain
        assert chained['tf'] == one_edge['tf']
        assert chained['tf']['odometry_samples'] == SCENE.num_frames
        assert chained['tf']['odometry_unresolved'] == chained['tf']['odometry_pending'] == 0
