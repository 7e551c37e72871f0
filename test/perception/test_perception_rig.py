# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Planner outputs of a multi-camera rig: every camera's view of a step is one time step.

The rig oracle (``mapping/testing.py``: a moving sphere in a box room, cameras fixed to the
moving rig) runs through the engine with perception on. Metric units (the oracle's per-window
scale is fixed at 1 here), so the output frame is the first reference camera's optical frame
turned z up, in metres, and the truth can be mapped into it exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.mapping.testing import OracleNoise
from vggt4d_ros.mapping.testing import rig_mount
from vggt4d_ros.perception.config import GridConfig
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.perception.config import TrackerConfig
from vggt4d_ros.perception.config import Z_UP_FROM_OPTICAL
from vggt4d_ros.perception.instances import FrameInstances
from vggt4d_ros.perception.instances import Instance
from vggt4d_ros.perception.observation import FrameObservation
from vggt4d_ros.perception.occupancy import UNKNOWN
from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.perception.rig_merge import merge_views
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.rig import RigSetup
from vggt4d_ros.runtime.window import WindowConfig

STEP = 100_000_000
MS = 1_000_000
HW = (48, 64)
JITTER = 2 * MS  # the second camera's stamps trail the reference camera's


STEREO = np.stack([rig_mount(), rig_mount(0.3)])
#: The side camera looks 70 degrees left: the sphere passes from the front camera to it.
FRONT_SIDE = np.stack([rig_mount(), rig_mount(0.1, -70.0)])
#: Scene times: the stereo pair sees the sphere together over 5.3-6.3 s; the front camera
#: alone over 0-0.4 s, both at 0.5-0.6 s, the side camera alone over 0.8-1.7 s.
STEREO_START_S = 5.2
GRID = GridConfig(resolution=0.1, width=100, height=100, origin_xy=(-5.0, -5.0),
                  ground_z=-1.6, min_height=0.1, max_height=2.0, pixel_stride=2)


def _config(motion_registration: bool = False) -> PerceptionConfig:
    return PerceptionConfig(grid=GRID,
                            tracker=TrackerConfig(motion_registration=motion_registration))


def _engine(rig: np.ndarray | None, start_s: float, motion_registration: bool = False
            ) -> PerceptionEngine:
    torch.set_num_threads(1)
    noise = OracleNoise(normalise=False, scale_range=(1.0, 1.0))
    backend = OracleBackend(network_hw=HW, seed=4, noise=noise, rig=rig,
                            start_ns=-int(round(start_s * 1e9)))
    window = WindowConfig(window_size=8, stride=4, mode='replay', min_parallax_px=0.0,
                          max_keyframe_interval_s=0.0)
    setup = None if rig is None else RigSetup(tuple(f'cam{v}' for v in range(len(rig))), rig)
    return PerceptionEngine(backend, window, MapperConfig(pixel_stride=2),
                            perception=_config(motion_registration), rig=setup)


def _run(engine: PerceptionEngine, steps: int) -> list:
    backend = engine.backend
    views = len(backend.rig)
    outputs = []
    for i in range(steps):
        if engine.rig is None:
            outputs += engine.push(backend.camera_image(i * STEP), i * STEP)
            continue
        stamps = [i * STEP + v * JITTER for v in range(views)]
        frames = [backend.camera_image(s, v) for v, s in enumerate(stamps)]
        outputs += engine.push_step(frames, stamps, [f'cam{v}' for v in range(views)])
    return outputs + engine.flush()


def _to_output(backend: OracleBackend, points: np.ndarray) -> np.ndarray:
    """Scene points [N,3] in the output frame (first reference camera, z up, metres)."""
    first = backend.camera_pose(0)
    camera = (np.asarray(points) - first[:3, 3]) @ first[:3, :3]
    return camera @ Z_UP_FROM_OPTICAL.T


def _sphere(backend: OracleBackend, stamp_ns: int) -> np.ndarray:
    return _to_output(backend, backend.scene.sphere_centre(backend.time_of(stamp_ns))[None])[0]


