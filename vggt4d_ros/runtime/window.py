# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Sliding window of keyframes: keyframe gate, overlap, bounded buffer, live vs replay.

Frames arrive one at a time. A keyframe gate keeps frames that moved enough (sparse optical
flow parallax in pixels) or after a maximum time; other frames are skipped (counted). Once
``stride`` new keyframes are pending, a :class:`Window` of ``window_size`` frames is formed: the
last ``window_size - stride`` frames of the previous window first (the overlap), then the new
keyframes, all in time order.

Reference frame choice: VGGT expresses a window in the camera of its frame 0. Frame 0 is the
oldest overlap frame, a frame the previous window already placed in the global map, so the
window-to-global alignment is anchored on frames the map knows. The newest frame is last.

Modes: ``replay`` never drops a keyframe (the caller drains windows as they form). ``live``
bounds latency: if more than ``max_queued_frames`` keyframes wait, the oldest pending ones are
dropped (counted), and a window always takes the newest ``stride`` pending keyframes.

Resets (counted, never raised): a stream whose stamps went back (bag restart, clock jump) or
whose image size changed clears the buffer and the overlap; the next window starts a new
segment (``Window.starts_segment``). One stray frame must not wipe the map, so a reset needs
``reset_confirm_frames`` consecutive frames of the new stream (same size, stamps increasing
among themselves); they are held meanwhile and then enter the new segment. A frame of the
current stream in between discards them (counted as ``outliers``). A stamp equal to the last
one is a duplicate and is skipped.

Thread safety: ``offer`` and ``take_window`` hold one lock, so a callback thread may offer while
a worker takes; ``push`` does both for the single-threaded case.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
import threading
from typing import Literal

import cv2
import numpy as np


@dataclass
class WindowConfig:
    """Sliding-window and keyframe settings."""

    window_size: int = field(default=8, metadata={
        'description': 'frames per window S (VGGT input).', 'range': (2, 512)})
    stride: int = field(default=4, metadata={
        'description':
            'new keyframes per window; overlap = window_size - stride frames shared with the '
            'previous window (>= 1 for alignment; stride = window_size gives windows without '
            'overlap, each one its own map segment: offline single-pass windows).',
        'range': (1, 512)})
    mode: Literal['live', 'replay'] = field(default='live', metadata={
        'description':
            'live: bounded latency, may drop (counted; the node drops the oldest queued frame '
            'under overload); replay: never drop (the node back-pressures the publisher: '
            'reliable, keep all).'})
    min_parallax_px: float = field(default=10.0, metadata={
        'description':
            'keyframe gate; median sparse-flow displacement (camera pixels) from the last '
            'keyframe needed to accept a frame. 0 disables the parallax test.',
        'range': (0.0, 10000.0)})
    min_keyframe_interval_s: float = field(default=0.0, metadata={
        'description': 'never accept keyframes closer in time than this.', 'range': (0.0, 3600.0)})
    max_keyframe_interval_s: float = field(default=1.0, metadata={
        'description':
            'accept a frame regardless of parallax after this long since the last keyframe (0 = '
            'no limit). Keeps windows coming when the camera is still.', 'range': (0.0, 3600.0)})
    max_queued_frames: int = field(default=8, metadata={
        'description': 'live mode bound on pending new keyframes.', 'range': (1, 100000)})
    flow_width: int = field(default=160, metadata={
        'description': 'width in pixels the gate downsizes images to before tracking.',
        'range': (16, 8192)})
    flow_max_corners: int = field(default=100, metadata={
        'description': 'Shi-Tomasi corners tracked by the gate.', 'range': (1, 100000)})
    min_tracked_fraction: float = field(default=0.3, metadata={
        'description':
            'below this fraction of tracked corners the view changed so much that the frame is a'
            ' keyframe.', 'range': (0.0, 1.0)})
    reset_confirm_frames: int = field(default=3, metadata={
        'description':
            'consecutive frames with a new image size or time base needed before the window and '
            'map reset (1: reset on the first such frame); a single stray frame is dropped and '
            'counted instead.', 'range': (1, 1000)})

    def __post_init__(self) -> None:
        if self.window_size < 2:
            raise ValueError('window_size must be >= 2')
        if not 1 <= self.stride <= self.window_size:
            raise ValueError('stride must be in [1, window_size] (window_size - 1 at most for '
                             'windows that overlap and chain into one map)')
        if self.mode not in ('live', 'replay'):
            raise ValueError(f"mode must be 'live' or 'replay', got {self.mode!r}")
        if self.mode == 'live' and self.max_queued_frames < self.stride:
            # Live mode drops beyond it; replay never drops, so there it does not matter.
            raise ValueError('max_queued_frames must be >= stride')
        if self.reset_confirm_frames < 1:
            raise ValueError('reset_confirm_frames must be >= 1')

    @property
    def overlap(self) -> int:
        return self.window_size - self.stride


