# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Tracking metrics on hand-computed cases, and the synthetic scene's object ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from vggt4d_ros.replay.synthetic import object_id_image
from vggt4d_ros.replay.synthetic import object_pixels_unoccluded
from vggt4d_ros.replay.synthetic import object_truth
from vggt4d_ros.replay.synthetic import OBJECT_IDS
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticOracleView
from vggt4d_ros.replay.synthetic import SyntheticScene
from vggt4d_ros.replay.track_metrics import match_frame
from vggt4d_ros.replay.track_metrics import track_metrics
from vggt4d_ros.replay.track_metrics import TrackFrame


def _frame(stamp_s, truth, tracks, camera=(0.0, 0.0, 0.0)):
    """truth / tracks: lists of (id, position, velocity)."""
    def split(items):
        ids = np.array([i for i, _, _ in items], np.int64)
        pos = np.array([p for _, p, _ in items], float).reshape(-1, 3)
        vel = np.array([v for _, _, v in items], float).reshape(-1, 3)
        return ids, pos, vel

    t_ids, t_pos, t_vel = split(truth)
    k_ids, k_pos, k_vel = split(tracks)
    return TrackFrame(int(stamp_s * 1e9), np.array(camera, float), t_ids, t_pos, t_vel,
                      k_ids, k_pos, k_vel)


def test_match_frame_is_optimal_and_gated():
    truth = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    tracks = np.array([[0.9, 0, 0], [1.8, 0, 0], [5.0, 0, 0]])
    # Greedy (closest pair first) would pair truth 1 with 0.9 and leave truth 0 unmatched
    # (1.8 is beyond the gate); the optimum matches both: 0 -> 0.9, 1 -> 1.8.
    assert match_frame(truth, tracks, 1.0) == [(0, 0), (1, 1)]
    assert match_frame(truth, tracks, 0.5) == [(1, 0)]
    assert match_frame(truth[:0], tracks, 1.0) == []


def test_hand_computed_scores():
    frames = [
        # t=0: object 1 at 10 m matched by track 5 (error 0.1 m -> 1 %), object 2 unmatched.
        _frame(0.0, [(1, (10, 0, 0), (1, 0, 0)), (2, (0, 10, 0), (0, 1, 0))],
               [(5, (10.1, 0, 0), (0, 0, 0))]),
        # t=1: object 1 matched by track 6 (a switch), error 0.2 m (2 %), velocity error 0.5.
        _frame(1.0, [(1, (11, 0, 0), (1, 0, 0))],
               [(6, (11.2, 0, 0), (1.5, 0, 0)), (9, (50, 0, 0), (0, 0, 0))]),
        # t=2: back to track 5 (a second switch), exact, velocity error 0.
        _frame(2.0, [(1, (12, 0, 0), (1, 0, 0))], [(5, (12, 0, 0), (1, 0, 0))]),
    ]
    m = track_metrics(frames, max_distance=1.0, settle_s=0.5)
    assert (m.truth_count, m.track_count, m.matches) == (4, 4, 3)
    assert m.recall == pytest.approx(3 / 4) and m.precision == pytest.approx(3 / 4)
    assert m.id_switches == 2 and m.ids_per_object == {1: [5, 6]}
    assert m.position_error_mean == pytest.approx((0.1 / 10 + 0.2 / 11 + 0.0) / 3)
    assert m.position_error_max == pytest.approx(0.2 / 11)
    # Velocity from t >= 0.5 s after the first match: errors 0.5 and 0, speed 1 -> RMS 0.354.
    assert m.velocity_error_mean == pytest.approx(np.sqrt((0.25 + 0.0) / 2))
    assert m.to_dict()['ids_per_object'] == {'1': [5, 6]}


def test_settled_flags_select_the_velocity_frames():
    frames = [_frame(0.0, [(1, (1, 0, 0), (2, 0, 0))], [(1, (1, 0, 0), (0, 0, 0))]),
              _frame(1.0, [(1, (3, 0, 0), (2, 0, 0))], [(1, (3, 0, 0), (2.2, 0, 0))])]
    frames[0].truth_settled = np.array([True])
    frames[1].truth_settled = np.array([False])
    m = track_metrics(frames, max_distance=1.0)
    assert m.velocity_error_mean == pytest.approx(1.0)  # only t=0 counts: |0 - 2| / 2
    empty = track_metrics([], max_distance=1.0)
    assert np.isnan(empty.recall) and np.isnan(empty.velocity_error_mean)


def test_object_truth_velocity_is_the_derivative_of_the_centre():
    scene = SyntheticScene(SceneConfig(num_frames=30, fps=10.0, seed=3))
    h = 1e-4  # in frames
    for index in (0.0, 7.5, 20.0):
        now, later = object_truth(scene, index), object_truth(scene, index + h)
        for a, b in zip(now, later):
            finite = (b.centre - a.centre) / (h / scene.config.fps)
            np.testing.assert_allclose(a.velocity, finite, atol=1e-3)
    assert [o.object_id for o in now] == [OBJECT_IDS['ball'], OBJECT_IDS['crate']]


