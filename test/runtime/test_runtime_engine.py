# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""PerceptionEngine with the oracle backend: exactly-once output, masks, drops, resets."""

import numpy as np
import pytest
import torch

from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.scale.config import ScaleConfig
from vggt4d_ros.runtime.scale.testing import sensor_depth
from vggt4d_ros.runtime.window import WindowConfig

STEP = 200_000_000
HW = (28, 42)


def _replay_config(**kwargs) -> WindowConfig:
    base = dict(window_size=8, stride=4, mode='replay', min_parallax_px=0.0,
                max_keyframe_interval_s=0.0)
    base.update(kwargs)
    return WindowConfig(**base)


def _engine(seed: int = 0, window_config: WindowConfig | None = None) -> PerceptionEngine:
    torch.set_num_threads(1)
    backend = OracleBackend(network_hw=HW, seed=seed)
    return PerceptionEngine(backend, window_config or _replay_config(),
                            MapperConfig(pixel_stride=2))


@pytest.mark.parametrize('count', [1, 3, 8, 13, 30])
def test_replay_outputs_every_frame_exactly_once(count):
    engine = _engine(count)
    outputs = []
    for i in range(count):
        stamp = i * STEP
        outputs += engine.push(engine.backend.camera_image(stamp), stamp, f'frame{i}')
    outputs += engine.flush()
    frames = [f for out in outputs for f in out.frames]
    assert [f.stamp_ns for f in frames] == [i * STEP for i in range(count)]
    assert [f.frame_id for f in frames] == [f'frame{i}' for i in range(count)]
    stats = engine.stats
    assert stats.frames_in == stats.keyframes == stats.frames_out == count
    assert stats.dropped == 0 and stats.map_resets == 0
    assert engine.flush() == []
    # Poses handed out per frame are the trajectory's poses.
    np.testing.assert_allclose(np.stack([f.pose for f in frames]),
                               engine.mapper.trajectory.matrices(), atol=1e-9)


def test_masks_are_camera_resolution_uint8_and_match_ground_truth():
    engine = _engine(1)
    outputs = []
    for i in range(40):
        outputs += engine.push(engine.backend.camera_image(i * STEP), i * STEP)
    frames = [f for out in outputs for f in out.frames]
    dynamic_frames = 0
    for frame in frames:
        assert frame.mask.shape == HW and frame.mask.dtype == np.uint8
        assert set(np.unique(frame.mask)) <= {0, 255}
        _, truth, _ = engine.backend.scene.render(
            engine.backend.time_of(frame.stamp_ns), engine.backend.intrinsics, HW)
        np.testing.assert_array_equal(frame.mask == 255, truth)
        dynamic_frames += bool(truth.any())
    assert dynamic_frames >= 3
    out = outputs[-1]
    expected = out.result.masks_at_camera()[out.window.new_indices]
    np.testing.assert_array_equal(np.stack([f.mask for f in out.frames]), expected)
    assert {'backend', 'mapper', 'masks'} <= set(out.timings)


def test_live_mode_drops_are_counted_and_nothing_is_output_twice():
    config = WindowConfig(window_size=8, stride=4, mode='live', min_parallax_px=0.0,
                          max_keyframe_interval_s=0.0, max_queued_frames=8)
    engine = _engine(2, config)
    outputs = []
    stamp = 0
    for burst in (30, 3, 9, 2, 20):
        for _ in range(burst):  # a callback offers frames while the worker is busy
            engine.offer(engine.backend.camera_image(stamp), stamp)
            stamp += STEP
        outputs += engine.process()
    stamps = [f.stamp_ns for out in outputs for f in out.frames]
    assert len(stamps) == len(set(stamps)) and stamps == sorted(stamps)
    stats = engine.stats
    assert stats.dropped > 0
    assert stats.frames_out + stats.dropped + engine.windows.pending == stats.keyframes
    assert stats.map_resets == 0


