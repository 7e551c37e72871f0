# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the perception parts with hand-made frames (no engine)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from vggt4d_ros.perception.config import DynamicPointsConfig
from vggt4d_ros.perception.config import GridConfig
from vggt4d_ros.perception.config import InstanceConfig
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.perception.config import TrackerConfig
from vggt4d_ros.perception.batch import stack_frames
from vggt4d_ros.perception.dynamic_points import dynamic_points as batch_points
from vggt4d_ros.perception.instances import connected_components
from vggt4d_ros.perception.instances import Instance
from vggt4d_ros.perception.instances import label_image as batch_labels
from vggt4d_ros.perception.observation import FrameObservation
from vggt4d_ros.perception.occupancy import FREE
from vggt4d_ros.perception.occupancy import OCCUPIED
from vggt4d_ros.perception.occupancy import OccupancyMapper
from vggt4d_ros.perception.occupancy import UNKNOWN
from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.perception.tracker import Tracker

K = np.array([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]])
IDENTITY = np.eye(4)
MS = 1_000_000


def _obs(mask, depth, stamp_ns=0, pose=IDENTITY, conf=None, scale=1.0, segment=0):
    mask = np.asarray(mask, bool)
    depth = np.broadcast_to(np.asarray(depth, np.float32), mask.shape).copy()
    return FrameObservation(stamp_ns=stamp_ns, depth=depth, depth_scale=scale, conf=conf,
                            intrinsics=K, world_from_camera=pose, mask=mask, segment=segment)


class _Points:
    """One frame's points on the host (the batched stage on a batch of one)."""

    def __init__(self, obs, config, output_from_world):
        points = batch_points(stack_frames([obs], output_from_world), config)
        count = int(points.count[0])
        index = points.index[0, :count].numpy()
        self.rows, self.cols = index // obs.depth.shape[1], index % obs.depth.shape[1]
        self.output = points.output[0, :count].numpy()
        self.rgb = points.rgb[0, :count].numpy()

    def __len__(self):
        return len(self.rows)


def dynamic_points(obs, config, output_from_world):
    return _Points(obs, config, output_from_world)


def label_image(mask, depth, config):
    """Labels of one frame: ([h,w] labels, used pixel counts, small, excess)."""
    labels = batch_labels(torch.as_tensor(np.asarray(mask, bool))[None],
                          torch.as_tensor(np.asarray(depth, np.float32))[None], config)
    assert labels.converged
    counts = labels.pixels[0].numpy()
    return (labels.labels[0].numpy(), counts[counts > 0], int(labels.small[0]),
            int(labels.excess[0]))


def _instance(centre, box=(0, 0, 5, 5), size=(0.4, 0.4, 0.4)) -> Instance:
    return Instance(1, 100, box, np.asarray(centre, float), np.asarray(size, float), 3.0)


# -- dynamic points ---------------------------------------------------------------------------

def test_dynamic_points_unproject_with_pose_and_scale():
    mask = np.zeros((48, 64), bool)
    mask[23, 31] = mask[23, 41] = True  # row 23, 0.5 px above cy; columns 31 and 41
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 2.0, 3.0]
    points = dynamic_points(_obs(mask, 2.0, pose=pose, scale=1.5),
                            DynamicPointsConfig(conf_percentile=0), np.eye(4))
    # depth 2 * scale 1.5 = 3; column 41 is 9.5 px right of cx=31.5 -> x = 9.5 / 50 * 3.
    y = 2.0 - 0.5 / 50 * 3
    np.testing.assert_allclose(points.output, [[1.0 - 0.5 / 50 * 3, y, 6.0],
                                               [1.0 + 9.5 / 50 * 3, y, 6.0]])
    assert points.rgb.shape == (2, 3)


def test_dynamic_points_drop_unconfident_and_invalid_depth():
    mask = np.ones((48, 64), bool)
    depth = np.full((48, 64), 2.0, np.float32)
    depth[0, :] = 0.0
    depth[1, :] = np.nan
    conf = np.full((48, 64), 5.0, np.float32)
    conf[2, :] = 1.0
    points = dynamic_points(_obs(mask, depth, conf=conf),
                            DynamicPointsConfig(min_conf=2.0, conf_percentile=0), np.eye(4))
    assert len(points) == 45 * 64 and points.rows.min() == 3