#: The replay window policy, its one home: nothing dropped and every frame a keyframe (keyframe
#: gate off). What offline evaluation runs by default, what the warm-up runs, and what the
#: node's parameters say through ``replay_window_parameters`` in ``runtime.config``.
REPLAY_WINDOW = {'mode': 'replay', 'min_parallax_px': 0.0, 'max_keyframe_interval_s': 0.0}


def replay_window(config: WindowConfig | None = None) -> WindowConfig:
    """``config`` (default: ``WindowConfig()``) with the replay window policy applied."""
    return replace(config or WindowConfig(), **REPLAY_WINDOW)


@dataclass
class Window:
    """One window of frames for the backend.

    Attributes:
        frames: S images HxWx3 uint8 RGB, in time order.
        stamps_ns: S stamps (strictly increasing).
        frame_ids: S frame ids (ROS header frame_id), '' if unknown.
        is_new: S flags; False for overlap frames already output by the previous window.
        sequence: index of this window (0, 1, ...).
        segment: map segment; increments after each reset.
        starts_segment: True for the first window after construction or a reset.
        keyframe_indices: S running keyframe counters (unique over the manager's life).

    """

    frames: list[np.ndarray]
    stamps_ns: list[int]
    frame_ids: list[str]
    is_new: list[bool]
    sequence: int
    segment: int
    starts_segment: bool
    keyframe_indices: list[int]

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def new_indices(self) -> list[int]:
        return [i for i, new in enumerate(self.is_new) if new]


@dataclass
class WindowStats:
    """Counters of what the window manager did with its input."""

    frames_in: int = 0
    keyframes: int = 0
    skipped: int = 0
    duplicates: int = 0
    dropped: int = 0
    windows: int = 0
    resets: int = 0
    resets_time_backwards: int = 0
    resets_size_change: int = 0
    outliers: int = 0


@dataclass
class _Keyframe:
    image: np.ndarray
    stamp_ns: int
    frame_id: str
    index: int


@dataclass
class _GateState:
    grey: np.ndarray | None = None
    corners: np.ndarray | None = None
    stamp_ns: int | None = None
    scale: float = 1.0