def test_stamps_going_backwards_reset_without_crashing():
    engine = _engine(3, _replay_config(window_size=4, stride=2))
    outputs = []
    for i in range(10):
        outputs += engine.push(engine.backend.camera_image(i * STEP), i * STEP)
    for i in range(10):  # the bag restarts at a stamp between the old ones
        stamp = i * STEP + STEP // 2
        outputs += engine.push(engine.backend.camera_image(stamp), stamp)
    outputs += engine.flush()
    stats = engine.stats
    assert stats.window_resets == 1 and stats.map_resets == 1
    assert engine.mapper.stats.resets['time_backwards'] == 1
    stamps = [f.stamp_ns for out in outputs for f in out.frames]
    assert stamps == [i * STEP for i in range(10)] + [i * STEP + STEP // 2 for i in range(10)]
    restart = next(out for out in outputs if out.update.reset)
    assert restart.window.starts_segment
    np.testing.assert_allclose(restart.frames[0].pose, np.eye(4), atol=1e-6)


def test_failed_alignment_is_counted_and_processing_continues():
    engine = _engine(4)
    engine.backend.corrupt_calls = {3}
    outputs = []
    for i in range(40):
        outputs += engine.push(engine.backend.camera_image(i * STEP), i * STEP)
    outputs += engine.flush()
    assert engine.stats.map_resets >= 1
    assert engine.mapper.stats.resets['alignment_failed'] >= 1
    assert outputs[3].update.reset_reason == 'alignment_failed'
    assert outputs[-1].update.alignment.method == 'dense'
    assert engine.stats.frames_out == 40


def test_keyframe_gate_skips_are_counted():
    config = WindowConfig(window_size=4, stride=2, mode='replay', min_parallax_px=2.0,
                          max_keyframe_interval_s=0.0)
    engine = _engine(5, config)
    image = engine.backend.camera_image(0)
    for i in range(6):
        engine.push(image, i * STEP)  # a frozen camera: no parallax
    assert engine.stats.keyframes == 1 and engine.stats.skipped == 5
    outputs = engine.flush()
    assert [f.stamp_ns for out in outputs for f in out.frames] == [0]


def test_backend_returning_other_stamps_is_an_error():
    class WrongBackend(OracleBackend):
        def run(self, frames, stamps_ns):
            return super().run(frames, [s + 1 for s in stamps_ns])

    engine = PerceptionEngine(WrongBackend(network_hw=HW), _replay_config(window_size=2, stride=1))
    engine.push(np.zeros(HW + (3,), np.uint8), 0)
    with pytest.raises(RuntimeError):
        engine.push(np.zeros(HW + (3,), np.uint8), STEP)


def test_depth_scale_source_makes_the_trajectory_metric():
    backend = OracleBackend(network_hw=HW, seed=6)
    engine = PerceptionEngine(backend, _replay_config(), MapperConfig(pixel_stride=2),
                              scale=ScaleConfig(source='depth'))
    rng = np.random.default_rng(6)
    for i in range(24):
        stamp = i * STEP
        engine.metric.add_image(stamp)
        engine.metric.add_depth(sensor_depth(backend, stamp, backend.plan(), rng))
        outputs = engine.push(backend.camera_image(stamp), stamp)
        assert all(out.scale is not None and out.scale.ok for out in outputs)
    engine.flush()
    est = engine.mapper.trajectory.positions()
    truth = np.stack([backend.scene.camera_pose(s * 1e-9)[:3, 3]
                      for s in engine.mapper.trajectory.stamps_ns])
    truth = truth - truth[0]
    # Metric and anchored at the first camera: only the first camera's rotation separates them.
    first_rotation = backend.scene.camera_pose(0.0)[:3, :3]
    np.testing.assert_allclose(est @ first_rotation.T, truth, atol=0.03)


def test_perception_runs_after_mapping_when_enabled():
    backend = OracleBackend(network_hw=HW, seed=7)
    engine = PerceptionEngine(backend, _replay_config(), MapperConfig(pixel_stride=2),
                              perception=PerceptionConfig())
    outputs = [out for i in range(12)
               for out in engine.push(backend.camera_image(i * STEP), i * STEP)]
    assert outputs and all(out.perception is not None for out in outputs)
    assert all(len(out.perception.clouds) == len(out.frames) for out in outputs)
    assert all('perception' in out.timings and out.scale is None for out in outputs)
    off = PerceptionEngine(OracleBackend(network_hw=HW, seed=7), _replay_config())
    assert all(out.perception is None for i in range(12)
               for out in off.push(backend.camera_image(i * STEP), i * STEP))


def test_backend_failure_propagates_and_the_next_window_starts_a_segment():
    class FlakyBackend(OracleBackend):
        def run(self, frames, stamps_ns):
            if self.calls == 2 and not getattr(self, 'failed', False):
                self.failed = True
                raise RuntimeError('CUDA out of memory (simulated)')
            return super().run(frames, stamps_ns)

    engine = PerceptionEngine(FlakyBackend(network_hw=HW), _replay_config(),
                              MapperConfig(pixel_stride=2))
    outputs, errors = [], 0
    for i in range(24):
        try:
            outputs += engine.push(engine.backend.camera_image(i * STEP), i * STEP)
        except RuntimeError:
            errors += 1
    outputs += engine.flush()
    stamps = [f.stamp_ns for out in outputs for f in out.frames]
    assert errors == 1
    assert stamps == [i * STEP for i in range(24) if not 12 <= i < 16]
    assert len(set(stamps)) == len(stamps)
    assert engine.mapper.stats.resets['no_overlap'] == 1
