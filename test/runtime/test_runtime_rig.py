# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Rig runtime: grouping by stamp, windows of steps, the engine and mapper with a rig oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vggt4d_ros.geometry.sim3 import umeyama
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.mapping.testing import OracleNoise
from vggt4d_ros.mapping.testing import rig_mount
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.rig import base_poses
from vggt4d_ros.runtime.rig import camera_name_of_topic
from vggt4d_ros.runtime.rig import RigGrouper
from vggt4d_ros.runtime.rig import RigSetup
from vggt4d_ros.runtime.scale.config import ScaleConfig
from vggt4d_ros.runtime.window import WindowConfig
from vggt4d_ros.runtime.window import WindowManager

STEP = 200_000_000
HW = (28, 42)
MS = 1_000_000


def _replay(**kwargs) -> WindowConfig:
    base = dict(window_size=8, stride=4, mode='replay', min_parallax_px=0.0,
                max_keyframe_interval_s=0.0)
    base.update(kwargs)
    return WindowConfig(**base)


STEREO = np.stack([rig_mount(), rig_mount(0.3)])
FRONT_SIDE = np.stack([rig_mount(), rig_mount(0.1, 70.0)])


def _image(value: int = 0) -> np.ndarray:
    return np.full((12, 16, 3), value, np.uint8)


# -- grouping -----------------------------------------------------------------------------


def test_grouper_groups_a_jittered_and_a_dropping_camera_and_counts_the_rest():
    rng = np.random.default_rng(0)
    grouper: RigGrouper[int] = RigGrouper(2, queue_size=4, slop_s=0.010)
    dropped = {3, 7, 8, 15}  # camera 1 loses these frames
    groups = []
    for i in range(20):
        stamp = i * 33 * MS
        for view in (0, 1):
            if view == 1 and i in dropped:
                continue
            jitter = int(rng.integers(-4, 5)) * MS if view == 1 else 0
            group = grouper.add(view, stamp + jitter, (i, view))
            if group is not None:
                groups.append(group)
    complete = [i for i in range(20) if i not in dropped]
    assert [(a[0], b[0]) for a, b in groups] == [(i, i) for i in complete]
    assert all(a[1] == 0 and b[1] == 1 for a, b in groups)
    stats = grouper.stats
    assert stats.groups == len(complete)
    assert stats.unmatched == [len(dropped), 0]
    # Camera 0's partnerless frames leave its queue (counted) once a newer group is out.
    assert stats.expired == [len(dropped), 0] and stats.incomplete == len(dropped)


def test_rig_setup_from_parameters_and_base_poses():
    rig = RigSetup.from_parameters(['left', 'right'],
                                   [0, 0, 0, 0, 0, 0, 1, 0.3, 0, 0, 0, 0, 0, 1])
    assert rig.num_views == 2 and rig.base_from_camera[1][0, 3] == pytest.approx(0.3)
    pose = np.eye(4)
    pose[:3, 3] = [1, 2, 3]
    shifted = RigSetup(('a', 'b'), np.stack([rig_mount(0.5), rig_mount(1.0)]))
    assert base_poses(pose[None], shifted)[0, 0, 3] == pytest.approx(0.5)
    with pytest.raises(ValueError, match='7 numbers'):
        RigSetup.from_parameters(['a', 'b'], [0.0] * 7)
    with pytest.raises(ValueError, match='unique'):
        RigSetup(('a', 'a'))
    assert camera_name_of_topic('/front/image_raw') == 'front'
    assert camera_name_of_topic('image') == 'image'


# -- window manager -----------------------------------------------------------------------


def test_rig_windows_are_step_major_and_slide_by_whole_steps():
    manager = WindowManager(_replay(), num_views=2)  # 4 steps x 2 views, slides 2 steps
    windows = []
    for step in range(8):
        stamps = [step * STEP, step * STEP + 3 * MS]
        manager.offer_step([_image(), _image()], stamps, ['cam0', 'cam1'])
        window = manager.take_window()
        if window is not None:
            windows.append(window)
    assert len(windows) == 3
    first, second = windows[:2]
    assert first.layout.num_views == 2 and first.layout.num_steps == 4
    assert first.frame_ids == ['cam0', 'cam1'] * 4
    assert first.stamps_ns[:4] == [0, 3 * MS, STEP, STEP + 3 * MS]
    assert second.stamps_ns[:4] == first.stamps_ns[4:]  # overlap: two whole steps
    assert second.is_new == [False] * 4 + [True] * 4
    assert second.views == [0, 1] * 4
    with pytest.raises(ValueError, match='steps'):
        manager.offer(_image(), 99 * STEP)