def test_dynamic_points_bounded_and_deterministic():
    mask = np.ones((48, 64), bool)
    config = DynamicPointsConfig(max_points_per_frame=100, conf_percentile=0)
    first = dynamic_points(_obs(mask, 2.0), config, np.eye(4))
    second = dynamic_points(_obs(mask, 2.0), config, np.eye(4))
    assert len(first) == 100
    np.testing.assert_array_equal(first.output, second.output)
    assert first.rows.min() == 0 and first.rows.max() == 47  # spread over the whole frame


def test_no_dynamic_pixels_gives_an_empty_output():
    tracker = PerceptionTracker(PerceptionConfig(grid=GridConfig(ground_z=-1.0)))
    out = tracker.update([_obs(np.zeros((48, 64)), 2.0, stamp_ns=MS)])
    assert len(out.clouds) == 1 and len(out.clouds[0].points) == 0
    assert out.tracks == [] and out.grids is not None
    assert (out.grids.dynamic != OCCUPIED).all()
    assert tracker.stats.empty_frames == 1


# -- instances --------------------------------------------------------------------------------

def test_depth_jump_splits_overlapping_objects():
    mask = np.zeros((48, 64), bool)
    mask[10:30, 10:40] = True
    depth = np.full((48, 64), 2.0)
    depth[10:30, 25:40] = 3.0  # the right half is a second object 1 m behind
    labels, counts, small, excess = label_image(mask, depth, InstanceConfig(min_pixels=10))
    assert len(counts) == 2 and small == 0 and excess == 0
    assert len(np.unique(labels[10:30, 10:25])) == 1 and labels[15, 12] != labels[15, 35]
    # Without a jump it is one object.
    labels, counts, _, _ = label_image(mask, np.full((48, 64), 2.0), InstanceConfig())
    assert len(counts) == 1


def test_hundreds_of_tiny_blobs_make_no_instances_and_are_counted():
    mask = np.zeros((48, 64), bool)
    mask[::3, ::3] = True  # 16 x 22 = 352 single-pixel blobs
    labels, counts, small, excess = label_image(mask, np.full((48, 64), 2.0), InstanceConfig())
    assert len(counts) == 0 and small == 352 and not labels.any()
    tracker = PerceptionTracker()
    out = tracker.update([_obs(mask, 2.0, stamp_ns=MS)])
    assert len(out.clouds[0].points) == 352 and not out.clouds[0].object_ids.any()
    assert tracker.tracker.live_tracks == 0 and tracker.stats.small_parts == 352
    assert tracker.stats.detections == 0


def test_connected_components_of_long_thin_and_nested_shapes():
    """A spiral (a long geodesic path) and a ring around a blob: exact parts, converged."""
    mask = np.zeros((40, 40), bool)
    mask[1, 1:39] = mask[1:39, 38] = mask[38, 1:39] = mask[4:39, 1] = True  # outer spiral
    mask[4, 1:35] = mask[4:35, 34] = mask[34, 5:35] = True
    mask[15:25, 15:25] = True  # a separate blob inside
    root, converged = connected_components(torch.from_numpy(mask)[None], 256)
    assert converged
    root = root[0].numpy()
    assert len(np.unique(root[mask])) == 2
    assert root[1, 1] == 1 * 40 + 1 and root[20, 20] == 15 * 40 + 15  # first pixel, raster
    # Bounded: cut off before convergence, the labelling says so.
    _, converged = connected_components(torch.from_numpy(mask)[None], 4)
    assert not converged


def test_instance_count_is_bounded_largest_first():
    mask = np.zeros((48, 64), bool)
    for k in range(6):  # blobs of growing size
        mask[2 + 7 * k: 2 + 7 * k + 5, 2: 2 + 5 + 5 * k] = True
    labels, counts, small, excess = label_image(
        mask, np.full((48, 64), 2.0), InstanceConfig(min_pixels=1, max_instances=4))
    assert list(counts) == sorted(counts, reverse=True) and len(counts) == 4 and excess == 2
    assert labels[2 + 7 * 5, 2] == 1  # the largest blob is label 1


# -- tracker ----------------------------------------------------------------------------------

