# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Bounded hand-off between subscription callbacks and the single worker thread.

Live mode drops the OLDEST queued frame when full (the newest frame is the most useful for a
robot) and counts it. Replay mode never drops: ``put`` waits for room, which pushes back on a
KEEP_ALL reliable subscription and from there on the publisher.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
import threading
import time
from typing import Any


@dataclass
class QueuedFrame:
    """One converted input image.

    Attributes:
        rgb: [H,W,3] uint8 RGB pixels.
        stamp_ns: header stamp in nanoseconds.
        header: the source std_msgs/Header (stamp and frame_id are copied to the outputs).
        received_s: ``time.monotonic()`` at arrival, for the image-to-mask latency.

    """

    rgb: Any
    stamp_ns: int
    header: Any
    received_s: float


class FrameQueue:
    """Thread-safe bounded FIFO with drop-oldest (live) or blocking (replay) behaviour."""

    def __init__(self, maxsize: int, drop_oldest: bool) -> None:
        if maxsize < 1:
            raise ValueError(f'queue size must be >= 1, got {maxsize}')
        self._items: collections.deque = collections.deque()
        self._maxsize = maxsize
        self._drop_oldest = drop_oldest
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item: Any) -> bool:
        """Enqueue ``item``; returns False only when the queue was closed while waiting."""
        with self._cond:
            if self._drop_oldest:
                if len(self._items) >= self._maxsize:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self._maxsize and not self._closed:
                    self._cond.wait(0.1)
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout_s: float) -> Any | None:
        """Oldest item, or None after ``timeout_s`` or when closed and empty."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._items and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def take_all(self) -> list[Any]:
        """Every queued item, oldest first, without waiting (empty list when none)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return items

    def close(self) -> None:
        """Wake every waiter; later puts are refused, queued items can still be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def clear(self) -> int:
        """Discard queued items and return how many there were."""
        with self._cond:
            count = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return count
