# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Sliding window: overlap layout, replay completeness, live drops, resets, keyframe gate."""

import numpy as np
import pytest

from vggt4d_ros.runtime.window import WindowConfig
from vggt4d_ros.runtime.window import WindowManager

STEP = 100_000_000  # 10 Hz


def _image(seed: int = 0, hw: tuple[int, int] = (24, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, hw + (3,), dtype=np.uint8)


def _every_frame(**kwargs) -> WindowConfig:
    base = dict(mode='replay', min_parallax_px=0.0, max_keyframe_interval_s=0.0)
    base.update(kwargs)
    return WindowConfig(**base)


def test_windows_put_overlap_first_and_mark_new_frames():
    manager = WindowManager(_every_frame(window_size=8, stride=4))
    windows = []
    for i in range(16):
        window = manager.push(_image(), i * STEP, f'cam{i}')
        if window is not None:
            windows.append(window)
    assert [w.sequence for w in windows] == [0, 1, 2]
    first, second, third = windows
    assert first.is_new == [True] * 8 and first.starts_segment
    assert second.stamps_ns == [i * STEP for i in range(4, 12)]
    assert second.is_new == [False] * 4 + [True] * 4
    assert second.new_indices == [4, 5, 6, 7]
    assert second.frame_ids[0] == 'cam4' and not second.starts_segment
    # Reference frame 0 of every later window is a frame the previous window already had.
    assert second.stamps_ns[0] in first.stamps_ns
    assert third.stamps_ns[0] in second.stamps_ns
    assert all(np.all(np.diff(w.stamps_ns) > 0) for w in windows)


@pytest.mark.parametrize('count', [1, 5, 8, 11, 12, 29])
def test_replay_outputs_every_frame_once_including_flush(count):
    manager = WindowManager(_every_frame(window_size=8, stride=4))
    new_stamps = []
    windows = []
    for i in range(count):
        window = manager.push(_image(), i * STEP)
        if window is not None:
            windows.append(window)
    tail = manager.flush()
    if tail is not None:
        windows.append(tail)
    for window in windows:
        assert window.num_frames <= 8
        new_stamps += [window.stamps_ns[i] for i in window.new_indices]
    assert new_stamps == [i * STEP for i in range(count)]
    assert manager.stats.dropped == 0
    assert manager.flush() is None
    if count > 8:
        # The flushed window keeps the full size by reusing more earlier frames as overlap.
        assert windows[-1].num_frames == 8


def test_live_mode_drops_when_consumer_is_behind_and_counts_them():
    manager = WindowManager(WindowConfig(
        window_size=8, stride=4, mode='live', min_parallax_px=0.0, max_keyframe_interval_s=0.0,
        max_queued_frames=10,
    ))
    for i in range(30):  # nobody takes windows while these arrive
        manager.offer(_image(), i * STEP)
    assert manager.pending == 10
    assert manager.stats.dropped == 20
    window = manager.take_window()
    # The first window needs 8 frames and takes the newest 8 of the 10 pending.
    assert window.stamps_ns == [i * STEP for i in range(22, 30)]
    assert manager.stats.dropped == 22
    assert manager.take_window() is None


def test_replay_mode_never_drops_even_when_not_drained():
    manager = WindowManager(_every_frame(window_size=4, stride=2, max_queued_frames=2))
    for i in range(20):
        manager.offer(_image(), i * STEP)
    seen = []
    while (window := manager.take_window()) is not None:
        seen += [window.stamps_ns[i] for i in window.new_indices]
    if (tail := manager.flush()) is not None:
        seen += [tail.stamps_ns[i] for i in tail.new_indices]
    assert seen == [i * STEP for i in range(20)]
    assert manager.stats.dropped == 0


def test_stamps_backwards_reset_and_duplicates_are_counted():
    manager = WindowManager(_every_frame(window_size=4, stride=2))
    windows = [manager.push(_image(), i * STEP) for i in range(6)]
    assert manager.push(_image(), 5 * STEP) is None  # duplicate stamp
    assert manager.stats.duplicates == 1
    windows += [manager.push(_image(), (i + 1) * STEP) for i in range(4)]  # bag restarted
    made = [w for w in windows if w is not None]
    assert manager.stats.resets_time_backwards == 1
    after = made[-1]
    assert after.starts_segment and after.segment == made[0].segment + 1
    assert after.is_new == [True] * 4
    assert after.stamps_ns == [STEP, 2 * STEP, 3 * STEP, 4 * STEP]


def test_frame_size_change_resets_after_consecutive_frames_of_the_new_size():
    manager = WindowManager(_every_frame(window_size=4, stride=2))
    for i in range(5):
        manager.push(_image(), i * STEP)
    assert manager.pending == 1
    for i in range(5, 7):  # two frames of the new size: held, nothing reset yet
        assert manager.push(_image(hw=(30, 40)), i * STEP) is None
    assert manager.stats.resets_size_change == 0 and manager.pending == 1
    manager.push(_image(hw=(30, 40)), 7 * STEP)  # the third confirms the new stream
    assert manager.stats.resets_size_change == 1 and manager.stats.resets == 1
    assert manager.pending == 3  # the held frames start the new buffer
    window = manager.push(_image(hw=(30, 40)), 8 * STEP)
    assert window.starts_segment and window.stamps_ns == [5 * STEP, 6 * STEP, 7 * STEP, 8 * STEP]


@pytest.mark.parametrize('stray', [
    (np.zeros((1, 1, 3), np.uint8), 'size'),  # a 1x1 frame
    (None, 'backwards'),  # one stamp from the past
])
def test_a_single_stray_frame_never_resets(stray):
    image, kind = stray
    manager = WindowManager(_every_frame(window_size=4, stride=2))
    stamps = []
    for i in range(12):
        if i == 6:
            manager.push(image if image is not None else _image(), (
                i * STEP if kind == 'size' else 2 * STEP + 1))
            continue
        window = manager.push(_image(), 10 * STEP + i * STEP)
        if window is not None:
            stamps += [window.stamps_ns[k] for k in window.new_indices]
            assert not window.starts_segment or window.sequence == 0
    assert manager.stats.resets == 0 and manager.stats.outliers == 1
    assert stamps == [10 * STEP + i * STEP for i in range(12) if i != 6][:len(stamps)]
    assert len(stamps) == 10


def test_reset_confirm_frames_one_resets_at_once():
    manager = WindowManager(_every_frame(window_size=4, stride=2, reset_confirm_frames=1))
    for i in range(3):
        manager.push(_image(), (10 + i) * STEP)
    manager.push(_image(), STEP)
    assert manager.stats.resets_time_backwards == 1 and manager.pending == 1
    with pytest.raises(ValueError, match='reset_confirm_frames'):
        WindowConfig(reset_confirm_frames=0)


def test_keyframe_gate_uses_parallax_and_time():
    rng = np.random.default_rng(3)
    # Smooth random texture so Lucas-Kanade tracks corners reliably.
    base = rng.integers(0, 255, (60, 80), dtype=np.uint8)
    base = np.kron(base, np.ones((4, 4), np.uint8))
    texture = np.repeat(base[..., None], 3, axis=2)

    def view(shift: int) -> np.ndarray:
        return np.ascontiguousarray(texture[40:200, 40 + shift:280 + shift])

    manager = WindowManager(WindowConfig(
        window_size=4, stride=2, mode='replay', min_parallax_px=10.0,
        max_keyframe_interval_s=1.0, flow_width=240,
    ))
    assert manager.offer(view(0), 0)
    assert not manager.offer(view(3), STEP)  # 3 px < 10 px
    assert manager.offer(view(15), 2 * STEP)  # 15 px since the last keyframe
    assert not manager.offer(view(15), 3 * STEP)  # still
    assert manager.offer(view(15), 13 * STEP)  # still, but 1.1 s since the last keyframe
    assert manager.stats.keyframes == 3 and manager.stats.skipped == 2


def test_config_validation():
    with pytest.raises(ValueError):
        WindowConfig(window_size=4, stride=5)
    with pytest.raises(ValueError):
        WindowConfig(mode='fast')
    with pytest.raises(ValueError):
        WindowConfig(window_size=8, stride=4, max_queued_frames=2)
    with pytest.raises(ValueError):
        WindowManager().offer(np.zeros((4, 4), np.uint8), 0)


def test_windows_without_overlap_for_single_pass_offline_runs():
    """stride = window_size: every frame new, one window per block of frames (replay mode)."""
    manager = WindowManager(_every_frame(window_size=6, stride=6))
    windows = [w for w in (manager.push(_image(), i * STEP) for i in range(13)) if w]
    tail = manager.flush()
    assert [w.stamps_ns for w in windows] == [[i * STEP for i in range(6)],
                                              [i * STEP for i in range(6, 12)]]
    assert all(w.is_new == [True] * 6 for w in windows)
    # The last frame is padded with earlier ones, as any flushed window.
    assert tail.stamps_ns[-1] == 12 * STEP and tail.is_new[-1] and not tail.is_new[0]
    # A 500-frame window needs no live-mode queue bound in replay.
    assert WindowConfig(window_size=500, stride=500, mode='replay').overlap == 0