def test_rig_gate_accepts_a_step_when_any_camera_moved():
    config = _replay(window_size=4, stride=2, min_parallax_px=10.0, max_keyframe_interval_s=1.0,
                     flow_width=240)
    manager = WindowManager(config, num_views=2)
    rng = np.random.default_rng(3)
    # Smooth random texture so Lucas-Kanade tracks corners reliably.
    base = np.kron(rng.integers(0, 255, (60, 80), dtype=np.uint8), np.ones((4, 4), np.uint8))
    texture = np.repeat(base[..., None], 3, axis=2)

    def view(shift: int) -> np.ndarray:
        return np.ascontiguousarray(texture[40:200, 40 + shift:280 + shift])

    assert manager.offer_step([view(0), view(0)], [0, 0])
    # The front camera sees no flow, the side camera 15 px: the step is a keyframe.
    assert manager.offer_step([view(0), view(15)], [STEP, STEP])
    assert not manager.offer_step([view(3), view(18)], [2 * STEP, 2 * STEP])  # 3 px each
    assert manager.offer_step([view(3), view(18)], [7 * STEP, 7 * STEP])  # 1.2 s: forced
    assert manager.stats.keyframes == 3 and manager.stats.skipped == 1


def test_a_camera_changing_size_resets_the_rig_stream():
    manager = WindowManager(_replay(reset_confirm_frames=1), num_views=2)
    manager.offer_step([_image(), _image()], [0, 0])
    manager.offer_step([_image(), np.zeros((24, 16, 3), np.uint8)], [STEP, STEP])
    assert manager.stats.resets_size_change == 1


def test_rig_window_budget_must_hold_two_steps():
    with pytest.raises(ValueError, match='>= 2 steps'):
        WindowManager(_replay(window_size=6, stride=2), num_views=4)


# -- engine + mapper with the rig oracle ---------------------------------------------------


def _rig_engine(rig: np.ndarray, seed: int = 0, scale: ScaleConfig | None = None,
                known_extrinsics: bool = True, noise: OracleNoise | None = None
                ) -> PerceptionEngine:
    torch.set_num_threads(1)
    backend = OracleBackend(network_hw=HW, seed=seed, rig=rig, noise=noise)
    names = tuple(f'cam{v}' for v in range(len(rig)))
    setup = RigSetup(names, rig if known_extrinsics else None)
    return PerceptionEngine(backend, _replay(), MapperConfig(pixel_stride=2), scale=scale,
                            rig=setup)


def _run_rig(engine: PerceptionEngine, steps: int, jitter_ns: int = 0) -> list:
    backend = engine.backend
    outputs = []
    for i in range(steps):
        stamps = [i * STEP + (v * jitter_ns) for v in range(len(backend.rig))]
        frames = [backend.camera_image(s, v) for v, s in enumerate(stamps)]
        frame_ids = [f'cam{v}_optical' for v in range(len(stamps))]
        outputs += engine.push_step(frames, stamps, frame_ids)
    return outputs + engine.flush()