def _seen(backend: OracleBackend, stamp_ns: int, view: int) -> bool:
    return backend.true_mask(stamp_ns + view * JITTER, view).sum() >= 60


# -- merging in 3D ------------------------------------------------------------------------


def _instance(label: int, centre, size=0.5, pixels=100, view=0, box=(0, 0, 9, 9)) -> Instance:
    return Instance(label, pixels, box, np.asarray(centre, float), np.full(3, size), 2.0, view)


def _frame(*instances: Instance) -> FrameInstances:
    return FrameInstances(list(instances), np.zeros(0, np.int32))


def test_merge_views_joins_one_object_seen_twice_and_keeps_others_apart():
    config = TrackerConfig(gate_distance=0.25)
    front = _frame(_instance(1, [2.0, 0.0, 0.0], pixels=300),
                   _instance(2, [2.0, 0.4, 0.0], size=0.3))  # two objects side by side
    # The side camera sees the first object (centre 0.1 off) and a third one far away.
    side = _frame(_instance(1, [2.05, -0.08, 0.0], pixels=200, view=1, box=(5, 5, 20, 20)),
                  _instance(2, [0.0, 3.0, 0.0], pixels=50, view=1))
    merged, lookups = merge_views([front, side], config)
    assert [inst.pixels for inst in merged] == [500, 100, 50]  # largest first
    assert [inst.label for inst in merged] == [1, 2, 3]
    assert lookups[0].tolist() == [0, 1, 2] and lookups[1].tolist() == [0, 1, 3]
    both = merged[0]
    # Equal ranges: equal weights, the mean; the box is the union; box and view: view 0's.
    np.testing.assert_allclose(both.centre, [2.025, -0.04, 0.0])
    np.testing.assert_allclose(both.size, [0.55, 0.58, 0.5])
    assert both.view == 0 and both.box == (0, 0, 9, 9)
    assert both.range == pytest.approx(2.0 / np.sqrt(2.0))  # two measurements: noise / sqrt 2
    assert merged[2].view == 1 and merged[2].centre.tolist() == [0.0, 3.0, 0.0]


def test_merge_views_by_box_containment_and_never_within_one_camera():
    config = TrackerConfig(gate_distance=0.1)
    # Seen from two sides: centres 0.3 apart (beyond the gate), each inside the other's box.
    merged, _ = merge_views([_frame(_instance(1, [1.0, 0.0, 0.0], size=0.8)),
                             _frame(_instance(1, [1.3, 0.0, 0.0], size=0.8, view=1))], config)
    assert len(merged) == 1
    # Two instances of one camera stay two objects however close (the camera split them).
    merged, _ = merge_views([_frame(_instance(1, [1.0, 0.0, 0.0]),
                                    _instance(2, [1.05, 0.0, 0.0]))], config)
    assert len(merged) == 2
    # Two cameras, two objects each: the optimal assignment pairs them right.
    merged, lookups = merge_views([
        _frame(_instance(1, [1.0, 0.0, 0.0], size=0.2), _instance(2, [1.15, 0.0, 0.0], size=0.2)),
        _frame(_instance(1, [1.14, 0.0, 0.0], size=0.2, view=1),
               _instance(2, [1.02, 0.0, 0.0], size=0.2, view=1))], config)
    assert len(merged) == 2 and lookups[1].tolist() == [0, 2, 1]


# -- the rig through the engine ------------------------------------------------------------


@pytest.fixture(scope='module')
def stereo():
    engine = _engine(STEREO, STEREO_START_S)
    return engine, _run(engine, 12)


