# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Acceptance of the planner outputs on the synthetic scene through the oracle backend.

The oracle backend returns ground-truth depth and masks per window with per-window Sim(3)
noise (random scale, pose and depth noise, outliers), the engine chains the windows, and
perception runs on every new frame. Issue 15's criteria, in the output frame (the scene's world
scaled by the first window's scale, see perception_scenario.py):

The tracker runs its default configuration: free 3D motion (no planar model), the
constant-acceleration filter, track-averaged shape terms of the centre
(``shape_average_hits``), the box-fit centre (``centre_model``: the crate's horizontal
centre from its footprint rectangle, the ball's from its surface).

* every object keeps one id (no switch) over the 4 s run;
* position error below 5 % of its distance while seen whole (measured: max 2.3 %);
* velocity error (RMS over the frames where the object has been seen whole for >= 0.5 s,
  relative to its RMS speed), goal 10 %: measured ball 5.7 %, crate 9.2 % (horizontal
  8.6 %, vertical 3.3 %), both asserted < 10 % (with the surface centre the crate had
  11.2 %). Near the floor: the oracle's per-frame pose noise (1 mrad, 3 mm) alone, on
  exact centres through the same filter, gives the crate 8-11 % on five seeds (8.8 % on
  this one); the crate's settled stretches are short (13 frames) and slow. Other seeds
  where the objects do not touch, and the planar motion model: docs/perception.md;
* at least 95 % of the dynamic cloud's points on a moving object;
* no dynamic grid cell stays occupied more than 1 s after every object left it.

A second run has the done-when's literal noise: per-window Sim(3) only (random scale and
random rigid motion of each window), no per-frame pose noise (depth noise and outliers as
above): ids, position and velocity errors are checked there too (``literal_run``).
"""

from __future__ import annotations

import numpy as np
import pytest

from perception_scenario import FPS
from perception_scenario import fully_visible
from perception_scenario import run_scene
from vggt4d_ros.mapping.testing import OracleNoise
from vggt4d_ros.perception.occupancy import OCCUPIED
from vggt4d_ros.replay.synthetic import OBJECT_IDS
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticScene
from vggt4d_ros.replay.track_metrics import track_metrics
from vggt4d_ros.replay.track_metrics import TrackFrame

#: Seed whose ball and crate never touch (touching objects merge into one instance).
SEED = 17
#: Velocity error goal of issue 15 (RMS error / RMS speed).
VELOCITY_GOAL = 0.10

#: The done-when's literal noise: per-window Sim(3) (random scale and rigid), no per-frame
#: pose noise.
LITERAL_NOISE = OracleNoise(random_rigid=True, rotation_noise_rad=0.0, translation_noise=0.0)


@pytest.fixture(scope='module')
def run():
    return run_scene(num_frames=60, seed=SEED, planar_motion=False)


@pytest.fixture(scope='module')
def literal_run():
    return run_scene(num_frames=60, seed=SEED, noise=LITERAL_NOISE)


def _settled(records, object_id: int, settle_s: float) -> list[bool]:
    """Per record: the object has been seen whole for at least ``settle_s`` without a break."""
    out, start = [], None
    for record in records:
        if fully_visible(record, object_id):
            start = record.stamp_ns if start is None else start
            out.append((record.stamp_ns - start) * 1e-9 >= settle_s)
        else:
            start = None
            out.append(False)
    return out


def _frames(run, whole_only: bool) -> list[TrackFrame]:
    settled = {oid: _settled(run.records, oid, 0.5) for oid in OBJECT_IDS.values()}
    frames = []
    for k, record in enumerate(run.records):
        truth = [obj for obj in record.truth
                 if record.visible[obj.object_id] >= 30
                 and (not whole_only or fully_visible(record, obj.object_id))]
        tracks = record.output.tracks
        frames.append(TrackFrame(
            stamp_ns=record.stamp_ns, camera=record.camera,
            truth_ids=np.array([obj.object_id for obj in truth], np.int64),
            truth_positions=np.array([obj.centre for obj in truth]).reshape(-1, 3),
            truth_velocities=np.array([obj.velocity for obj in truth]).reshape(-1, 3),
            track_ids=np.array([t.track_id for t in tracks], np.int64),
            track_positions=np.array([t.position for t in tracks]).reshape(-1, 3),
            track_velocities=np.array([t.velocity for t in tracks]).reshape(-1, 3),
            truth_settled=np.array([settled[obj.object_id][k] for obj in truth], bool),
        ))
    return frames


def test_every_object_keeps_one_id(run):
    metrics = track_metrics(_frames(run, whole_only=False), max_distance=0.3 * run.scale)
    assert set(metrics.ids_per_object) == set(OBJECT_IDS.values())
    assert all(len(ids) == 1 for ids in metrics.ids_per_object.values()), metrics
    assert metrics.id_switches == 0
    assert metrics.recall > 0.9 and metrics.precision > 0.9, metrics


def test_position_and_velocity_errors(run):
    metrics = track_metrics(_frames(run, whole_only=True), max_distance=0.3 * run.scale)
    assert metrics.matches > 60, metrics
    assert metrics.position_error_max < 0.05, metrics  # measured 2.3 %
    errors = metrics.velocity_error_per_object
    assert set(errors) == set(OBJECT_IDS.values())
    assert errors[OBJECT_IDS['ball']] < VELOCITY_GOAL, metrics  # measured 5.7 %
    assert errors[OBJECT_IDS['crate']] < VELOCITY_GOAL, metrics  # measured 9.2 %


def test_height_of_the_turning_crate_is_steady(run):
    """The crate's vertical velocity error stays small (free 3D motion).

    Its centre height is the top of the visible points minus the track's average depth
    below the top, which does not move as the turning box shows other faces (with each
    frame's own height: 9.4 % of the speed; measured 3.3 %, 2.9 % with the surface centre's
    measurement noise: the box-fit centre's is 0.7 of it, ``box_fit_noise_factor``, and the
    three axes share it).
    """
    frames = _frames(run, whole_only=True)
    crate = OBJECT_IDS['crate']
    vertical, speeds = [], []
    for frame in frames:
        for i, truth_id in enumerate(frame.truth_ids):
            if truth_id != crate or not frame.truth_settled[i] or not len(frame.track_ids):
                continue
            distance = np.linalg.norm(frame.track_positions - frame.truth_positions[i], axis=1)
            if distance.min() > 0.3 * run.scale:
                continue
            track = int(np.argmin(distance))
            vertical.append(frame.track_velocities[track, 2] - frame.truth_velocities[i, 2])
            speeds.append(np.linalg.norm(frame.truth_velocities[i]))
    assert len(vertical) >= 10
    ratio = np.sqrt(np.mean(np.square(vertical))) / np.sqrt(np.mean(np.square(speeds)))
    assert ratio < 0.06, ratio  # measured 3.3 %


def test_dynamic_cloud_points_lie_on_moving_objects(run):
    scene = SyntheticScene(SceneConfig(num_frames=60, fps=FPS, seed=SEED, supersample=1))
    on_object, total = 0, 0
    for record in run.records:
        for cloud in record.output.clouds:
            points = cloud.points.astype(np.float64) / run.scale
            near = _near_objects(scene, record.index, points, tolerance=0.06)
            on_object += int(near.sum())
            total += len(points)
    assert total > 10_000
    assert on_object / total >= 0.95, on_object / total


def _near_objects(scene: SyntheticScene, index: float, points: np.ndarray,
                  tolerance: float) -> np.ndarray:
    """[N] bool: points within ``tolerance`` metres of the ball's or the crate's surface."""
    ball_centre, _ = scene.ball_state(index)
    crate_centre, crate_rotation = scene.crate_state(index)
    ball = np.abs(np.linalg.norm(points - ball_centre, axis=1) - 0.35) <= tolerance
    local = (points - crate_centre) @ crate_rotation
    crate = np.all(np.abs(local) <= np.array([0.35, 0.22, 0.3]) + tolerance, axis=1)
    return ball | crate


def test_dynamic_cells_clear_within_one_second(run):
    grid_cfg = run.perception.config.grid
    history = []  # (stamp, object xy in metres)
    checked = 0
    for record in run.records:
        history.append((record.stamp_ns, [obj.centre[:2] / run.scale for obj in record.truth]))
        grids = record.output.grids
        rows, cols = np.nonzero(grids.dynamic == OCCUPIED)
        if not len(rows):
            continue
        centres = (np.stack([cols + 0.5, rows + 0.5], axis=1) * grid_cfg.resolution
                   + np.asarray(grid_cfg.origin_xy)) / run.scale
        recent = [xy for stamp, objects in history
                  if record.stamp_ns - stamp <= 1e9 for xy in objects]
        distance = np.min([np.linalg.norm(centres - xy, axis=1) for xy in recent], axis=0)
        # Footprint radius (crate half-diagonal 0.41 m) plus two cells and the pose error.
        assert distance.max() < 0.41 + 0.2 + 0.1, (record.index, distance.max())
        checked += len(rows)
    assert checked > 100


def test_dynamic_grid_marks_the_objects(run):
    grid_cfg = run.perception.config.grid
    marked = 0
    for record in run.records[8:]:
        grids = record.output.grids
        rows, cols = np.nonzero(grids.dynamic == OCCUPIED)
        centres = (np.stack([cols + 0.5, rows + 0.5], axis=1) * grid_cfg.resolution
                   + np.asarray(grid_cfg.origin_xy)) / run.scale
        for obj in record.truth:
            if fully_visible(record, obj.object_id) and len(centres):
                marked += bool((np.linalg.norm(centres - obj.centre[:2] / run.scale,
                                               axis=1) < 0.45).any())
    assert marked > 60


def test_literal_noise_keeps_ids(literal_run):
    metrics = track_metrics(_frames(literal_run, whole_only=False),
                            max_distance=0.3 * literal_run.scale)
    assert set(metrics.ids_per_object) == set(OBJECT_IDS.values())
    assert all(len(ids) == 1 for ids in metrics.ids_per_object.values()), metrics
    assert metrics.id_switches == 0
    assert metrics.recall > 0.9 and metrics.precision > 0.9, metrics


def test_literal_noise_errors(literal_run):
    """Issue 15's done-when with its literal noise (per-window Sim(3) only).

    Both meet the velocity goal: ball measured 4.6 %, crate 6.8 % (with the surface centre
    10.4 %: the turning box's visible surface slides, docs/perception.md). Position:
    measured max 1.7 %.
    """
    metrics = track_metrics(_frames(literal_run, whole_only=True),
                            max_distance=0.3 * literal_run.scale)
    assert metrics.matches > 60, metrics
    assert metrics.position_error_max < 0.05, metrics
    errors = metrics.velocity_error_per_object
    assert set(errors) == set(OBJECT_IDS.values())
    assert errors[OBJECT_IDS['ball']] < VELOCITY_GOAL, metrics
    assert errors[OBJECT_IDS['crate']] < VELOCITY_GOAL, metrics