def _ate(estimated: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """RMSE of positions after a Sim(3) fit, and the fit's scale."""
    fit = umeyama(estimated[:, :3, 3], truth[:, :3, 3])
    error = fit.apply(estimated[:, :3, 3]) - truth[:, :3, 3]
    return float(np.sqrt((error ** 2).sum(1).mean())), fit.scale


@pytest.mark.parametrize('rig', [STEREO, FRONT_SIDE], ids=['stereo', 'front_side'])
def test_rig_engine_outputs_every_camera_once_with_its_own_mask_and_one_pose_per_step(rig):
    steps = 14
    engine = _rig_engine(rig)
    outputs = _run_rig(engine, steps, jitter_ns=2 * MS)
    frames = [f for out in outputs for f in out.frames]
    assert len(frames) == 2 * steps == engine.stats.frames_out
    assert [(f.stamp_ns, f.view) for f in frames] == [
        (i * STEP + v * 2 * MS, v) for i in range(steps) for v in (0, 1)]
    assert {f.camera for f in frames if f.view == 1} == {'cam1'}
    assert all(f.frame_id == f'cam{f.view}_optical' for f in frames)
    backend = engine.backend
    for frame in frames:
        truth = backend.true_mask(frame.stamp_ns, frame.view)
        assert np.array_equal(frame.mask > 0, truth), (frame.stamp_ns, frame.view)
    # The two cameras do see different things (the masks are not one camera's twice).
    assert any(not np.array_equal(a.mask, b.mask) for a, b in zip(frames[::2], frames[1::2]))
    trajectory = engine.mapper.trajectory
    assert list(trajectory.stamps_ns) == [i * STEP for i in range(steps)]
    assert engine.mapper.stats.resets == {}
    # The rig's poses: base_link from the reference camera; every camera's pose is consistent
    # with its extrinsic up to the window's scale.
    truth = np.stack([backend.camera_pose(i * STEP) for i in range(steps)])
    rig_error, _ = _ate(trajectory.matrices(), truth)
    side_poses = np.stack([f.pose for f in frames if f.view == 1])
    side_truth = np.stack([backend.camera_pose(i * STEP + 2 * MS, 1) for i in range(steps)])
    assert _ate(side_poses, side_truth)[0] < 0.03
    # As good as one camera on the same path and noise.
    single = PerceptionEngine(OracleBackend(network_hw=HW, seed=0), _replay(),
                              MapperConfig(pixel_stride=2))
    for i in range(steps):
        single.push(single.backend.camera_image(i * STEP), i * STEP)
    single.flush()
    single_error, _ = _ate(single.mapper.trajectory.matrices(), truth)
    assert rig_error < max(1.5 * single_error, 0.02), (rig_error, single_error)
    # One static map from all views: the side camera adds points the reference never saw.
    assert len(engine.mapper.map) > 0


def test_rig_baseline_scale_makes_the_rig_metric_within_3_percent():
    engine = _rig_engine(STEREO, seed=3, scale=ScaleConfig(source='rig_baseline'))
    outputs = _run_rig(engine, 14)
    scales = engine.backend.window_scales  # units per metre of each window
    for output, units_per_metre in zip(outputs, scales):
        assert output.scale.ok, output.scale.reason
        truth = 1.0 / units_per_metre
        assert abs(output.scale.metres_per_unit - truth) / truth < 0.03
    assert outputs[-1].update.metric.metric
    truth = np.stack([engine.backend.camera_pose(i * STEP) for i in range(14)])
    _, fit_scale = _ate(engine.mapper.trajectory.matrices(), truth)
    assert abs(fit_scale - 1.0) < 0.03


def test_rig_baseline_without_extrinsics_is_a_counted_outcome():
    engine = _rig_engine(STEREO, scale=ScaleConfig(source='rig_baseline'),
                         known_extrinsics=False)
    outputs = _run_rig(engine, 6)
    assert all(out.scale.reason == 'no_extrinsic' for out in outputs)
    assert not outputs[-1].update.metric.metric


class _TwoArgumentBackend:
    """A single-camera backend with today's ``run(frames, stamps_ns)`` signature."""

    def __init__(self) -> None:
        self.oracle = OracleBackend(network_hw=HW, seed=5)

    def run(self, frames, stamps_ns):
        return self.oracle.run(frames, stamps_ns)


def test_one_camera_rig_is_the_single_camera_engine_exactly():
    plain = PerceptionEngine(_TwoArgumentBackend(), _replay(), MapperConfig(pixel_stride=2))
    rig = PerceptionEngine(_TwoArgumentBackend(), _replay(), MapperConfig(pixel_stride=2),
                           rig=RigSetup(('front',)))
    outputs_plain, outputs_rig = [], []
    for i in range(13):
        image = plain.backend.oracle.camera_image(i * STEP)
        outputs_plain += plain.push(image, i * STEP, 'cam')
        outputs_rig += rig.push_step([image], [i * STEP], ['cam'])
    outputs_plain += plain.flush()
    outputs_rig += rig.flush()
    assert len(outputs_plain) == len(outputs_rig)
    for a, b in zip(outputs_plain, outputs_rig):
        assert a.window.stamps_ns == b.window.stamps_ns
        for fa, fb in zip(a.frames, b.frames):
            assert (fa.stamp_ns, fa.frame_id, fa.index, fa.view, fa.camera) == (
                fb.stamp_ns, fb.frame_id, fb.index, fb.view, fb.camera)
            assert np.array_equal(fa.mask, fb.mask) and np.array_equal(fa.pose, fb.pose)
        assert np.array_equal(a.update.points_xyz, b.update.points_xyz)
    assert np.array_equal(plain.mapper.trajectory.matrices(), rig.mapper.trajectory.matrices())


def test_engine_runs_the_real_pipeline_on_rig_windows():
    """Plumbing with the tiny random-weight VGGT4D (no quality claim): layout, reuse, masks."""
    from vggt4d_ros.model.config import VGGTConfig
    from vggt4d_ros.model.vggt import VGGT
    from vggt4d_ros.motion.pipeline import VGGT4DPipeline
    from vggt4d_ros.runtime.backend import FixedWidthBackend

    torch.set_num_threads(1)
    torch.manual_seed(0)
    backend = FixedWidthBackend(VGGT4DPipeline(VGGT(VGGTConfig.tiny()).eval()), 70)
    engine = PerceptionEngine(backend, _replay(), MapperConfig(pixel_stride=2,
                                                               conf_percentile=0.0),
                              rig=RigSetup(('left', 'right')))
    rng = np.random.default_rng(0)
    outputs = []
    for step in range(6):
        frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(2)]
        outputs += engine.push_step(frames, [step * STEP, step * STEP + MS], ['l', 'r'])
    outputs += engine.flush()
    assert all(out.result.layout.num_views == 2 for out in outputs)
    frames = [f for out in outputs for f in out.frames]
    assert [(f.view, f.camera) for f in frames] == [(0, 'left'), (1, 'right')] * 6
    for frame in frames:
        assert frame.mask.shape == (48, 64) and np.isfinite(frame.pose).all()
    assert len(engine.mapper.trajectory) == 6


