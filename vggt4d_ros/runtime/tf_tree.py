# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A ROS-free TF tree with the lookups and errors of tf2's BufferCore (ROS 2 Jazzy).

One home for reading TF outside tf2_ros: the node's one TF buffer (``ros/tf_buffer.py``) feeds
it from ``/tf`` and ``/tf_static`` where tf2_ros is missing (the pip wheels used in CI), and
the replay tool (``replay/bag_tf.py``) feeds it from a bag's ``/tf`` and ``/tf_static``, so
both front ends resolve the same chains at the same stamps. It takes plain transforms
(frames, stamp, translation, quaternion), never messages. It follows tf2 where a caller can
see it, checked against lookups recorded from the real ``tf2_ros.Buffer``
(``test/runtime/test_tf_tree_against_tf2.py``):

* per child frame a history of ``parent <- child`` samples, pruned to ``cache_ns`` (tf2's
  default 10 s) behind the newest sample at each insertion; a sample older than that is
  refused; a static transform is one sample valid at every time;
* a lookup walks both frames up to their common ancestor at the requested time, so chains
  (``odom -> base_link -> camera_link -> camera_optical_frame``) resolve; a frame may change its
  parent over time (the sample's parent at that time counts);
* between two samples: linear translation, slerp rotation; a stamp beyond the samples is an
  extrapolation error (no extrapolation), into the future or the past;
* time 0 means the latest time common to every dynamic link of the chain;
* errors: :class:`LookupException` (unknown frame), :class:`ConnectivityException` (frames in
  different trees), :class:`ExtrapolationException`, :class:`InvalidArgumentException`
  (empty frame id or one starting with '/'), with tf2_py's names; :func:`failure_kind` names
  them (also tf2_ros's exceptions of the same names) for counters.

Poses are [4,4] float64 ``T_target_source`` (maps points in the source frame to the target
frame); stamps are integer nanoseconds. Thread-safe (the executor feeds, the worker looks up).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
import math
import threading

import numpy as np

from vggt4d_ros.geometry.rigid import invert_rigid
from vggt4d_ros.geometry.rotation import rotation_from_quaternion_xyzw
from vggt4d_ros.geometry.rotation import slerp_xyzw

#: tf2's default cache duration (BUFFER_CORE_DEFAULT_CACHE_TIME), nanoseconds.
DEFAULT_CACHE_NS = 10_000_000_000
#: Longest parent chain walked (tf2's MAX_GRAPH_DEPTH): a longer one is a loop.
MAX_DEPTH = 1000
#: A quaternion whose squared norm is further than this from 1 is refused (as tf2 does).
QUATERNION_TOLERANCE = 10e-3


class TransformException(Exception):
    """Base of the lookup errors (tf2.TransformException)."""


class LookupException(TransformException):
    """A frame is not known (or the tree has a loop)."""


class ConnectivityException(TransformException):
    """The two frames are known but not in the same tree."""


class ExtrapolationException(TransformException):
    """The stamp lies outside the samples of a link ('into the future' / 'into the past')."""


class InvalidArgumentException(TransformException):
    """An empty frame id or one starting with '/'."""


#: Why a lookup failed: tf2's error kinds, extrapolation split by direction.
FAILURE_KINDS = ('unknown_frame', 'not_connected', 'future', 'past', 'extrapolation',
                 'invalid_frame', 'other')


def failure_kind(error: Exception) -> str:
    """One of :data:`FAILURE_KINDS` for an exception of this module or of tf2_ros.

    By class name and message, so tf2_ros's exceptions (same names, same messages) classify
    the same without importing tf2_ros here.
    """
    name = type(error).__name__
    if name == 'ExtrapolationException':
        text = str(error)
        return 'future' if 'into the future' in text else \
            'past' if 'into the past' in text else 'extrapolation'
    return {'LookupException': 'unknown_frame', 'ConnectivityException': 'not_connected',
            'InvalidArgumentException': 'invalid_frame'}.get(name, 'other')


@dataclass(frozen=True)
class Sample:
    """One ``parent <- child`` transform at a stamp (rotation: quaternion x, y, z, w)."""

    stamp_ns: int
    parent: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]

    def matrix(self) -> np.ndarray:
        """[4,4] float64 ``T_parent_child``."""
        pose = np.eye(4)
        pose[:3, :3] = rotation_from_quaternion_xyzw(np.asarray(self.rotation))
        pose[:3, 3] = self.translation
        return pose


class _History:
    """A child frame's dynamic samples, oldest first (tf2's TimeCache)."""

    static = False

    def __init__(self, cache_ns: int) -> None:
        self._cache_ns = cache_ns
        self._stamps: list[int] = []
        self._samples: list[Sample] = []

    def insert(self, sample: Sample) -> bool:
        """Store a sample; False when it is older than the cache behind the newest one."""
        latest = self._stamps[-1] if self._stamps else 0
        # Pruned against the newest sample before this one, as tf2 does.
        while self._stamps and self._stamps[0] + self._cache_ns < latest:
            del self._stamps[0], self._samples[0]
        if self._stamps and sample.stamp_ns < latest - self._cache_ns:
            return False
        at = bisect_right(self._stamps, sample.stamp_ns)
        same = at - 1
        while same >= 0 and self._stamps[same] == sample.stamp_ns:
            if self._samples[same] == sample:
                return True  # an exact repeat is kept once
            same -= 1
        # A new sample at a known stamp goes after the older ones: it wins lookups there.
        self._stamps.insert(at, sample.stamp_ns)
        self._samples.insert(at, sample)
        return True

    def latest(self) -> tuple[int, str | None]:
        """(stamp of the newest sample, its parent); (0, None) when empty."""
        if not self._samples:
            return 0, None
        return self._stamps[-1], self._samples[-1].parent

    def at(self, stamp_ns: int) -> Sample:
        """Return the sample at ``stamp_ns`` (0: the newest), interpolated between neighbours.

        Raises:
            ExtrapolationException: no sample, one sample at another stamp, or a stamp after
                the newest ('into the future') or before the oldest ('into the past').

        """
        stamps, samples = self._stamps, self._samples
        if not samples:
            raise ExtrapolationException('no data for this link')
        if stamp_ns == 0 or stamp_ns == stamps[-1]:
            return samples[-1]
        if len(samples) == 1:
            raise ExtrapolationException(
                f'Lookup would require extrapolation at time {_seconds(stamp_ns)}, but only '
                f'time {_seconds(stamps[0])} is in the buffer')
        if stamp_ns == stamps[0]:
            return samples[0]
        if stamp_ns > stamps[-1]:
            raise ExtrapolationException(
                f'Lookup would require extrapolation into the future. Requested time '
                f'{_seconds(stamp_ns)} but the latest data is at time {_seconds(stamps[-1])}')
        if stamp_ns < stamps[0]:
            raise ExtrapolationException(
                f'Lookup would require extrapolation into the past. Requested time '
                f'{_seconds(stamp_ns)} but the earliest data is at time {_seconds(stamps[0])}')
        index = bisect_right(stamps, stamp_ns) - 1
        older, newer = samples[index], samples[index + 1]
        if older.parent != newer.parent:
            return older  # re-parented between the two: the older one holds until the change
        return _interpolate(older, newer, stamp_ns)


class _Static:
    """A static transform: one sample, valid at every time (tf2's StaticCache)."""

    static = True

    def __init__(self) -> None:
        self._sample: Sample | None = None

    def insert(self, sample: Sample) -> bool:
        self._sample = sample
        return True

    def latest(self) -> tuple[int, str | None]:
        return 0, self._sample.parent

    def at(self, stamp_ns: int) -> Sample:
        return self._sample


def _interpolate(older: Sample, newer: Sample, stamp_ns: int) -> Sample:
    """Linear translation, slerp rotation at ``stamp_ns`` between two samples."""
    ratio = (stamp_ns - older.stamp_ns) / (newer.stamp_ns - older.stamp_ns)
    translation = tuple((1.0 - ratio) * a + ratio * b
                        for a, b in zip(older.translation, newer.translation))
    rotation = slerp_xyzw(np.asarray(older.rotation), np.asarray(newer.rotation),
                          np.asarray(ratio))
    return Sample(older.stamp_ns, older.parent, translation, tuple(rotation.tolist()))


def _seconds(stamp_ns: int) -> str:
    return f'{stamp_ns * 1e-9:.6f}'


class TfTree:
    """tf2's BufferCore semantics for ``set_transform`` and ``lookup`` (see the module docstring).

    Args:
        cache_ns: how long dynamic samples are kept behind the newest one (nanoseconds).

    """

    def __init__(self, cache_ns: int = DEFAULT_CACHE_NS) -> None:
        self._cache_ns = int(cache_ns)
        self._frames: set[str] = set()  # every frame named as a parent or a child
        self._links: dict[str, _History | _Static] = {}  # by child frame
        self._lock = threading.Lock()

    def set_transform(self, parent: str, child: str, stamp_ns: int,
                      translation, rotation, static: bool = False) -> bool:
        """Store ``parent <- child`` (translation [3], quaternion xyzw [4]).

        Returns:
            False when refused: same or empty frames, NaN, a quaternion far from unit norm,
            or (dynamic) a stamp older than the cache behind the link's newest sample.

        """
        parent, child = parent.lstrip('/'), child.lstrip('/')
        values = [float(v) for v in (*translation, *rotation)]
        norm2 = sum(v * v for v in values[3:])
        if not parent or not child or parent == child or any(math.isnan(v) for v in values) \
                or not abs(norm2 - 1.0) < QUATERNION_TOLERANCE:
            return False
        sample = Sample(int(stamp_ns), parent, tuple(values[:3]), tuple(values[3:]))
        with self._lock:
            self._frames.update((parent, child))
            link = self._links.get(child)
            if link is None or link.static != static:
                link = _Static() if static else _History(self._cache_ns)
                self._links[child] = link
            return link.insert(sample)

    def clear(self) -> None:
        """Forget the dynamic samples (static transforms stay, as in tf2)."""
        with self._lock:
            for child, link in list(self._links.items()):
                if not link.static:
                    self._links[child] = _History(self._cache_ns)

    def lookup(self, target: str, source: str, stamp_ns: int = 0) -> tuple[np.ndarray, int]:
        """``T_target_source`` [4,4] at ``stamp_ns`` (0: latest common time) and its stamp.

        Raises:
            TransformException: one of the subclasses above.

        """
        stamp_ns = int(stamp_ns)
        with self._lock:
            if target == source:
                if stamp_ns == 0 and target in self._links:
                    stamp_ns = self._links[target].latest()[0]
                return np.eye(4), stamp_ns
            for frame in (target, source):
                self._check_frame(frame)
            if stamp_ns == 0:
                stamp_ns = self._latest_common_time(target, source)
            return self._walk(target, source, stamp_ns), stamp_ns

    def _check_frame(self, frame: str) -> None:
        if not frame or frame.startswith('/'):
            raise InvalidArgumentException(
                f'invalid frame id {frame!r}: tf2 frame ids cannot be empty or start with "/"')
        if frame not in self._frames:
            raise LookupException(f'"{frame}" passed to lookup does not exist')

    def _walk(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """Both frames up to their common ancestor; ``T_target_source``."""
        # Source side: up from the source until the root, the target, or a link without data.
        top_from_source, frame, top = np.eye(4), source, source
        source_error: ExtrapolationException | None = None
        for _ in range(MAX_DEPTH + 1):
            link = self._links.get(frame)
            if link is None:
                top = frame
                break
            try:
                sample = link.at(stamp_ns)
            except ExtrapolationException as error:
                # There may still be a path through the target side.
                top, source_error = frame, error
                break
            if frame == target:
                return top_from_source
            top_from_source = sample.matrix() @ top_from_source
            top, frame = frame, sample.parent
        else:
            raise LookupException('the tf tree contains a loop')
        # Target side: up from the target to the source side's top.
        top_from_target, frame = np.eye(4), target
        for _ in range(MAX_DEPTH + 1):
            if frame == top:
                break
            link = self._links.get(frame)
            if link is None:
                break
            try:
                sample = link.at(stamp_ns)
            except ExtrapolationException as error:
                raise ExtrapolationException(
                    f'{error}, when looking up transform from frame [{source}] to frame '
                    f'[{target}]') from None
            if frame == source:
                return invert_rigid(top_from_target)
            top_from_target = sample.matrix() @ top_from_target
            frame = sample.parent
        else:
            raise LookupException('the tf tree contains a loop')
        if frame != top:
            if source_error is not None:
                raise ExtrapolationException(
                    f'{source_error}, when looking up transform from frame [{source}] to '
                    f'frame [{target}]')
            raise ConnectivityException(
                f"Could not find a connection between '{target}' and '{source}' because they "
                'are not part of the same tree')
        return invert_rigid(top_from_target) @ top_from_source

    def _latest_common_time(self, target: str, source: str) -> int:
        """Newest stamp every dynamic link between the frames has (0: all static)."""
        up_from_source: list[tuple[int, str]] = []  # (latest stamp, parent) per link
        common, frame = None, source
        for _ in range(MAX_DEPTH + 1):
            latest, parent = self._latest_of(frame)
            if parent is None:
                break
            common = _earliest(common, latest)
            up_from_source.append((latest, parent))
            frame = parent
            if frame == target:
                return common or 0
        else:
            raise LookupException('the tf tree contains a loop')
        parents = [parent for _, parent in up_from_source]
        common, frame, meeting = None, target, None
        for _ in range(MAX_DEPTH + 1):
            latest, parent = self._latest_of(frame)
            if parent is None:
                break
            common = _earliest(common, latest)
            if parent in parents:
                meeting = parent
                break
            frame = parent
            if frame == source:
                return common or 0
        else:
            raise LookupException('the tf tree contains a loop')
        if meeting is None:
            raise ConnectivityException(
                f"Could not find a connection between '{target}' and '{source}' because they "
                'are not part of the same tree')
        for latest, parent in up_from_source:
            common = _earliest(common, latest)
            if parent == meeting:
                break
        return common or 0

    def _latest_of(self, frame: str) -> tuple[int, str | None]:
        link = self._links.get(frame)
        return (0, None) if link is None else link.latest()


def _earliest(common: int | None, latest: int) -> int | None:
    """Fold a link's newest stamp into the common time (0 = static: no limit)."""
    if latest == 0:
        return common
    return latest if common is None else min(common, latest)


__all__ = ['ConnectivityException', 'DEFAULT_CACHE_NS', 'ExtrapolationException',
           'FAILURE_KINDS', 'failure_kind', 'InvalidArgumentException', 'LookupException',
           'TfTree', 'TransformException']