def test_constant_velocity_track_confirms_and_estimates_velocity():
    tracker = Tracker(TrackerConfig(confirm_hits=3))
    velocity = np.array([0.5, -0.2, 0.0])
    for k in range(30):
        ids = tracker.update(k * 66 * MS, [_instance(velocity * k * 0.066)])
        assert list(ids) == ([0] if k < 2 else [1])
    (track,) = tracker.tracks()
    assert track.track_id == 1 and track.hits == 30
    np.testing.assert_allclose(track.velocity, velocity, atol=0.01)
    np.testing.assert_allclose(track.position, velocity * 29 * 0.066, atol=0.01)


@pytest.mark.parametrize('model', ['constant_velocity', 'constant_acceleration'])
def test_motion_models_on_a_circle(model):
    """Circular motion (1 unit/s, 1.25 units/s^2 inward) at 15 fps, exact centres at range 3.

    The filter weighs the centres with the default measurement noise (1.8 cm at range 3), so
    both models smooth; the constant-velocity model lags behind the turn (RMS velocity error
    13 % of the speed), the constant-acceleration model follows it (6 %): the default.
    """
    tracker = Tracker(TrackerConfig(motion_model=model))
    radius, omega, dt = 0.8, 1.25, 1.0 / 15.0
    errors = []
    for k in range(45):
        angle = omega * k * dt
        centre = radius * np.array([np.cos(angle), np.sin(angle), 0.0])
        tracker.update(int(round(k * dt * 1e9)), [_instance(centre)])
        if k * dt >= 1.0:
            (track,) = tracker.tracks()
            truth = radius * omega * np.array([-np.sin(angle), np.cos(angle), 0.0])
            errors.append(np.linalg.norm(track.velocity - truth) / (radius * omega))
    error = float(np.sqrt(np.mean(np.square(errors))))
    if model == 'constant_acceleration':
        assert error < 0.08, error  # measured 6 %
    else:
        assert error > 0.10, error  # measured 13 %


def test_kalman_orders_agree_on_a_still_object():
    """Both models converge on the position of a still object and a zero velocity."""
    for model in ('constant_velocity', 'constant_acceleration'):
        tracker = Tracker(TrackerConfig(motion_model=model))
        for k in range(20):
            tracker.update(k * 66 * MS, [_instance([1.0, 2.0, 0.5])])
        (track,) = tracker.tracks()
        np.testing.assert_allclose(track.position, [1.0, 2.0, 0.5], atol=1e-6)
        np.testing.assert_allclose(track.velocity, 0.0, atol=1e-6)
    with pytest.raises(ValueError, match='motion_model'):
        TrackerConfig(motion_model='jumpy')


def test_planar_motion_keeps_vertical_velocity_zero():
    """A height that jitters (+-2 cm) gives a vertical velocity in 3D, none when planar."""
    rng = np.random.default_rng(3)
    heights = 0.5 + rng.uniform(-0.02, 0.02, 30)
    vertical = {}
    for planar in (False, True):
        tracker = Tracker(TrackerConfig(planar_motion=planar))
        speeds = []
        for k in range(30):
            tracker.update(k * 66 * MS, [_instance([0.5 * k * 0.066, 0.0, heights[k]])])
            if k >= 10:
                (track,) = tracker.tracks()
                speeds.append(track.velocity[2])
        np.testing.assert_allclose(track.velocity[:2], [0.5, 0.0], atol=0.05)
        assert abs(track.position[2] - 0.5) < 0.02
        vertical[planar] = float(np.sqrt(np.mean(np.square(speeds))))
    assert vertical[True] == 0.0 and vertical[False] > 0.02, vertical


def test_two_objects_keep_their_ids_by_optimal_assignment():
    tracker = Tracker()
    for k in range(20):
        t = k * 0.066
        ids = tracker.update(int(t * 1e9), [_instance([t * 0.5, 0.0, 0.0]),
                                            _instance([t * -0.5, 1.0, 0.0])][::(-1) ** k])
    tracks = {tr.track_id: tr for tr in tracker.tracks()}
    assert set(tracks) == {1, 2} and tracker.stats.births == 2
    assert tracks[1].velocity[0] * tracks[2].velocity[0] < 0
    del ids


