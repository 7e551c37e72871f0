# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""PerceptionEngine.on_masks: masks handed out per window before the mapper runs."""

import numpy as np
import pytest
import torch

from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.window import WindowConfig

STEP = 200_000_000
HW = (28, 42)


def _engine(seed: int, on_masks=None) -> PerceptionEngine:
    torch.set_num_threads(1)
    config = WindowConfig(window_size=8, stride=4, mode='replay', min_parallax_px=0.0,
                          max_keyframe_interval_s=0.0)
    return PerceptionEngine(OracleBackend(network_hw=HW, seed=seed), config,
                            MapperConfig(pixel_stride=2), on_masks=on_masks)


def _record_integrate(engine: PerceptionEngine, events: list) -> None:
    """Log every mapper.integrate call (with the window's stamps) into ``events``."""
    integrate = engine.mapper.integrate

    def recording(result, **kwargs):
        events.append(('integrate', [int(s) for s in result.stamps_ns]))
        return integrate(result, **kwargs)

    engine.mapper.integrate = recording


def test_hook_fires_once_per_window_before_the_mapper_with_the_output_masks():
    events = []
    hooked = []

    def on_masks(window, masks):
        # The mapper has not seen this window yet: its pose count is still the previous one.
        events.append(('masks', list(window.stamps_ns)))
        hooked.append((window, masks, len(engine.mapper.trajectory.stamps_ns)))

    engine = _engine(7, on_masks)
    _record_integrate(engine, events)
    outputs = []
    for i in range(18):  # windows at 8, 12, 16 frames; flush adds the last 2 frames
        outputs += engine.push(engine.backend.camera_image(i * STEP), i * STEP, f'cam{i}')
    outputs += engine.flush()

    assert len(hooked) == len(outputs) == 4
    # Strictly alternating, hook first, for the same window.
    assert [kind for kind, _ in events] == ['masks', 'integrate'] * 4
    assert all(events[k][1] == events[k + 1][1] for k in range(0, 8, 2))
    poses_before = 0
    for (window, masks, known_poses), output in zip(hooked, outputs):
        assert window is output.window
        assert known_poses == poses_before
        poses_before += len(output.frames)
        assert [m.stamp_ns for m in masks] == [f.stamp_ns for f in output.frames]
        assert [m.frame_id for m in masks] == [f.frame_id for f in output.frames]
        assert [m.index for m in masks] == [f.index for f in output.frames]
        assert all(m.mask is f.mask for m, f in zip(masks, output.frames))
        assert {'backend', 'masks', 'on_masks', 'mapper'} <= set(output.timings)
    all_masks = [m for _, masks, _ in hooked for m in masks]
    assert [m.stamp_ns for m in all_masks] == [i * STEP for i in range(18)]
    assert all(m.mask.shape == HW and m.mask.dtype == np.uint8 for m in all_masks)
    assert any(m.mask.any() for m in all_masks)  # the oracle's sphere is in some frames


def test_without_hook_outputs_are_unchanged():
    hooked_engine = _engine(8, lambda window, masks: None)
    plain_engine = _engine(8)
    for i in range(12):
        stamp = i * STEP
        hooked = hooked_engine.push(hooked_engine.backend.camera_image(stamp), stamp)
        plain = plain_engine.push(plain_engine.backend.camera_image(stamp), stamp)
        assert len(hooked) == len(plain)
        for a, b in zip(hooked, plain):
            assert 'on_masks' in a.timings and 'on_masks' not in b.timings
            for fa, fb in zip(a.frames, b.frames):
                np.testing.assert_array_equal(fa.mask, fb.mask)
                np.testing.assert_allclose(fa.pose, fb.pose)


def test_hook_error_propagates_and_the_window_is_not_mapped():
    calls = []

    def on_masks(window, masks):
        calls.append(window.stamps_ns[-1])
        if len(calls) == 2:
            raise RuntimeError('publisher gone (simulated)')

    engine = _engine(9, on_masks)
    outputs, errors = [], 0
    for i in range(16):
        try:
            outputs += engine.push(engine.backend.camera_image(i * STEP), i * STEP)
        except RuntimeError:
            errors += 1
            assert engine.mapper.stats.windows == 1  # the failed window never reached it
    assert errors == 1 and len(calls) == 3
    stamps = [f.stamp_ns for out in outputs for f in out.frames]
    assert stamps == [i * STEP for i in range(16) if not 8 <= i < 12]
    assert engine.mapper.stats.resets['no_overlap'] == 1


@pytest.mark.parametrize('count', [1, 3])
def test_flush_of_a_short_stream_hands_out_every_mask(count):
    hooked = []
    engine = _engine(count, lambda window, masks: hooked.extend(masks))
    for i in range(count):
        engine.push(engine.backend.camera_image(i * STEP), i * STEP)
    assert hooked == []
    outputs = engine.flush()
    assert [m.stamp_ns for m in hooked] == [f.stamp_ns for out in outputs for f in out.frames]
    assert len(hooked) == count