def test_stereo_object_seen_by_both_cameras_keeps_one_id_and_one_track(stereo):
    engine, outputs = stereo
    backend = engine.backend
    both = [i * STEP for i in range(12) if _seen(backend, i * STEP, 0)
            and _seen(backend, i * STEP, 1)]
    assert len(both) >= 8  # the scene does what the test needs
    ids = {track.track_id for out in outputs for track in out.perception.tracks}
    assert ids == {1}
    tracker = engine.perception.tracker
    # One object, one track: the second camera's detection merged, no second (tentative) one.
    assert tracker.stats.births == 1 and tracker.live_tracks == 1
    assert tracker.stats.frames == engine.perception.stats.steps == 12
    assert engine.perception.stats.frames == 24
    checked = 0
    for out in outputs:
        stamp = out.perception.stamp_ns
        if all(backend.true_mask(stamp + v * JITTER, v).sum() >= 100 for v in (0, 1)):
            (track,) = out.perception.tracks  # seen whole by both cameras
            # Metres; the sphere's radius is 0.4.
            assert np.linalg.norm(track.position - _sphere(backend, stamp)) < 0.1
            checked += 1
    assert checked >= 3


def test_stereo_motion_registration_uses_both_cameras_points():
    """With motion registration, the merged object's points (both cameras) are registered."""
    engine = _engine(STEREO, STEREO_START_S, motion_registration=True)
    outputs = _run(engine, 12)
    backend = engine.backend
    assert {track.track_id for out in outputs for track in out.perception.tracks} == {1}
    tracker = engine.perception.tracker
    assert tracker.stats.births == 1 and tracker.stats.registered >= 8, tracker.stats
    checked = 0
    for out in outputs:
        stamp = out.perception.stamp_ns
        if all(backend.true_mask(stamp + v * JITTER, v).sum() >= 100 for v in (0, 1)):
            (track,) = out.perception.tracks
            assert np.linalg.norm(track.position - _sphere(backend, stamp)) < 0.1
            checked += 1
    assert checked >= 3


def test_stereo_step_cloud_holds_both_cameras_points_at_the_step_stamp(stereo):
    engine, outputs = stereo
    backend = engine.backend
    clouds = [cloud for out in outputs for cloud in out.perception.clouds]
    # One cloud per step, stamped with the step (the reference camera), not the jittered view.
    assert [cloud.stamp_ns for cloud in clouds] == [i * STEP for i in range(12)]
    for out in outputs:
        steps = sorted({f.stamp_ns for f in out.frames if f.view == 0})
        assert [c.stamp_ns for c in out.perception.clouds] == steps
        assert out.perception.stamp_ns == steps[-1]
        assert out.perception.grids.stamp_ns == steps[-1]
        assert all(t.stamp_ns == steps[-1] for t in out.perception.tracks)
    checked = 0
    for cloud in clouds:
        pixels = [backend.true_mask(cloud.stamp_ns + v * JITTER, v).sum() for v in (0, 1)]
        if min(pixels) < 100:
            continue
        # Both cameras' dynamic pixels (minus the confidence percentile and outliers): more
        # points than either camera has dynamic pixels.
        assert 0.75 * sum(pixels) <= len(cloud.points) <= sum(pixels)
        assert len(cloud.points) > max(pixels) + 0.5 * min(pixels)
        checked += 1
        # All on the sphere: within its radius (plus noise) of the true centre.
        distance = np.linalg.norm(cloud.points - _sphere(backend, cloud.stamp_ns), axis=1)
        assert np.mean(distance < 0.45) > 0.95
        tracked = cloud.object_ids[cloud.object_ids > 0]
        if len(tracked):
            assert set(tracked.tolist()) == {1} and len(tracked) > 0.8 * len(cloud.points)
    assert checked >= 6


def test_object_seen_only_by_the_side_camera_is_tracked_across_the_handover():
    steps = 18
    engine = _engine(FRONT_SIDE, 0.0)
    outputs = _run(engine, steps)
    backend = engine.backend
    side_only = [i * STEP for i in range(steps)  # the front camera sees none of it
                 if _seen(backend, i * STEP, 1) and not backend.true_mask(i * STEP, 0).any()]
    front_only = [i * STEP for i in range(steps)
                  if _seen(backend, i * STEP, 0) and not _seen(backend, i * STEP, 1)]
    assert len(side_only) >= 8 and len(front_only) >= 4
    tracks = {out.perception.stamp_ns: out.perception.tracks for out in outputs}
    side_stamps = [s for s in tracks if s in side_only]
    assert side_stamps
    for stamp in side_stamps:
        (track,) = tracks[stamp]
        assert np.linalg.norm(track.position - _sphere(backend, stamp)) < 0.15
    # One object, one id, from the front camera through the overlap into the side camera.
    assert {t.track_id for ts in tracks.values() for t in ts} == {1}
    # The side camera's steps carry its points in the step's cloud.
    clouds = {c.stamp_ns: c for out in outputs for c in out.perception.clouds}
    for stamp in side_only:
        cloud = clouds[stamp]
        assert len(cloud.points) > 0.75 * backend.true_mask(stamp + JITTER, 1).sum()
        distance = np.linalg.norm(cloud.points - _sphere(backend, stamp), axis=1)
        assert np.mean(distance < 0.45) > 0.95