def test_object_ids_match_the_rendered_dynamic_mask():
    config = SceneConfig(num_frames=12, width=64, height=48, seed=0, supersample=1)
    scene = SyntheticScene(config)
    frame = scene.render(5)
    ids = object_id_image(scene, 5, config.intrinsics(), (48, 64))
    np.testing.assert_array_equal(ids > 0, frame.dynamic_mask > 0)
    unoccluded = object_pixels_unoccluded(scene, 5, config.intrinsics(), (48, 64))
    for object_id, count in unoccluded.items():
        assert count >= (ids == object_id).sum()
    # The oracle view renders the same depth and mask as the scene itself.
    depth, dynamic, rgb = SyntheticOracleView(scene).render(5 / config.fps, config.intrinsics(),
                                                            (48, 64))
    np.testing.assert_allclose(depth, frame.depth, rtol=1e-5)
    np.testing.assert_array_equal(dynamic, frame.dynamic_mask > 0)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8


def test_whole_flags_select_the_position_frames_and_velocity_is_per_object():
    frames = [_frame(0.0, [(1, (10, 0, 0), (1, 0, 0)), (2, (0, 10, 0), (0, 2, 0))],
                     [(1, (10.5, 0, 0), (1, 0, 0)), (2, (0, 10.1, 0), (0, 1, 0))])]
    frames[0].truth_whole = np.array([False, True])  # object 1 partly hidden: not scored
    frames[0].truth_settled = np.array([True, True])
    m = track_metrics(frames, max_distance=1.0)
    assert m.matches == 2 and m.position_error_max == pytest.approx(0.01)
    assert m.velocity_error_per_object == {1: pytest.approx(0.0), 2: pytest.approx(0.5)}
    assert m.velocity_error_max == pytest.approx(0.5)
    assert m.to_dict()['velocity_error_per_object'] == {'1': 0.0, '2': 0.5}


def test_evaluation_takes_tracks_to_the_truth_frame():
    """A known Sim(3) and output frame: the tracks land exactly on the truth."""
    from vggt4d_ros.perception.config import default_output_from_world
    from vggt4d_ros.perception.tracker import Track
    from vggt4d_ros.replay.track_evaluation import evaluate_tracks
    from vggt4d_ros.replay.track_evaluation import TruthObjects

    angle = 0.4
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1.0]])
    alignment = np.eye(4)
    alignment[:3, :3] = 2.0 * rotation  # truth = 2 R estimate + t
    alignment[:3, 3] = [1.0, -2.0, 0.5]
    output_from_world = default_output_from_world()
    output_from_world[:3, 3] = [0.3, 0.0, -0.1]
    truth, windows, cameras = {}, [], {}
    for k in range(10):
        stamp = k * 100_000_000
        position = np.array([3.0 + 0.1 * k, 1.0, 0.4])
        velocity = np.array([1.0, 0.0, 0.0])
        truth[stamp] = TruthObjects(np.array([7]), position[None], velocity[None],
                                    np.array([1.0 if k < 8 else 0.5]))
        cameras[stamp] = np.zeros(3)
        # The same object in the output frame: invert truth = A (O^-1 p).
        world = np.linalg.solve(alignment[:3, :3], position - alignment[:3, 3])
        out_pos = output_from_world[:3, :3] @ world + output_from_world[:3, 3]
        out_vel = output_from_world[:3, :3] @ np.linalg.solve(alignment[:3, :3], velocity)
        if not 5 <= k < 8:  # wrong where the velocity must not be scored (see below)
            out_vel = 3.0 * out_vel
        windows.append((stamp, [Track(4, out_pos, out_vel, np.ones(3), stamp, 1.0, 5, 0.0,
                                      1.0, 0.0, 0.0)]))
    evaluation = evaluate_tracks(windows, truth, alignment, output_from_world, cameras)
    m = evaluation.metrics
    assert (m.matches, m.id_switches, m.ids_per_object) == (10, 0, {7: [4]})
    assert m.position_error_max == pytest.approx(0.0, abs=1e-9)
    assert m.velocity_error_max == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(evaluation.tracks[4][1], [truth[s].positions[0] for s in truth])
    # Velocity counts from 0.5 s seen whole (k = 5..7); k = 8, 9 are partly hidden.
    assert set(evaluation.truth) == {7} and len(evaluation.truth[7][0]) == 10
    np.testing.assert_allclose(np.linalg.norm(evaluation.tracks[4][2], axis=1),
                               [3.0] * 5 + [1.0] * 3 + [3.0] * 2)
    # Ground truth stamped 3 ms off is still associated (as the trajectory: 10 ms), 20 ms not.
    for shift, matches in ((3_000_000, 10), (20_000_000, 0)):
        shifted = {stamp + shift: objects for stamp, objects in truth.items()}
        cams = {stamp + shift: camera for stamp, camera in cameras.items()}
        result = evaluate_tracks(windows, shifted, alignment, output_from_world, cams)
        assert result.metrics.matches == matches