def test_track_death_reentry_and_reset():
    config = TrackerConfig(max_miss_s=1.0, publish_coasting_s=0.5)
    tracker = Tracker(config)
    stamp = 0
    for _ in range(5):
        stamp += 100 * MS
        tracker.update(stamp, [_instance([0.0, 0.0, 0.0])])
    # Gone for 0.4 s: still output (coasting); back within 1 s at the same place: same id.
    for _ in range(4):
        stamp += 100 * MS
        tracker.update(stamp, [])
    assert [t.track_id for t in tracker.tracks()] == [1]
    stamp += 100 * MS
    assert list(tracker.update(stamp, [_instance([0.0, 0.0, 0.0])])) == [1]
    # Gone for longer than max_miss_s: deleted; coming back later gives a new id.
    for _ in range(12):
        stamp += 100 * MS
        tracker.update(stamp, [])
    assert tracker.tracks() == [] and tracker.live_tracks == 0 and tracker.stats.deaths == 1
    # The counters are Python ints: the replay writes them to metrics.json.
    json.dumps(dataclasses.asdict(tracker.stats))
    for _ in range(3):
        stamp += 100 * MS
        ids = tracker.update(stamp, [_instance([0.0, 0.0, 0.0])])
    assert list(ids) == [2]
    tracker.reset()
    assert tracker.tracks() == [] and tracker.live_tracks == 0
    # After a reset time may restart; ids keep counting up (never reused).
    for k in range(3):
        ids = tracker.update(k * MS, [_instance([5.0, 0.0, 0.0])])
    assert list(ids) == [3]


def test_frames_not_newer_are_skipped_and_counted():
    tracker = Tracker()
    tracker.update(10 * MS, [_instance([0, 0, 0])])
    assert tracker.update(10 * MS, [_instance([0, 0, 0])]) is None
    assert tracker.update(5 * MS, []) is None
    assert tracker.stats.out_of_order == 2


def test_track_memory_is_bounded():
    tracker = Tracker(TrackerConfig(max_tracks=8))
    rng = np.random.default_rng(0)
    for k in range(50):
        tracker.update(k * 66 * MS, [_instance(rng.uniform(-50, 50, 3)) for _ in range(20)])
        assert tracker.live_tracks <= 8
    assert tracker.stats.full > 0


# -- occupancy --------------------------------------------------------------------------------

def _grid_config(**kwargs) -> GridConfig:
    base = dict(resolution=0.1, width=40, height=40, origin_xy=(-2.0, -2.0), ground_z=0.0,
                min_height=0.1, max_height=1.5, dynamic_decay_s=0.5)
    base.update(kwargs)
    return GridConfig(**base)


def _cell(config: GridConfig, x: float, y: float) -> tuple[int, int]:
    return (int(np.floor((y - config.origin_xy[1]) / config.resolution)),
            int(np.floor((x - config.origin_xy[0]) / config.resolution)))


def test_static_marks_and_free_space_between():
    config = _grid_config()
    grid = OccupancyMapper(config)
    wall = np.stack([np.full(21, 1.55), np.linspace(-1.0, 1.0, 21), np.full(21, 0.5)], axis=1)
    grid.integrate(MS, np.array([-1.55, 0.0, 0.5]), wall, np.zeros((0, 3)))
    grids = grid.grids()
    assert grids.static[_cell(config, 1.55, 0.0)] == OCCUPIED
    assert grids.static[_cell(config, 0.0, 0.0)] == FREE  # on the rays
    assert grids.static[_cell(config, 0.0, 1.8)] == UNKNOWN  # never seen
    assert grids.combined[_cell(config, 1.55, 0.0)] == OCCUPIED
    # Floor points (below the band) clear but do not mark.
    floor = np.array([[1.05, 1.05, 0.0]])
    grid.integrate(2 * MS, np.array([-1.55, 0.0, 0.5]), floor, np.zeros((0, 3)))
    assert grid.grids().static[_cell(config, 1.05, 1.05)] == UNKNOWN


def test_dynamic_cells_clear_when_seen_free_and_decay_when_unseen():
    config = _grid_config()
    grid = OccupancyMapper(config)
    camera = np.array([-1.55, 0.0, 0.5])
    wall = np.stack([np.full(41, 1.55), np.linspace(-1.9, 1.9, 41), np.full(41, 0.5)], axis=1)
    person = np.array([[0.05, 0.05, 0.8]])
    grid.integrate(0, camera, wall, person)
    cell = _cell(config, 0.05, 0.05)
    assert grid.grids().dynamic[cell] == OCCUPIED
    assert grid.grids().combined[cell] == OCCUPIED and grid.grids().static[cell] != OCCUPIED
    # The person walked away; the camera sees the wall behind: the cell is free at once.
    grid.integrate(100 * MS, camera, wall, np.array([[0.05, 1.05, 0.8]]))
    assert grid.grids().dynamic[cell] == FREE
    assert grid.grids().dynamic[_cell(config, 0.05, 1.05)] == OCCUPIED
    # Nothing observed near the new cell for longer than the decay: unknown again.
    grid.integrate(700 * MS, camera, np.zeros((0, 3)), np.zeros((0, 3)))
    assert grid.grids().dynamic[_cell(config, 0.05, 1.05)] == UNKNOWN
    grid.reset()
    assert (grid.grids().dynamic == UNKNOWN).all() and (grid.grids().static == UNKNOWN).all()