def test_grids_integrate_every_camera():
    steps = 18
    rig = _engine(FRONT_SIDE, 0.0)
    rig_out = _run(rig, steps)
    front = _engine(None, 0.0)
    front_out = _run(front, steps)
    rig_grids, front_grids = rig_out[-1].perception.grids, front_out[-1].perception.grids
    # The side camera sees a part of the room the front camera never does.
    assert (rig_grids.static != UNKNOWN).sum() > 1.3 * (front_grids.static != UNKNOWN).sum()
    # While only the side camera sees the sphere, the dynamic grid marks it there.
    backend = rig.backend
    for out in rig_out:
        stamp = out.perception.stamp_ns
        if _seen(backend, stamp, 1) and not _seen(backend, stamp, 0):
            grids = out.perception.grids
            rows, cols = np.nonzero(grids.dynamic == 100)
            assert len(rows)
            xy = np.stack([cols + 0.5, rows + 0.5], axis=1) * GRID.resolution + GRID.origin_xy
            near = np.linalg.norm(xy - _sphere(backend, stamp)[:2], axis=1)
            assert near.min() < 0.3


# -- step bookkeeping ------------------------------------------------------------------------


def _observation(stamp_ns: int, view: int, step_ns: int) -> FrameObservation:
    """A 20 x 30 frame at depth 2 with a 6 x 6 dynamic block (camera at the origin)."""
    mask = np.zeros((20, 30), bool)
    mask[7:13, 12:18] = True
    intrinsics = np.array([[20.0, 0, 14.5], [0, 20.0, 9.5], [0, 0, 1]])
    return FrameObservation(stamp_ns, np.full((20, 30), 2.0, np.float32), 1.0, None,
                            intrinsics, np.eye(4), mask, view=view, step_ns=step_ns)


def test_old_and_repeated_steps_are_skipped_and_counted():
    tracker = PerceptionTracker(PerceptionConfig(grid=GRID))
    first = tracker.update([_observation(10 * MS + v * JITTER, v, 10 * MS) for v in (1, 0)])
    assert [c.stamp_ns for c in first.clouds] == [10 * MS] and first.skipped == 0
    assert len(first.clouds[0].points) == 2 * 36  # both cameras' dynamic pixels
    assert tracker.stats.steps == 1 and tracker.stats.frames == 2
    # The same step again, an older one, and a camera twice in a new step: skipped.
    out = tracker.update([_observation(10 * MS, 0, 10 * MS), _observation(5 * MS, 1, 5 * MS),
                          _observation(20 * MS, 0, 20 * MS), _observation(20 * MS, 0, 20 * MS),
                          _observation(21 * MS, 1, 20 * MS)])
    assert out.skipped == 3 and tracker.stats.skipped == 3
    assert [c.stamp_ns for c in out.clouds] == [20 * MS] and len(out.clouds[0].points) == 72
    assert out.grids.stamp_ns == out.stamp_ns == 20 * MS
    # The step's frames as one tracker update: one detection (both cameras see one block).
    assert tracker.tracker.stats.frames == 2 and tracker.tracker.stats.births == 1
    with pytest.raises(ValueError, match='share shape'):
        small = _observation(30 * MS, 1, 30 * MS)
        small.depth, small.mask = small.depth[:10], small.mask[:10]
        tracker.update([_observation(30 * MS, 0, 30 * MS), small])
