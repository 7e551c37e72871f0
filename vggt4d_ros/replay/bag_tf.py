# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A bag's ``/tf`` and ``/tf_static`` in the node's TF tree (``runtime/tf_tree.py``).

The replay reads TF the way the node does: every transform of the bag goes into ONE
:class:`~vggt4d_ros.runtime.tf_tree.TfTree` (the node's buffer where tf2_ros is missing, checked
against the real tf2), and lookups walk chains (``odom -> base_footprint -> base_link``,
``base_link -> camera_link -> camera_optical_frame``) and interpolate at the asked stamp.

* :class:`BagTf`: the static transforms are all in the tree from the start (``/tf_static`` is
  latched: a node gets them on subscribing); the dynamic ones are fed in stamp order up to a
  stamp by :meth:`BagTf.advance`, as they would have reached the node by then.
* :class:`StampResolver`: image stamps waiting for ``odom -> base_link``, resolved oldest
  first by the rule of the node's ``ros/scale_inputs.py``: a stamp TF has not reached yet
  waits (at most ``PENDING_STAMPS``; one pushed out counts as unresolved), one older than the
  tree's cache never resolves (counted), and an unknown or unconnected frame waits too.

Parsing stays here (the bag's deserialised messages); the tree takes plain transforms.
"""

from __future__ import annotations

from collections import Counter
from collections import deque
from typing import Any, Callable

import numpy as np

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.runtime.tf_tree import failure_kind
from vggt4d_ros.runtime.tf_tree import TfTree
from vggt4d_ros.runtime.tf_tree import TransformException

#: The TF topics of a bag (tf2's fixed names).
TF_TOPIC = '/tf'
TF_STATIC_TOPIC = '/tf_static'
#: Image stamps waiting for their odometry in TF (the node's ``PENDING_STAMPS``).
PENDING_STAMPS = 64

#: One transform: (stamp ns, parent, child, translation [3], quaternion xyzw [4]).
_Transform = tuple[int, str, str, tuple[float, ...], tuple[float, ...]]


def _transforms(reader: BagReader, topic: str) -> list[_Transform]:
    """Every TransformStamped of a TFMessage topic, in bag order (none if not a TF topic)."""
    if reader.topics().get(topic) != m.TF_MESSAGE:
        return []
    found = []
    for _, msg in reader.messages(topic):
        for transform in msg.transforms:
            t, q = transform.transform.translation, transform.transform.rotation
            found.append((m.stamp_ns_of(transform.header), transform.header.frame_id,
                          transform.child_frame_id, (t.x, t.y, t.z), (q.x, q.y, q.z, q.w)))
    return found


class BagTf:
    """A bag's TF in one tree (see the module docstring).

    Args:
        reader: the open bag.
        tf_topic: the dynamic TF topic ('/tf'; another TFMessage topic, e.g. an odometry
            topic given on the command line; None: static transforms only).
        static_topic: the static TF topic.

    """

    def __init__(self, reader: BagReader, tf_topic: str | None = TF_TOPIC,
                 static_topic: str = TF_STATIC_TOPIC) -> None:
        self.tree = TfTree()
        #: transforms the tree refused (what tf2 refuses: NaN, same frames, too old)
        self.refused = 0
        for stamp, parent, child, translation, rotation in _transforms(reader, static_topic):
            self._add(stamp, parent, child, translation, rotation, static=True)
        dynamic = _transforms(reader, tf_topic) if tf_topic else []
        self._dynamic = sorted(dynamic, key=lambda transform: transform[0])  # stable
        self._next = 0

    @property
    def dynamic_stamps(self) -> list[int]:
        """Stamps of the dynamic transforms, sorted, each once."""
        return sorted({transform[0] for transform in self._dynamic})

    def advance(self, until_ns: int) -> None:
        """Feed the dynamic transforms stamped up to ``until_ns`` (call with growing stamps)."""
        while self._next < len(self._dynamic) and self._dynamic[self._next][0] <= until_ns:
            self._add(*self._dynamic[self._next], static=False)
            self._next += 1

    def _add(self, stamp: int, parent: str, child: str, translation, rotation,
             static: bool) -> None:
        if not self.tree.set_transform(parent, child, stamp, translation, rotation, static):
            self.refused += 1

    def lookup(self, target: str, source: str, stamp_ns: int = 0) -> np.ndarray:
        """``T_target_source`` [4,4] float64 at ``stamp_ns`` (0: latest common time).

        Raises:
            TransformException: as the tree (``failure_kind`` names it).

        """
        return self.tree.lookup(target.lstrip('/'), source.lstrip('/'), stamp_ns)[0]

    def find(self, target: str, source: str, stamp_ns: int = 0) -> np.ndarray | None:
        """:meth:`lookup`, None where the transform is not there."""
        try:
            return self.lookup(target, source, stamp_ns)
        except TransformException:
            return None


class StampResolver:
    """Image stamps waiting for a TF pose (see the module docstring).

    Args:
        lookup: pose [4,4] at a stamp; raises TransformException (e.g. :meth:`BagTf.lookup`).
        deliver: called with (stamp, pose) for each resolved stamp, oldest first.

    """

    def __init__(self, lookup: Callable[[int], np.ndarray],
                 deliver: Callable[[int, np.ndarray], Any]) -> None:
        self._lookup = lookup
        self._deliver = deliver
        self._pending: deque[int] = deque()
        #: 'odometry_samples' (resolved), 'odometry_unresolved' (never will be)
        self.counts: Counter = Counter()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, stamp_ns: int) -> None:
        """Queue an image stamp and resolve what can be."""
        if len(self._pending) == PENDING_STAMPS:
            self._pending.popleft()
            self.counts['odometry_unresolved'] += 1
        self._pending.append(int(stamp_ns))
        self.resolve()

    def resolve(self) -> None:
        """Look the pending stamps up, oldest first; stop at one that may still come."""
        while self._pending:
            stamp = self._pending[0]
            try:
                pose = self._lookup(stamp)
            except TransformException as error:
                if failure_kind(error) != 'past':
                    return
                self._pending.popleft()
                self.counts['odometry_unresolved'] += 1
                continue
            self._pending.popleft()
            self.counts['odometry_samples'] += 1
            self._deliver(stamp, pose)


__all__ = ['BagTf', 'PENDING_STAMPS', 'StampResolver', 'TF_STATIC_TOPIC', 'TF_TOPIC']