# -- warm-up --------------------------------------------------------------------------------


class _ShapeRecorder(OracleBackend):
    """The rig oracle, recording what each window hands the backend (shapes, not time).

    Per call: (frames, steps, views, frame shape, frames not in the previous call by (view,
    stamp): the ones a pipeline computes anew rather than reuses); then the refinement graphs.
    """

    def __init__(self, rig: np.ndarray) -> None:
        super().__init__(network_hw=HW, rig=rig)
        self.shapes: list[tuple] = []
        self.graphs: list[tuple] = []
        self._previous: set[tuple[int, int]] = set()

    def run(self, frames, stamps_ns, layout=None):
        views = layout.view_of_frame if layout is not None else [0] * len(frames)
        keys = set(zip(views, (int(s) for s in stamps_ns)))
        self.shapes.append((len(frames), layout.num_steps if layout else len(frames),
                            layout.num_views if layout else 1, frames[0].shape,
                            len(keys - self._previous)))
        self._previous = keys
        return super().run(frames, stamps_ns, layout)

    def record_refinement_graphs(self, frames: int, camera_hw: tuple[int, int]) -> int:
        self.graphs.append((frames, tuple(camera_hw)))
        return 0


@pytest.mark.parametrize('rig, window_size, stride', [
    (STEREO, 8, 4), (np.stack([rig_mount(), rig_mount(0.3), rig_mount(0.6)]), 8, 2),
    (None, 8, 4)], ids=['stereo', 'three_cameras', 'one_camera'])
def test_warm_up_runs_the_windows_a_live_rig_runs_first(rig, window_size, stride):
    """The first live windows of a rig meet only batch shapes the warm-up already ran."""
    from vggt4d_ros.runtime.backend import warm_up

    torch.set_num_threads(1)
    cameras = np.eye(4)[None] if rig is None else rig
    views = len(cameras)
    setup = RigSetup(tuple(f'cam{v}' for v in range(views))) if rig is not None else None
    # A live config: the warm-up applies the replay policy itself (every frame a keyframe).
    live = WindowConfig(window_size=window_size, stride=stride, mode='live',
                        min_parallax_px=0.0, max_keyframe_interval_s=0.0, max_queued_frames=8)
    warm = _ShapeRecorder(cameras)
    assert warm_up(warm, live, MapperConfig(pixel_stride=2), *HW, rig=setup) >= 0

    stream = _ShapeRecorder(cameras)
    engine = PerceptionEngine(stream, live, MapperConfig(pixel_stride=2), rig=setup)
    for i in range(16):
        stamps = [i * STEP + v * MS for v in range(views)]
        engine.push_step([stream.camera_image(s, v) for v, s in enumerate(stamps)], stamps)
    steps = window_size // views
    slide = max(1, stride // views)
    assert len(stream.shapes) >= 3
    # Two windows warm: all new, then the slide's new steps beside the reused overlap.
    assert warm.shapes == [(steps * views, steps, views, HW + (3,), steps * views),
                           (steps * views, steps, views, HW + (3,), slide * views)]
    assert stream.shapes[:2] == warm.shapes
    assert set(stream.shapes) <= set(warm.shapes)
    assert warm.graphs == [(steps * views, HW)]