class KeyframeGate:
    """Parallax/time keyframe test with pyramidal Lucas-Kanade on downsized grey images."""

    def __init__(self, config: WindowConfig) -> None:
        self._config = config
        self._state = _GateState()

    def reset(self) -> None:
        self._state = _GateState()

    def _grey(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        height, width = image.shape[:2]
        scale = min(1.0, self._config.flow_width / width)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            size = (max(8, round(width * scale)), max(8, round(height * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return grey, scale

    def parallax_px(self, image: np.ndarray) -> float:
        """Median displacement (camera pixels) of tracked corners since the last keyframe.

        Returns ``inf`` when too few corners track (large change, or nothing to track), so such
        a frame counts as a keyframe.
        """
        state = self._state
        if state.grey is None or state.corners is None or len(state.corners) == 0:
            return float('inf')
        grey, _ = self._grey(image)
        moved, status, _ = cv2.calcOpticalFlowPyrLK(
            state.grey, grey, state.corners, None, winSize=(15, 15), maxLevel=3
        )
        ok = status.reshape(-1) == 1
        if ok.sum() < max(4, self._config.min_tracked_fraction * len(state.corners)):
            return float('inf')
        shift = np.linalg.norm((moved - state.corners).reshape(-1, 2)[ok], axis=1)
        return float(np.median(shift) / state.scale)

    def accept(self, image: np.ndarray, stamp_ns: int) -> bool:
        """Decide whether ``image`` is a keyframe; on acceptance it becomes the reference."""
        cfg = self._config
        last = self._state.stamp_ns
        if last is not None:
            elapsed = (stamp_ns - last) * 1e-9
            if elapsed < cfg.min_keyframe_interval_s:
                return False
            forced = cfg.max_keyframe_interval_s > 0 and elapsed >= cfg.max_keyframe_interval_s
            if not forced and cfg.min_parallax_px > 0:
                if self.parallax_px(image) < cfg.min_parallax_px:
                    return False
        self._remember(image, stamp_ns)
        return True

    def _remember(self, image: np.ndarray, stamp_ns: int) -> None:
        self._state.stamp_ns = stamp_ns
        if self._config.min_parallax_px <= 0:
            return  # no flow needed
        grey, scale = self._grey(image)
        corners = cv2.goodFeaturesToTrack(
            grey, maxCorners=self._config.flow_max_corners, qualityLevel=0.01, minDistance=5
        )
        self._state.grey = grey
        self._state.scale = scale
        self._state.corners = corners if corners is not None else np.zeros((0, 1, 2), np.float32)


class WindowManager:
    """Buffers keyframes and cuts them into overlapping windows (see the module docstring)."""

    def __init__(self, config: WindowConfig | None = None) -> None:
        self.config = config or WindowConfig()
        self.stats = WindowStats()
        self._gate = KeyframeGate(self.config)
        self._lock = threading.Lock()
        self._pending: deque[_Keyframe] = deque()
        self._previous: list[_Keyframe] = []
        self._last_stamp: int | None = None
        self._image_shape: tuple[int, ...] | None = None
        self._keyframe_counter = 0
        self._segment = 0
        self._segment_started = False
        # Frames of a possible new stream (new size or time base), oldest first.
        self._candidate: list[tuple[np.ndarray, int, str]] = []

    def push(self, frame: np.ndarray, stamp_ns: int, frame_id: str = '') -> Window | None:
        """Offer a frame and return a window if one is ready (single-threaded use)."""
        self.offer(frame, stamp_ns, frame_id)
        return self.take_window()

    def offer(self, frame: np.ndarray, stamp_ns: int, frame_id: str = '') -> bool:
        """Run the gate and queue the frame if it is a keyframe; returns True if queued.

        Args:
            frame: HxWx3 uint8 RGB image (kept by reference; do not modify it afterwards).
            stamp_ns: source stamp in nanoseconds.
            frame_id: source frame id.

        """
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f'expected HxWx3 uint8 RGB, got {frame.shape} {frame.dtype}')
        stamp_ns = int(stamp_ns)
        with self._lock:
            self.stats.frames_in += 1
            if self._continues_stream(frame, stamp_ns):
                if self._candidate:
                    self.stats.outliers += len(self._candidate)
                    self._candidate = []
                return self._accept_locked(frame, stamp_ns, frame_id)
            if self._last_stamp is not None and stamp_ns == self._last_stamp:
                self.stats.duplicates += 1
                return False
            return self._offer_candidate_locked(frame, stamp_ns, frame_id)

    def _continues_stream(self, frame: np.ndarray, stamp_ns: int) -> bool:
        """Tell whether a frame continues the current stream (same size, a later stamp)."""
        if self._last_stamp is None:
            return True
        return frame.shape == self._image_shape and stamp_ns > self._last_stamp

    def _offer_candidate_locked(self, frame: np.ndarray, stamp_ns: int, frame_id: str) -> bool:
        """Hold a frame of a possible new stream; reset once enough of them came in a row."""
        if self._candidate:
            last_frame, last_stamp, _ = self._candidate[-1]
            if frame.shape != last_frame.shape or stamp_ns <= last_stamp:
                self.stats.outliers += len(self._candidate)
                self._candidate = []
        self._candidate.append((frame, stamp_ns, frame_id))
        if len(self._candidate) < self.config.reset_confirm_frames:
            return False
        held = self._candidate
        self._reset_locked()  # also forgets the candidate
        if held[0][1] < self._last_stamp:
            self.stats.resets_time_backwards += 1
        else:
            self.stats.resets_size_change += 1
        self._last_stamp = self._image_shape = None
        queued = [self._accept_locked(*item) for item in held]
        return queued[-1]

    def _accept_locked(self, frame: np.ndarray, stamp_ns: int, frame_id: str) -> bool:
        self._last_stamp = stamp_ns
        self._image_shape = frame.shape
        if not self._gate.accept(frame, stamp_ns):
            self.stats.skipped += 1
            return False
        self.stats.keyframes += 1
        self._pending.append(_Keyframe(frame, stamp_ns, frame_id, self._keyframe_counter))
        self._keyframe_counter += 1
        if self.config.mode == 'live':
            while len(self._pending) > self.config.max_queued_frames:
                self._pending.popleft()
                self.stats.dropped += 1
        return True

    def take_window(self) -> Window | None:
        """Form the next window if enough new keyframes are pending, else None."""
        with self._lock:
            needed = self.config.stride if self._previous else self.config.window_size
            if len(self._pending) < needed:
                return None
            if self.config.mode == 'live':
                # Consumer fell behind: keep latency bounded by taking the freshest keyframes.
                while len(self._pending) > needed:
                    self._pending.popleft()
                    self.stats.dropped += 1
            new = [self._pending.popleft() for _ in range(needed)]
            return self._form_locked(new)

    def flush(self) -> Window | None:
        """Window of all pending keyframes (end of a replay), padded with earlier frames.

        The overlap is as long as the previous window allows, so the window keeps
        ``window_size`` frames when possible. Returns None when nothing is pending.
        """
        with self._lock:
            if not self._pending:
                return None
            new = list(self._pending)
            self._pending.clear()
            return self._form_locked(new)

    def reset(self) -> None:
        """Drop pending frames and the overlap; the next window starts a new segment."""
        with self._lock:
            self._reset_locked()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _reset_locked(self) -> None:
        self.stats.resets += 1
        self._candidate = []
        self._pending.clear()
        self._previous = []
        self._gate.reset()
        if self._segment_started:
            self._segment += 1
            self._segment_started = False

    def _form_locked(self, new: list[_Keyframe]) -> Window:
        keep = max(0, self.config.window_size - len(new))
        overlap = self._previous[len(self._previous) - keep:] if keep else []
        frames = overlap + new
        starts = not self._segment_started
        self._segment_started = True
        window = Window(
            frames=[k.image for k in frames],
            stamps_ns=[k.stamp_ns for k in frames],
            frame_ids=[k.frame_id for k in frames],
            is_new=[False] * len(overlap) + [True] * len(new),
            sequence=self.stats.windows,
            segment=self._segment,
            starts_segment=starts,
            keyframe_indices=[k.index for k in frames],
        )
        self.stats.windows += 1
        # Only the frames a later window may reuse as overlap are kept.
        self._previous = frames[-(self.config.window_size - 1):]
        return window


__all__ = ['KeyframeGate', 'REPLAY_WINDOW', 'replay_window', 'Window', 'WindowConfig',
           'WindowManager', 'WindowStats']
