# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Image stamps waiting for their ``odom -> base_link`` pose in TF (odometry scale from TF).

One rule for both front ends: the node (``ros/scale_inputs.py``, its TF buffer) and the replay
tool (``replay/scale_run.py``, the bag's TF in ``runtime/tf_tree.py``) queue every accepted
image's stamp here and look it up, oldest first:

* found: the pose goes to ``deliver`` (the facade's odometry buffer), counted as
  ``odometry_samples``;
* ``past`` (older than TF's cache): it never resolves; dropped, counted as
  ``odometry_unresolved``;
* any other failure (beyond the newest TF, a frame not known or not connected yet): it and
  every later stamp wait for the next :meth:`PendingStamps.resolve` (TF lags the images);
* at most ``PENDING_STAMPS`` wait; the oldest pushed out counts as ``odometry_unresolved``.

Thread-safe: the node queues on the executor and resolves on the worker too.
"""

from __future__ import annotations

from collections import Counter
from collections import deque
import threading
from typing import Any, Callable

import numpy as np

#: Image stamps waiting for their odometry in TF (several windows' worth).
PENDING_STAMPS = 64

#: A TF lookup at a stamp (ns): (pose [4,4], '') or (None, failure kind of
#: ``runtime.tf_tree.FAILURE_KINDS``).
StampLookup = Callable[[int], tuple[np.ndarray | None, str]]


class PendingStamps:
    """The queue of image stamps waiting for TF (see the module docstring).

    Args:
        lookup: ``odom -> base`` at a stamp, as :data:`StampLookup`.
        deliver: called with (stamp ns, pose [4,4]) per resolved stamp, oldest first.
        counts: counter to add ``odometry_samples`` / ``odometry_unresolved`` to (the node's
            own counters); a new one when None.
        limit: most stamps waiting.

    """

    def __init__(self, lookup: StampLookup, deliver: Callable[[int, np.ndarray], Any],
                 counts: Counter | None = None, limit: int = PENDING_STAMPS) -> None:
        if limit < 1:
            raise ValueError(f'limit must be at least 1, got {limit}')
        self._lookup = lookup
        self._deliver = deliver
        self._limit = limit
        self._stamps: deque[int] = deque()
        self._lock = threading.Lock()
        self.counts: Counter = Counter() if counts is None else counts

    @property
    def pending(self) -> int:
        """Stamps still waiting."""
        with self._lock:
            return len(self._stamps)

    def add(self, stamp_ns: int) -> None:
        """Queue an image stamp, then resolve what can be."""
        with self._lock:
            if len(self._stamps) == self._limit:
                self._stamps.popleft()
                self.counts['odometry_unresolved'] += 1
            self._stamps.append(int(stamp_ns))
        self.resolve()

    def resolve(self) -> None:
        """Look the waiting stamps up, oldest first; stop at one TF may still bring."""
        with self._lock:
            while self._stamps:
                stamp = self._stamps[0]
                pose, kind = self._lookup(stamp)
                if pose is None and kind != 'past':
                    return
                self._stamps.popleft()
                if pose is None:
                    self.counts['odometry_unresolved'] += 1
                    continue
                self.counts['odometry_samples'] += 1
                self._deliver(stamp, pose)


__all__ = ['PENDING_STAMPS', 'PendingStamps', 'StampLookup']
