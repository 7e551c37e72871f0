# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Bounded hand-off between subscription callbacks and the single worker thread.

The queue is bounded twice: in frames and in bytes (a few 8K frames weigh as much as a
hundred VGA ones). Live mode drops the OLDEST queued frames until the new one fits (the newest
frame is the most useful for a robot) and counts them. Replay mode never drops: ``put`` waits
for room, which pushes back on a KEEP_ALL reliable subscription and from there on the
publisher. A single frame larger than the byte bound is still taken when the queue is empty.
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

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data this frame holds."""
        return int(getattr(self.rgb, 'nbytes', 0))


class FrameQueue:
    """Thread-safe bounded FIFO with drop-oldest (live) or blocking (replay) behaviour."""

    def __init__(self, maxsize: int, drop_oldest: bool, max_bytes: int | None = None) -> None:
        if maxsize < 1:
            raise ValueError(f'queue size must be >= 1, got {maxsize}')
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f'queue byte bound must be >= 1, got {max_bytes}')
        self._items: collections.deque = collections.deque()
        self._maxsize = maxsize
        self._max_bytes = max_bytes
        self._bytes = 0
        self._drop_oldest = drop_oldest
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data queued now."""
        with self._cond:
            return self._bytes

    def _full(self, incoming: int) -> bool:
        if not self._items:
            return False
        if len(self._items) >= self._maxsize:
            return True
        return self._max_bytes is not None and self._bytes + incoming > self._max_bytes

    def put(self, item: Any) -> bool:
        """Enqueue ``item``; returns False only when the queue was closed while waiting."""
        size = _nbytes(item)
        with self._cond:
            if self._drop_oldest:
                while self._full(size):
                    self._pop_locked()
                    self.dropped += 1
            else:
                while self._full(size) and not self._closed:
                    self._cond.wait(0.1)
            if self._closed:
                return False
            self._items.append(item)
            self._bytes += size
            self._cond.notify_all()
            return True

    def _pop_locked(self) -> Any:
        item = self._items.popleft()
        self._bytes -= _nbytes(item)
        return item

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
            item = self._pop_locked()
            self._cond.notify_all()
            return item

    def take_all(self) -> list[Any]:
        """Every queued item, oldest first, without waiting (empty list when none)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._bytes = 0
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
            self._bytes = 0
            self._cond.notify_all()
            return count


def _nbytes(item: Any) -> int:
    return int(getattr(item, 'nbytes', 0))
