# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Acceptance: each source makes the mapper's outputs metric (oracle, real geometry).

The oracle gives every window a random scale in [0.5, 2] (after VGGT's normalisation), 0.3 %
depth noise and 1 mrad / 3 mm pose noise per frame. Trajectory and map are compared with the
ground truth in metres: a rigid (SE(3), no scale) alignment must fit about as well as a
similarity (Sim(3)) one, and the similarity's scale must be 1 within each source's tolerance.
"""

from dataclasses import replace

import numpy as np
import pytest

from vggt4d_ros.geometry.image_transform import plan_resize
from vggt4d_ros.geometry.sim3 import umeyama
from vggt4d_ros.mapping.mapper import Mapper
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.mapping.testing import wall_distance
from vggt4d_ros.runtime.scale.config import ScaleConfig
from vggt4d_ros.runtime.scale.estimator import ScaleEstimator
from vggt4d_ros.runtime.scale.estimator import ScaleInputs
from vggt4d_ros.runtime.scale.testing import GROUND_CAMERA
from vggt4d_ros.runtime.scale.testing import ground_robot_scene
from vggt4d_ros.runtime.scale.testing import odometry_buffer
from vggt4d_ros.runtime.scale.testing import sensor_depth

STEP = 200_000_000
HW = (42, 63)
PLAN = plan_resize((84, 126), target=63, patch=7)
WINDOWS = 10


def _run(backend, source, inputs_for, windows=WINDOWS, hint_from=0, mapper=None):
    estimator = ScaleEstimator(ScaleConfig(source=source))
    mapper = mapper or Mapper(MapperConfig(pixel_stride=2), scale_fusion=estimator.filter)
    updates, estimates = [], []
    for k in range(windows):
        result = backend.run([], [(4 * k + i) * STEP for i in range(8)])
        result = replace(result, transform=PLAN)
        estimate = estimator.update(result, inputs_for(result))
        hint = estimate.metres_per_unit if k >= hint_from else None
        updates.append(mapper.integrate(result, scale_hint=hint, scale_spread=estimate.spread))
        estimates.append(estimate)
    return mapper, updates, estimates, estimator


def _ates(updates, backend):
    stamps = [s for u in updates for s in u.stamps_ns]
    est = np.concatenate([u.poses for u in updates])[:, :3, 3]
    gt = np.stack([backend.scene.camera_pose(backend.time_of(s)) for s in stamps])[:, :3, 3]
    sim3 = umeyama(est, gt)
    se3 = umeyama(est, gt, with_scale=False)
    rmse = [float(np.sqrt(np.mean(np.sum((t.apply(est) - gt) ** 2, axis=1))))
            for t in (sim3, se3)]
    return rmse[0], rmse[1], sim3


def _depth_inputs(backend, seed):
    rng = np.random.default_rng(seed)
    return lambda result: ScaleInputs(depths={s: sensor_depth(backend, s, PLAN, rng)
                                              for s in result.stamps_ns})


@pytest.mark.parametrize('seed', [21, 22])
def test_depth_source_makes_trajectory_and_map_metric(seed):
    backend = OracleBackend(network_hw=HW, seed=seed)
    mapper, updates, estimates, estimator = _run(backend, 'depth', _depth_inputs(backend, seed))
    assert all(e.ok for e in estimates) and estimator.stats == {'used': WINDOWS}
    assert all(u.metric.metric for u in updates) and updates[0].metric.rescaled == 1.0
    ate_sim3, ate_metric, sim3 = _ates(updates, backend)
    assert sim3.scale == pytest.approx(1.0, abs=0.02)
    # Measured 1.09 and 1.11 (seeds 21, 22). The oracle's 3 mm pose noise alone limits this:
    # its own exact per-window scales give 1.15 and 1.08, hence 1 mm of slack.
    assert ate_metric <= 1.1 * ate_sim3 + 1e-3, (ate_metric, ate_sim3)
    # The map is metric too: its points lie on the room's walls after the rigid alignment.
    stamps = [s for u in updates for s in u.stamps_ns]
    est = np.concatenate([u.poses for u in updates])[:, :3, 3]
    gt = np.stack([backend.scene.camera_pose(backend.time_of(s)) for s in stamps])[:, :3, 3]
    rigid = umeyama(est, gt, with_scale=False)
    points, _ = mapper.map.points()
    distance = wall_distance(rigid.apply(points.astype(np.float64)), backend.scene.room_half)
    assert np.median(distance) < 0.05


@pytest.mark.parametrize('seed', [23, 24])
def test_odometry_source_within_3_percent(seed):
    backend = OracleBackend(network_hw=HW, seed=seed)
    rng = np.random.default_rng(seed)
    odometry = odometry_buffer(backend.scene, 0, (4 * WINDOWS + 8) * STEP, rng, rate_hz=10.0,
                               noise=0.02)
    inputs = ScaleInputs(odometry=odometry, base_from_camera=GROUND_CAMERA)
    _, updates, estimates, _ = _run(backend, 'odometry', lambda result: inputs)
    assert all(e.ok for e in estimates)
    ate_sim3, ate_metric, sim3 = _ates(updates, backend)
    assert sim3.scale == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize('seed', [25, 26])
def test_camera_height_source_within_5_percent_on_a_ground_robot(seed):
    backend = OracleBackend(scene=ground_robot_scene(), network_hw=HW, seed=seed)
    inputs = ScaleInputs(base_from_camera=GROUND_CAMERA)
    _, updates, estimates, _ = _run(backend, 'camera_height', lambda result: inputs)
    assert sum(e.ok for e in estimates) >= WINDOWS - 1
    _, _, sim3 = _ates(updates, backend)
    assert sim3.scale == pytest.approx(1.0, abs=0.05)


def test_scale_arriving_late_rescales_once_and_everything_ends_metric():
    backend = OracleBackend(network_hw=HW, seed=27)
    mapper, updates, _, estimator = _run(backend, 'depth', _depth_inputs(backend, 27),
                                         windows=8, hint_from=3)
    assert [u.metric.metric for u in updates] == [False] * 3 + [True] * 5
    assert updates[3].metric.rescaled != 1.0
    assert all(u.metric.rescaled == 1.0 for u in updates[4:])
    assert estimator.filter.state.without_estimate == 3
    # The trajectory the mapper holds (early poses included) is metric after the rescale.
    stamps = mapper.trajectory.stamps_ns
    est = mapper.trajectory.positions()
    gt = np.stack([backend.scene.camera_pose(backend.time_of(s)) for s in stamps])[:, :3, 3]
    assert umeyama(est, gt).scale == pytest.approx(1.0, abs=0.02)
    # The chain did not jump: consecutive positions stay close (camera moves ~5 cm per frame).
    assert np.linalg.norm(np.diff(est, axis=0), axis=1).max() < 0.15


def test_without_a_source_outputs_are_exactly_as_before():
    plain_backend = OracleBackend(network_hw=HW, seed=28)
    fused_backend = OracleBackend(network_hw=HW, seed=28)
    plain = Mapper(MapperConfig(pixel_stride=2))
    _, fused_updates, _, _ = _run(fused_backend, 'none', lambda result: ScaleInputs(),
                                  windows=5)
    for k, fused in enumerate(fused_updates):
        result = plain_backend.run([], [(4 * k + i) * STEP for i in range(8)])
        update = plain.integrate(replace(result, transform=PLAN))
        assert not fused.metric.metric
        np.testing.assert_array_equal(update.poses, fused.poses)
        np.testing.assert_array_equal(update.points_xyz, fused.points_xyz)


def test_metric_scale_facade_pairs_depth_and_reports_diagnostics():
    from vggt4d_ros.runtime.scale.runtime import MetricScale

    backend = OracleBackend(network_hw=HW, seed=29)
    metric = MetricScale(ScaleConfig(source='depth'), sync_queue_size=5, sync_slop_s=0.01)
    mapper = Mapper(MapperConfig(pixel_stride=2), scale_fusion=metric.fusion)
    rng = np.random.default_rng(29)
    updates = []
    for k in range(4):
        stamps = [(4 * k + i) * STEP for i in range(8)]
        for stamp in stamps[-4:] if k else stamps:
            metric.add_image(stamp)
            if stamp != 5 * STEP:  # one depth image is lost
                depth = sensor_depth(backend, stamp, PLAN, rng)
                # The depth driver stamps 3 ms late: ApproximateTime pairs it anyway.
                metric.add_depth(replace(depth, stamp_ns=stamp + 3_000_000))
        result = replace(backend.run([], stamps), transform=PLAN)
        estimate = metric.estimate(result)
        assert estimate.ok
        updates.append(mapper.integrate(result, scale_hint=estimate.metres_per_unit,
                                        scale_spread=estimate.spread))
    _, _, sim3 = _ates(updates, backend)
    assert sim3.scale == pytest.approx(1.0, abs=0.02)
    values = metric.diagnostics()
    assert values['scale.source'] == 'depth' and values['scale.outcome.used'] == '4'
    assert values['scale.windows'] == '4' and values['scale.windows_without_estimate'] == '0'
    assert float(values['scale.metres_per_map_unit']) > 0
    assert values['scale.unpaired_images'] == '1'  # the image whose depth was lost


def test_a_corrupt_window_is_rejected_by_the_filter_and_the_map_stays_metric():
    backend = OracleBackend(network_hw=HW, seed=30)
    backend.corrupt_calls = {4}  # garbage VGGT depth for one window
    _, updates, _, _ = _run(backend, 'depth', _depth_inputs(backend, 30))
    # Garbage depth cancels in the depth ratio; the chain's reset shifts the map units by a few
    # percent, which the filter follows at its bounded rate.
    assert updates[4].reset  # the mapper's own plausibility check fires as before
    assert all(u.metric.metric for u in updates)
    # The segments after the reset are still metric: compare the last windows' travel.
    later = updates[6:]
    stamps = [s for u in later for s in u.stamps_ns]
    est = np.concatenate([u.poses for u in later])[:, :3, 3]
    gt = np.stack([backend.scene.camera_pose(backend.time_of(s)) for s in stamps])[:, :3, 3]
    assert umeyama(est, gt).scale == pytest.approx(1.0, abs=0.03)


def test_an_outlier_hint_is_rejected_and_does_not_move_the_map():
    backend = OracleBackend(network_hw=HW, seed=31)
    inputs = _depth_inputs(backend, 31)
    estimator = ScaleEstimator(ScaleConfig(source='depth'))
    mapper = Mapper(MapperConfig(pixel_stride=2), scale_fusion=estimator.filter)
    updates = []
    for k in range(8):
        result = replace(backend.run([], [(4 * k + i) * STEP for i in range(8)]), transform=PLAN)
        estimate = estimator.update(result, inputs(result))
        hint = estimate.metres_per_unit * (1.6 if k == 5 else 1.0)  # e.g. a wrong depth unit
        updates.append(mapper.integrate(result, scale_hint=hint, scale_spread=estimate.spread))
    assert estimator.filter.state.rejected == 1
    applied = [u.metric.metres_per_map_unit for u in updates]
    assert applied[5] == pytest.approx(applied[4], rel=0.005)
    _, _, sim3 = _ates(updates, backend)
    assert sim3.scale == pytest.approx(1.0, abs=0.02)
