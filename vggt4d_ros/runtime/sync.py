# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Approximate-time pairing of stamped streams (image <-> depth, later N cameras), ROS-free.

On a ROS install the node uses ``message_filters.ApproximateTimeSynchronizer`` (the rclpy
one, with ``queue_size`` and ``slop``); :class:`ApproximateSync` makes the same sets on the
same stamp sequences for pip-only machines. The policy, as ``message_filters``'s Python
synchronizer documents and implements it:

* every input keeps at most ``queue_size`` messages keyed by stamp (a repeated stamp
  replaces the stored message); when a queue grows beyond that, its oldest stamps are dropped;
* only the arriving message triggers a match: in every OTHER queue, the stamps within ``slop``
  of it (|dt| <= slop) are candidates, nearest first; no candidate in some queue -> no set;
* candidate combinations are tried in that order (the last input varying fastest) and the first
  whose total span (newest - oldest stamp, the arriving one included) is strictly below ``slop``
  is emitted; its messages leave their queues. At most one set per arriving message.

Messages never matched are not lost to the caller (images are processed anyway); they are
counted when their queue pushes them out (``stats.dropped``). The C++ ``ApproximateTime``
policy (pivot search, ``max_interval_duration``, no slop) is a different algorithm and is not
reproduced here.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
import itertools
from typing import Any, Generic, TypeVar

Item = TypeVar('Item')


@dataclass
class SyncStats:
    """Counters: sets emitted, messages added and dropped unmatched, per input."""

    matched: int = 0
    added: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)


class ApproximateSync(Generic[Item]):
    """message_filters' Python ApproximateTimeSynchronizer policy over (stamp, item) pairs.

    Args:
        inputs: number of streams (>= 2).
        queue_size: messages kept per stream.
        slop_s: largest stamp difference (seconds) for messages to be paired (as rclpy's
            ``Duration(seconds=slop)``: whole nanoseconds).

    """

    def __init__(self, inputs: int, queue_size: int, slop_s: float) -> None:
        if inputs < 2 or queue_size < 1 or slop_s < 0:
            raise ValueError('need inputs >= 2, queue_size >= 1 and slop_s >= 0')
        self.queue_size = queue_size
        self.slop_ns = int(slop_s * 1e9)
        self._queues: list[dict[int, Item]] = [{} for _ in range(inputs)]
        self.stats = SyncStats(added=[0] * inputs, dropped=[0] * inputs)

    def add(self, index: int, stamp_ns: int, item: Item) -> tuple[Item, ...] | None:
        """Add a message to stream ``index``; return the completed set (one per stream) or None."""
        stamp_ns = int(stamp_ns)
        queue = self._queues[index]
        queue[stamp_ns] = item
        self.stats.added[index] += 1
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.stats.dropped[index] += 1
        candidates = []
        for other, other_queue in enumerate(self._queues):
            if other == index:
                continue
            near = [s for s in other_queue if abs(s - stamp_ns) <= self.slop_ns]
            if not near:
                return None
            candidates.append(sorted(near, key=lambda s: abs(s - stamp_ns)))
        for combination in itertools.product(*candidates):
            stamps = list(combination)
            stamps.insert(index, stamp_ns)
            if max(stamps) - min(stamps) >= self.slop_ns:
                continue
            if any(s not in q for s, q in zip(stamps, self._queues)):
                continue  # the arriving message itself was pushed out (older than its queue)
            matched = tuple(q.pop(s) for s, q in zip(stamps, self._queues))
            self.stats.matched += 1
            return matched
        return None

    def discard_older(self, stamp_ns: int) -> list[int]:
        """Remove every waiting message older than ``stamp_ns``; returns the count per input.

        Not part of message_filters' policy: a caller that consumes sets in time order (a rig's
        steps) uses it after each set, since older messages could only form older sets.
        """
        counts = []
        for queue in self._queues:
            old = [s for s in queue if s < stamp_ns]
            for stamp in old:
                del queue[stamp]
            counts.append(len(old))
        return counts

    def pending(self, index: int) -> list[int]:
        """Stamps waiting in stream ``index`` (oldest first)."""
        return sorted(self._queues[index])


class DepthPairing:
    """Pairs colour-image stamps with depth images; the scale source reads ``depths``.

    Images go to the engine at once whether paired or not; a pair found later (the depth came
    after its image) still reaches the scale source, which runs when the image's window is
    processed. ``dropped_images`` counts images pushed out of the queue without a depth (one
    whose depth never comes may also just wait in the queue: count per window upstream).

    Args:
        queue_size, slop_s: the synchronizer's settings.
        max_pairs: pairs kept for the scale source (oldest forgotten first).

    """

    def __init__(self, queue_size: int = 10, slop_s: float = 0.02, max_pairs: int = 256) -> None:
        self.sync: ApproximateSync[Any] = ApproximateSync(2, queue_size, slop_s)
        self.max_pairs = max_pairs
        self.depths: OrderedDict[int, Any] = OrderedDict()

    @property
    def dropped_images(self) -> int:
        return self.sync.stats.dropped[0]

    def add_image(self, stamp_ns: int) -> bool:
        """Offer a colour image's stamp; True if it was paired at once."""
        return self._store(self.sync.add(0, stamp_ns, int(stamp_ns)))

    def add_depth(self, stamp_ns: int, depth: Any) -> bool:
        """Offer a depth image; True if it completed a pair."""
        return self._store(self.sync.add(1, stamp_ns, depth))

    def add_pair(self, image_stamp_ns: int, depth: Any) -> None:
        """Store a pair made elsewhere (``message_filters`` on a ROS install): no pairing here."""
        self._store((int(image_stamp_ns), depth))

    def _store(self, matched: tuple | None) -> bool:
        if matched is None:
            return False
        image_stamp, depth = matched
        self.depths[image_stamp] = depth
        while len(self.depths) > self.max_pairs:
            self.depths.popitem(last=False)
        return True
