# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""PerceptionEngine -> EngineSink: masks before the mapper, mapped windows, reset warnings.

No ROS: the sink here records what the engine delivers, in order.
"""

import numpy as np
import pytest
import torch

from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.sink import EngineWarning
from vggt4d_ros.runtime.sink import NullSink
from vggt4d_ros.runtime.sink import TeeSink
from vggt4d_ros.runtime.window import replay_window
from vggt4d_ros.runtime.window import WindowConfig

STEP = 200_000_000
HW = (28, 42)


class RecordingSink:
    """Calls ``on_masks`` (if given) and records every delivery in ``events``."""

    def __init__(self, on_masks=None) -> None:
        self.on_masks = on_masks
        self.events: list[tuple[str, object]] = []

    def masks_ready(self, window, masks) -> None:
        self.events.append(('masks', masks))
        if self.on_masks is not None:
            self.on_masks(window, masks)

    def window_mapped(self, output) -> None:
        self.events.append(('mapped', output))

    def warning(self, warning) -> None:
        self.events.append(('warning', warning))


def _engine(seed: int, on_masks=None, sink=None) -> PerceptionEngine:
    torch.set_num_threads(1)
    config = replay_window(WindowConfig(window_size=8, stride=4))
    return PerceptionEngine(OracleBackend(network_hw=HW, seed=seed), config,
                            MapperConfig(pixel_stride=2),
                            sink=sink if sink is not None else RecordingSink(on_masks))


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
        assert {'backend', 'masks', 'sink_masks', 'mapper'} <= set(output.timings)
    all_masks = [m for _, masks, _ in hooked for m in masks]
    assert [m.stamp_ns for m in all_masks] == [i * STEP for i in range(18)]
    assert all(m.mask.shape == HW and m.mask.dtype == np.uint8 for m in all_masks)
    assert any(m.mask.any() for m in all_masks)  # the oracle's sphere is in some frames


def test_sink_gets_the_returned_windows_and_a_null_sink_changes_nothing():
    sink = RecordingSink()
    hooked_engine = _engine(8, sink=sink)
    plain_engine = _engine(8, sink=NullSink())
    returned = []
    for i in range(12):
        stamp = i * STEP
        hooked = hooked_engine.push(hooked_engine.backend.camera_image(stamp), stamp)
        plain = plain_engine.push(plain_engine.backend.camera_image(stamp), stamp)
        returned += hooked
        assert len(hooked) == len(plain)
        for a, b in zip(hooked, plain):
            for fa, fb in zip(a.frames, b.frames):
                np.testing.assert_array_equal(fa.mask, fb.mask)
                np.testing.assert_allclose(fa.pose, fb.pose)
    # Per window: masks, then the mapped window (the very object push returned).
    assert [kind for kind, _ in sink.events] == ['masks', 'mapped'] * len(returned)
    assert [item for kind, item in sink.events if kind == 'mapped'] == returned
    for (_, masks), (_, output) in zip(sink.events[::2], sink.events[1::2]):
        assert [m.stamp_ns for m in masks] == [f.stamp_ns for f in output.frames]


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


def test_input_resets_reach_the_sink_once_each_with_their_kind():
    sink = RecordingSink()
    engine = _engine(4, sink=sink)
    image = engine.backend.camera_image(0)
    confirm = engine.windows.config.reset_confirm_frames  # a reset needs this many frames
    for stamp in [10, 11] + list(range(5, 5 + confirm)):  # stamps go back once
        engine.push(image, stamp * STEP)
    small = np.zeros((HW[0] // 2, HW[1] // 2, 3), np.uint8)
    for stamp in range(5 + confirm, 5 + 2 * confirm):  # the size changes once
        engine.push(small, stamp * STEP)
    warnings = [item for kind, item in sink.events if kind == 'warning']
    assert [w.kind for w in warnings] == ['time_backwards', 'size_change']
    assert 'backwards' in warnings[0].text and 'size' in warnings[1].text
    assert engine.stats.window_resets == 2


def test_tee_sink_hands_every_call_to_each_sink_in_order():
    calls = []

    class Named(RecordingSink):
        def __init__(self, name):
            super().__init__(on_masks=lambda window, masks: calls.append((name, 'masks')))
            self.name = name

        def window_mapped(self, output):
            calls.append((self.name, 'mapped'))
            super().window_mapped(output)

    first, second = Named('first'), Named('second')
    engine = _engine(9, sink=TeeSink(first, second))
    for i in range(8):
        engine.push(engine.backend.camera_image(i * STEP), i * STEP)
    assert calls == [('first', 'masks'), ('second', 'masks'),
                     ('first', 'mapped'), ('second', 'mapped')]
    assert first.events == second.events  # the very same objects
    warning = EngineWarning('time_backwards', 'stamps went backwards')
    engine.sink.warning(warning)
    assert first.events[-1] == second.events[-1] == ('warning', warning)
