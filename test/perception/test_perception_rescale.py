# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The planner outputs follow the map's metric-scale changes (``MetricInfo.change``).

The engine runs the synthetic scene through the oracle backend twice with the same noise: once
in VGGT units throughout, once with a scale fusion that, from a given window on, makes the map
metric (the mapper scales the whole segment by the fused value) and then corrects it a little
(the mapper scales the new frames about the newest overlap camera). The tracks must follow:
the same ids, positions and velocities scaled by the change, no jump for the filter to read as
motion. The grids restart when the whole segment was scaled: their cells held the old units.
"""

from __future__ import annotations

import numpy as np
import pytest

from vggt4d_ros.geometry.rotation import rotation_from_axis_angle
from vggt4d_ros.geometry.sim3 import Sim3
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.perception.config import GridConfig
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.perception.tracker import Tracker
from vggt4d_ros.perception.tracker import TrackerConfig
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticOracleView
from vggt4d_ros.replay.synthetic import SyntheticScene
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.window import WindowConfig

FPS = 15.0
SCENE = SceneConfig(num_frames=48, fps=FPS, seed=3, supersample=1)
METRIC_FROM = 4  # the window that makes the map metric
METRES_PER_UNIT = 2.5


class LateScale:
    """A scale fusion with no value before window ``start``, then the given values in turn."""

    def __init__(self, start: int, values: list[float]) -> None:
        self.start, self.values, self.calls = start, values, 0

    def update(self, measured, spread=None):
        self.calls += 1
        if self.calls <= self.start:
            return None
        return self.values[min(self.calls - self.start, len(self.values)) - 1]

    def reset(self) -> None:
        self.calls = 0


def run(fusion: LateScale | None) -> tuple[list, PerceptionEngine]:
    """Per window: (stamp, {track id: (position, velocity)}, occupied static cells, update)."""
    scene = SyntheticScene(SCENE)
    backend = OracleBackend(scene=SyntheticOracleView(scene), network_hw=(96, 128), seed=3)
    grid = GridConfig(resolution=0.05, width=200, height=200, origin_xy=(-5.0, -5.0),
                      ground_z=-1.0, min_height=0.05, max_height=2.0, max_range=10.0)
    engine = PerceptionEngine(backend, WindowConfig(min_parallax_px=0,
                                                    max_keyframe_interval_s=0),
                              MapperConfig(pixel_stride=4),
                              perception=PerceptionConfig(grid=grid))
    if fusion is not None:
        engine.mapper.scale_fusion = fusion
    windows = []
    for i in range(SCENE.num_frames):
        stamp = int(round(i * 1e9 / FPS))
        for out in engine.push(backend.camera_image(stamp), stamp):
            tracks = {t.track_id: (np.asarray(t.position), np.asarray(t.velocity))
                      for t in out.perception.tracks}
            occupied = out.perception.grids.static == 100
            windows.append((out.perception.stamp_ns, tracks, occupied, out.update))
    return windows, engine


@pytest.fixture(scope='module')
def runs():
    return run(None), run(LateScale(METRIC_FROM, [METRES_PER_UNIT, METRES_PER_UNIT * 1.03]))


def test_the_map_became_metric_then_was_corrected(runs):
    _, (metric, _) = runs
    infos = [update.metric for *_, update in metric]
    assert [info.metric for info in infos] == [k >= METRIC_FROM for k in range(len(infos))]
    first = infos[METRIC_FROM]
    assert first.rescaled == METRES_PER_UNIT and first.change.scale == METRES_PER_UNIT
    assert np.allclose(first.change.translation, 0.0)  # the whole segment, about the origin
    correction = infos[METRIC_FROM + 1].change
    assert correction.scale == pytest.approx(1.03) and infos[METRIC_FROM + 1].rescaled == 1.0
    assert all(info.change is None for info in infos[METRIC_FROM + 2:])


def test_tracks_keep_their_ids_and_follow_the_scale(runs):
    """Without the change the tracks break at the rescale (measured): tracks 1 and 2 coast at
    their old-unit positions next to two new tracks for the same objects (3 and 4), which
    carry on after them: two ghosts for a planner, then two id switches."""
    (plain, _), (metric, engine) = runs
    assert [w[0] for w in plain] == [w[0] for w in metric]
    assert engine.perception.tracker.stats.rescales == 2
    assert engine.perception.stats.rescales == 2 and engine.perception.stats.resets == 0
    for k, ((_, before, _, _), (_, after, _, _)) in enumerate(zip(plain, metric)):
        assert set(after) == set(before), k  # no track lost, none born by the change
        # After the correction (3 % about a camera) the reference scaled about the origin
        # is only close: measured up to 2 % of the distance.
        factor = 1.0 if k < METRIC_FROM else METRES_PER_UNIT * (1.03 if k > METRIC_FROM else 1)
        for track_id, (position, velocity) in before.items():
            moved, speed = after[track_id]
            if k < METRIC_FROM:
                np.testing.assert_array_equal(moved, position)
                continue
            distance = np.linalg.norm(factor * position)
            assert np.linalg.norm(moved - factor * position) <= 0.03 * distance, (k, track_id)
            # The filter's noise floors and process noise do not scale (map units), so the
            # gains differ a little: measured gaps up to 0.09 in the three windows after the
            # rescale (an object slowing down, speeds 0.02-0.32), under 6 % later.
            gap = np.linalg.norm(speed - factor * velocity)
            assert gap <= 0.35 * max(np.linalg.norm(factor * velocity), 0.3), (k, track_id)


def test_the_grids_restart_when_the_segment_is_rescaled(runs):
    """The static cells of the old units do not stay: measured 16 of 146 left (141 unmoved)."""
    (plain, _), (metric, _) = runs
    for k in range(METRIC_FROM):
        np.testing.assert_array_equal(metric[k][2], plain[k][2])
    old, new = metric[METRIC_FROM - 1][2], metric[METRIC_FROM][2]
    assert old.sum() > 100 and new.sum() > 100
    assert (old & new).sum() <= 0.25 * old.sum()


def test_tracker_rescale_moves_positions_about_the_pivot():
    tracker = Tracker(TrackerConfig())
    tracker._tracks.state = np.array([[[1.0, 0.5], [2.0, 0.0], [0.0, -0.25]]])
    tracker._tracks.cov = np.array([[[0.01, 0.0], [0.0, 0.04]]])
    for name, value in (('anchor', [[1.0, 2.0, 0.0]]), ('centre', [[1.0, 2.0, 0.0]]),
                        ('size', [[0.4, 0.2, 0.6]]), ('offset', [[0.1, 0.0, 0.0]]),
                        ('sides', [[0.4, 0.2]]), ('cloud', [[[1.0, 2.0, 0.0]]])):
        setattr(tracker._tracks, name, np.array(value))
    tracker._tracks.push, tracker._tracks.below_top = np.array([0.3]), np.array([0.2])
    tracker.rescale(2.0, np.array([1.0, 0.0, 0.0]))
    tracks = tracker._tracks
    np.testing.assert_allclose(tracks.state[0, :, 0], [1.0, 4.0, 0.0])  # 1 + 2 (x - 1)
    np.testing.assert_allclose(tracks.state[0, :, 1], [1.0, 0.0, -0.5])
    np.testing.assert_allclose(tracks.cov[0], [[0.04, 0.0], [0.0, 0.16]])
    np.testing.assert_allclose(tracks.anchor, [[1.0, 4.0, 0.0]])
    np.testing.assert_allclose(tracks.cloud, [[[1.0, 4.0, 0.0]]])
    np.testing.assert_allclose(tracks.size, [[0.8, 0.4, 1.2]])
    np.testing.assert_allclose(tracks.sides, [[0.8, 0.4]])
    assert tracks.push[0] == pytest.approx(0.6) and tracks.below_top[0] == pytest.approx(0.4)
    with pytest.raises(ValueError):
        tracker.rescale(0.0, np.zeros(3))


def test_a_change_with_a_rotation_is_refused():
    with pytest.raises(ValueError):
        PerceptionTracker().rescale(Sim3(2.0, rotation_from_axis_angle([0.0, 0.0, 0.3])))
