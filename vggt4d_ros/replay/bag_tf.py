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
* :meth:`BagTf.stamp_lookup`: ``target <- source`` at a stamp in the form the node's rule
  for image stamps waiting on TF takes (``runtime/scale/tf_stamps.py``): the replay's
  odometry scale resolves its image stamps with the same rule, against this tree.

Parsing stays here (the bag's deserialised messages); the tree takes plain transforms.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.runtime.tf_tree import failure_kind
from vggt4d_ros.runtime.tf_tree import TfTree
from vggt4d_ros.runtime.tf_tree import TransformException

#: The TF topics of a bag (tf2's fixed names).
TF_TOPIC = '/tf'
TF_STATIC_TOPIC = '/tf_static'

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

    def stamp_lookup(self, target: str, source: str
                     ) -> Callable[[int], tuple[np.ndarray | None, str]]:
        """``target <- source`` at a stamp as ``runtime.scale.tf_stamps.StampLookup``.

        (pose [4,4], '') where the tree has it, else (None, the failure kind).
        """
        def lookup(stamp_ns: int) -> tuple[np.ndarray | None, str]:
            try:
                return self.lookup(target, source, stamp_ns), ''
            except TransformException as error:
                return None, failure_kind(error)
        return lookup


__all__ = ['BagTf', 'TF_STATIC_TOPIC', 'TF_TOPIC']
