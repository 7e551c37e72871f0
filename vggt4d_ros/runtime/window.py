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

Rigs (``num_views`` N > 1, docs/method.md section 7): the unit is a **step**, one frame per
camera grouped by stamp upstream (:class:`vggt4d_ros.runtime.rig.RigGrouper`), offered with
``offer_step``. Everything above then counts steps: the gate decides per step (a step is a
keyframe when ANY camera moved enough, or by the step's time limits; the step's stamp is its
reference camera's, view 0), a window holds ``window_size // N`` steps and slides by
``max(1, stride // N)`` steps, live mode drops whole steps, resets are per step (a stamp going
back or any camera's image size changing). The window's frames are step-major (frame
``t * N + v``), so VGGT's frame 0 is the reference camera at the oldest step. The stats count
steps. N = 1 is the single-camera manager exactly.

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

from vggt4d_ros.motion.rig import RigLayout


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
        frames: S images HxWx3 uint8 RGB, in time order (a rig: step-major, frame t*N + v).
        stamps_ns: S stamps (increasing; a rig: each frame its own camera's stamp).
        frame_ids: S frame ids (ROS header frame_id), '' if unknown.
        is_new: S flags; False for overlap frames already output by the previous window.
        sequence: index of this window (0, 1, ...).
        segment: map segment; increments after each reset.
        starts_segment: True for the first window after construction or a reset.
        keyframe_indices: S running keyframe (step) counters (unique over the manager's life).
        num_views: N cameras per step (1: a single camera).

    """

    frames: list[np.ndarray]
    stamps_ns: list[int]
    frame_ids: list[str]
    is_new: list[bool]
    sequence: int
    segment: int
    starts_segment: bool
    keyframe_indices: list[int]
    num_views: int = 1

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def views(self) -> list[int]:
        """Camera index of every frame (S ints)."""
        return [i % self.num_views for i in range(len(self.frames))]

    @property
    def layout(self) -> RigLayout:
        """Views x steps of the window's frames."""
        return RigLayout.for_frames(len(self.frames), self.num_views)

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
    """One keyframe step: a frame per camera (one for a single camera)."""

    images: list[np.ndarray]
    stamps_ns: list[int]
    frame_ids: list[str]
    index: int


@dataclass
class _GateState:
    grey: np.ndarray | None = None
    corners: np.ndarray | None = None
    scale: float = 1.0


class KeyframeGate:
    """Parallax/time keyframe test with pyramidal Lucas-Kanade on downsized grey images.

    With ``num_views`` cameras the test is per step: parallax per camera against that camera's
    last keyframe, accepted when any camera moved enough; the time limits use the step stamp.
    """

    def __init__(self, config: WindowConfig, num_views: int = 1) -> None:
        self._config = config
        self._num_views = num_views
        self._states = [_GateState() for _ in range(num_views)]
        self._stamp_ns: int | None = None

    def reset(self) -> None:
        self._states = [_GateState() for _ in range(self._num_views)]
        self._stamp_ns = None

    def _grey(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        height, width = image.shape[:2]
        scale = min(1.0, self._config.flow_width / width)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            size = (max(8, round(width * scale)), max(8, round(height * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return grey, scale

    def parallax_px(self, image: np.ndarray, view: int = 0) -> float:
        """Median displacement (camera pixels) of tracked corners since the camera's last keyframe.

        Returns ``inf`` when too few corners track (large change, or nothing to track), so such
        a frame counts as a keyframe.
        """
        state = self._states[view]
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
        return self.accept_step([image], stamp_ns)

    def accept_step(self, images: list[np.ndarray], stamp_ns: int) -> bool:
        """Decide whether a step (one image per camera) is a keyframe step (then remembered)."""
        cfg = self._config
        last = self._stamp_ns
        if last is not None:
            elapsed = (stamp_ns - last) * 1e-9
            if elapsed < cfg.min_keyframe_interval_s:
                return False
            forced = cfg.max_keyframe_interval_s > 0 and elapsed >= cfg.max_keyframe_interval_s
            if not forced and cfg.min_parallax_px > 0:
                # Any camera: one looking along the motion sees little flow, a side one a lot.
                if not any(self.parallax_px(image, view) >= cfg.min_parallax_px
                           for view, image in enumerate(images)):
                    return False
        self._stamp_ns = stamp_ns
        for view, image in enumerate(images):
            self._remember(image, view)
        return True

    def _remember(self, image: np.ndarray, view: int) -> None:
        if self._config.min_parallax_px <= 0:
            return  # no flow needed
        state = self._states[view]
        grey, scale = self._grey(image)
        corners = cv2.goodFeaturesToTrack(
            grey, maxCorners=self._config.flow_max_corners, qualityLevel=0.01, minDistance=5
        )
        state.grey = grey
        state.scale = scale
        state.corners = corners if corners is not None else np.zeros((0, 1, 2), np.float32)


class WindowManager:
    """Buffers keyframes and cuts them into overlapping windows (see the module docstring).

    Args:
        config: window and gate settings (``window_size`` and ``stride`` in frames).
        num_views: cameras per step (1: a single camera; N > 1: offer steps, see the module
            docstring).

    """

    def __init__(self, config: WindowConfig | None = None, num_views: int = 1) -> None:
        self.config = config or WindowConfig()
        if num_views < 1:
            raise ValueError('num_views must be >= 1')
        self.num_views = num_views
        #: steps per window and new steps per window
        self.window_steps = self.config.window_size // num_views
        self.stride_steps = max(1, self.config.stride // num_views)
        # stride <= window_size (WindowConfig) keeps stride_steps <= window_steps; equal is
        # the offline single-pass case (no overlap, each window its own map segment).
        if self.window_steps < 2:
            raise ValueError(
                f'window_size={self.config.window_size} and stride={self.config.stride} give '
                f'{self.window_steps} steps of {num_views} views sliding by {self.stride_steps}:'
                ' a window needs >= 2 steps')
        self._max_queued = max(self.stride_steps, self.config.max_queued_frames // num_views)
        self.stats = WindowStats()
        self._gate = KeyframeGate(self.config, num_views)
        self._lock = threading.Lock()
        self._pending: deque[_Keyframe] = deque()
        self._previous: list[_Keyframe] = []
        self._last_stamp: int | None = None
        self._image_shape: tuple | None = None
        self._keyframe_counter = 0
        self._segment = 0
        self._segment_started = False
        # Steps of a possible new stream (new size or time base), oldest first.
        self._candidate: list[tuple[list[np.ndarray], list[int], list[str]]] = []

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
        if self.num_views != 1:
            raise ValueError(f'a {self.num_views}-camera window manager takes steps '
                             '(offer_step), not single frames')
        return self.offer_step([frame], [stamp_ns], [frame_id])

    def offer_step(self, frames: list[np.ndarray], stamps_ns: list[int],
                   frame_ids: list[str] | None = None) -> bool:
        """Offer one step, a frame per camera in view order; returns True if queued.

        Args:
            frames: N HxWx3 uint8 RGB images (kept by reference).
            stamps_ns: N source stamps; the step's stamp is the reference camera's (view 0).
            frame_ids: N source frame ids (None: all '').

        """
        frames = [np.asarray(frame) for frame in frames]
        frame_ids = list(frame_ids) if frame_ids is not None else [''] * len(frames)
        if not len(frames) == len(stamps_ns) == len(frame_ids) == self.num_views:
            raise ValueError(f'a step needs {self.num_views} frames, stamps and frame ids, got '
                             f'{len(frames)}, {len(stamps_ns)} and {len(frame_ids)}')
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f'expected HxWx3 uint8 RGB, got {frame.shape} {frame.dtype}')
        stamps = [int(s) for s in stamps_ns]
        shape = tuple(frame.shape for frame in frames)
        with self._lock:
            self.stats.frames_in += 1
            if self._continues_stream(shape, stamps[0]):
                if self._candidate:
                    self.stats.outliers += len(self._candidate)
                    self._candidate = []
                return self._accept_locked(frames, stamps, frame_ids)
            if self._last_stamp is not None and stamps[0] == self._last_stamp:
                self.stats.duplicates += 1
                return False
            return self._offer_candidate_locked(frames, stamps, frame_ids)

    def _continues_stream(self, shape: tuple, stamp_ns: int) -> bool:
        """Tell whether a step continues the current stream (same sizes, a later stamp)."""
        if self._last_stamp is None:
            return True
        return shape == self._image_shape and stamp_ns > self._last_stamp

    def _offer_candidate_locked(self, frames: list[np.ndarray], stamps: list[int],
                                frame_ids: list[str]) -> bool:
        """Hold a step of a possible new stream; reset once enough of them came in a row."""
        if self._candidate:
            last_frames, last_stamps, _ = self._candidate[-1]
            if [f.shape for f in frames] != [f.shape for f in last_frames] \
                    or stamps[0] <= last_stamps[0]:
                self.stats.outliers += len(self._candidate)
                self._candidate = []
        self._candidate.append((frames, stamps, frame_ids))
        if len(self._candidate) < self.config.reset_confirm_frames:
            return False
        held = self._candidate
        self._reset_locked()  # also forgets the candidate
        if held[0][1][0] < self._last_stamp:
            self.stats.resets_time_backwards += 1
        else:
            self.stats.resets_size_change += 1
        self._last_stamp = self._image_shape = None
        queued = [self._accept_locked(*item) for item in held]
        return queued[-1]

    def _accept_locked(self, frames: list[np.ndarray], stamps: list[int],
                       frame_ids: list[str]) -> bool:
        self._last_stamp = stamps[0]
        self._image_shape = tuple(frame.shape for frame in frames)
        if not self._gate.accept_step(frames, stamps[0]):
            self.stats.skipped += 1
            return False
        self.stats.keyframes += 1
        self._pending.append(_Keyframe(frames, stamps, frame_ids, self._keyframe_counter))
        self._keyframe_counter += 1
        if self.config.mode == 'live':
            while len(self._pending) > self._max_queued:
                self._pending.popleft()
                self.stats.dropped += 1
        return True

    def take_window(self) -> Window | None:
        """Form the next window if enough new keyframes are pending, else None."""
        with self._lock:
            needed = self.stride_steps if self._previous else self.window_steps
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
        keep = max(0, self.window_steps - len(new))
        overlap = self._previous[len(self._previous) - keep:] if keep else []
        steps = overlap + new
        starts = not self._segment_started
        self._segment_started = True
        views = self.num_views
        window = Window(
            frames=[image for k in steps for image in k.images],
            stamps_ns=[stamp for k in steps for stamp in k.stamps_ns],
            frame_ids=[frame_id for k in steps for frame_id in k.frame_ids],
            is_new=[False] * (len(overlap) * views) + [True] * (len(new) * views),
            sequence=self.stats.windows,
            segment=self._segment,
            starts_segment=starts,
            keyframe_indices=[k.index for k in steps for _ in range(views)],
            num_views=views,
        )
        self.stats.windows += 1
        # Only the steps a later window may reuse as overlap are kept.
        self._previous = steps[-(self.window_steps - 1):]
        return window


__all__ = ['KeyframeGate', 'REPLAY_WINDOW', 'replay_window', 'Window', 'WindowConfig',
           'WindowManager', 'WindowStats']