def test_grid_config_rejects_bad_values():
    with pytest.raises(ValueError):
        GridConfig(resolution=0.0)
    with pytest.raises(ValueError):
        GridConfig(min_height=1.0, max_height=0.5)
    with pytest.raises(ValueError):
        PerceptionConfig(output_from_world=np.diag([2.0, 1.0, 1.0, 1.0]))


# -- the whole per-frame path -----------------------------------------------------------------

def _blob_frame(stamp_ns: int, column: int, segment: int = 0) -> FrameObservation:
    mask = np.zeros((48, 64), bool)
    mask[15:30, column:column + 12] = True
    depth = np.where(mask, 2.0, 4.0).astype(np.float32)
    return _obs(mask, depth, stamp_ns=stamp_ns, segment=segment)


def test_object_leaving_and_reentering_and_segment_reset():
    tracker = PerceptionTracker(PerceptionConfig(
        tracker=TrackerConfig(max_miss_s=0.5), grid=_grid_config(ground_z=-1.0)))
    stamp = 0
    for k in range(10):
        stamp += 66 * MS
        out = tracker.update([_blob_frame(stamp, 10 + k)])
    assert [t.track_id for t in out.tracks] == [1]
    assert set(np.unique(out.clouds[-1].object_ids)) == {1}
    for _ in range(15):  # out of view for 1 s > max_miss_s
        stamp += 66 * MS
        out = tracker.update([_obs(np.zeros((48, 64)), 4.0, stamp_ns=stamp)])
    assert out.tracks == []
    for _ in range(4):  # back: a new id
        stamp += 66 * MS
        out = tracker.update([_blob_frame(stamp, 30)])
    assert [t.track_id for t in out.tracks] == [2]
    # A new map segment: everything restarts (stamps may even go back).
    out = tracker.update([_blob_frame(MS, 30, segment=1)])
    assert out.tracks == [] and tracker.stats.resets == 1 and out.skipped == 0


@pytest.mark.parametrize('frames, grid', [(10_000, False), (500, True)])
def test_bounded_memory_over_many_frames(frames, grid):
    """Track state stays bounded over 10,000 frames of objects popping up anywhere.

    The grids are fixed arrays (their size is checked over a shorter run: 10,000 grid
    updates would only cost time on the shared CI machine).
    """
    config = PerceptionConfig(tracker=TrackerConfig(max_tracks=16),
                              grid=_grid_config(ground_z=-1.0, pixel_stride=16, enabled=grid))
    tracker = PerceptionTracker(config)
    grid_bytes = tracker.grid.state_bytes if grid else 0
    rng = np.random.default_rng(1)
    for k in range(frames):
        mask = np.zeros((24, 32), bool)
        for _ in range(rng.integers(0, 6)):  # random objects appearing anywhere
            r, c = rng.integers(0, 18), rng.integers(0, 26)
            mask[r:r + 6, c:c + 6] = True
        depth = np.where(mask, rng.uniform(1.0, 3.0), 4.0).astype(np.float32)
        obs = FrameObservation(stamp_ns=(k + 1) * 33 * MS, depth=depth, depth_scale=1.0,
                               conf=None, intrinsics=K / 2 + np.diag([0, 0, 0.5]),
                               world_from_camera=IDENTITY, mask=mask)
        out = tracker.update([obs])
        assert tracker.tracker.live_tracks <= 16 and len(out.tracks) <= 16
    if grid:
        assert tracker.grid.state_bytes == grid_bytes
    assert tracker.stats.frames == frames and tracker.tracker.stats.births > frames // 100
    # Every detection is assigned to a track or starts one (or finds the track table full).
    stats = tracker.tracker.stats
    assert tracker.stats.detections >= stats.assignments + stats.births > 0
