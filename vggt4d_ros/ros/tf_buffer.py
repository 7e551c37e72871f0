# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The node's one TF buffer: tf2_ros where importable, else the ROS-free ``runtime/tf_tree.py``.

Everything in the node that reads TF (the frame convention's base_link -> camera extrinsic,
the planner outputs' ``obstacle_frame``, a rig's camera extrinsics, the metric-scale odometry
and extrinsic) looks up through ONE :class:`NodeTf`, so ``/tf`` is subscribed and every
transform deserialised once per node. The buffer and its listener are created on the first
:meth:`NodeTf.acquire` (a user that will need TF, at configure or activate) and released by
:meth:`NodeTf.release` (cleanup, shutdown, error; idempotent); a configure after a cleanup
starts a fresh one.

Back ends (``kind``):

* ``tf2_ros``: ``tf2_ros.Buffer`` (10 s cache) + ``tf2_ros.TransformListener``;
* ``fallback``: :class:`~vggt4d_ros.runtime.tf_tree.TfTree` (the replay tool's TF tree too)
  fed by subscriptions to ``/tf`` (reliable, volatile, keep last 100) and ``/tf_static``
  (reliable, transient local, keep last 100): tf2_ros's listener QoS. Needs tf2_msgs
  (``scripts/build_tf2_msgs.sh``);
* ``unavailable``: neither; :meth:`NodeTf.acquire` raises ValueError with the fix.

Lookups never wait (timeout 0): a missing transform is a :class:`TfLookupError` whose
``kind`` says why, counted per caller (``tf.lookup_failures.<caller>.<kind>``).
"""

from __future__ import annotations

from collections import Counter
import threading

import numpy as np
from rclpy.qos import DurabilityPolicy
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile

from vggt4d_ros.ros.conversions import pose_from_transform
from vggt4d_ros.ros.conversions import stamp_to_ns
from vggt4d_ros.runtime.tf_tree import failure_kind
from vggt4d_ros.runtime.tf_tree import TfTree

try:
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the machine
    TFMessage = None

#: tf2_ros.TransformListener's QoS: /tf volatile, /tf_static latched; both reliable, depth 100.
TF_QOS = QoSProfile(depth=100, durability=DurabilityPolicy.VOLATILE,
                    history=HistoryPolicy.KEEP_LAST)
TF_STATIC_QOS = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                           history=HistoryPolicy.KEEP_LAST)


class TfLookupError(Exception):
    """A failed TF lookup; ``kind`` is one of ``runtime.tf_tree.FAILURE_KINDS``."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


def _tf2_ros():
    try:
        import tf2_ros
    except ImportError:
        return None
    return tf2_ros


class _FallbackListener:
    """Feeds a TfTree from /tf and /tf_static (what tf2_ros.TransformListener does)."""

    def __init__(self, buffer: TfTree, node) -> None:
        self._node = node
        self._buffer = buffer
        self.refused = 0  # transforms tf2 would refuse too (TF_OLD_DATA, NaN, same frames)
        self._subscriptions = [
            node.create_subscription(TFMessage, '/tf', self._on_tf, TF_QOS),
            node.create_subscription(TFMessage, '/tf_static', self._on_static, TF_STATIC_QOS)]

    def _on_tf(self, msg) -> None:
        self._add(msg, static=False)

    def _on_static(self, msg) -> None:
        self._add(msg, static=True)

    def _add(self, msg, static: bool) -> None:
        for transform in msg.transforms:
            t, q = transform.transform.translation, transform.transform.rotation
            if not self._buffer.set_transform(
                    transform.header.frame_id, transform.child_frame_id,
                    stamp_to_ns(transform.header.stamp), (t.x, t.y, t.z),
                    (q.x, q.y, q.z, q.w), static):
                self.refused += 1

    def unregister(self) -> None:
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions = []


class NodeTf:
    """The node's TF buffer (see the module docstring).

    Args:
        node: the node that owns the subscriptions.
        force_fallback: use the fallback even where tf2_ros is importable (tests).

    """

    def __init__(self, node, force_fallback: bool = False) -> None:
        self._node = node
        tf2_ros = None if force_fallback else _tf2_ros()
        self.kind = 'tf2_ros' if tf2_ros is not None else \
            'fallback' if TFMessage is not None else 'unavailable'
        self._buffer = None
        self._listener = None
        self._lock = threading.Lock()
        #: failed lookups by '<caller>.<kind>'
        self.failures: Counter = Counter()

    @property
    def active(self) -> bool:
        """Whether a buffer exists (acquired and not released)."""
        return self._buffer is not None

    def acquire(self) -> None:
        """Create the buffer and its listener unless they exist.

        Raises:
            ValueError: neither tf2_ros nor tf2_msgs is importable.

        """
        with self._lock:
            if self._buffer is not None:
                return
            if self.kind == 'unavailable':
                raise ValueError('reading TF needs tf2_ros or tf2_msgs (install ROS, or build '
                                 'tf2_msgs with scripts/build_tf2_msgs.sh)')
            if self.kind == 'tf2_ros':
                tf2_ros = _tf2_ros()
                buffer = tf2_ros.Buffer()
                self._listener = tf2_ros.TransformListener(buffer, self._node)
            else:
                buffer = TfTree()
                self._listener = _FallbackListener(buffer, self._node)
            self._buffer = buffer

    def release(self) -> None:
        """Unsubscribe and drop the buffer (idempotent); the next acquire starts afresh."""
        with self._lock:
            listener, self._listener, self._buffer = self._listener, None, None
        if listener is not None:
            listener.unregister()

    def lookup(self, target: str, source: str, stamp_ns: int = 0,
               caller: str = '') -> np.ndarray:
        """``T_target_source`` [4,4] float64 at ``stamp_ns`` (0: latest common time).

        Raises:
            TfLookupError: the transform is not there (counted under ``caller`` unless it is
                empty: a caller that retries counts its own final outcome); kind 'other'
                when the buffer was not acquired or is released.

        """
        buffer = self._buffer
        try:
            if buffer is None:
                raise TfLookupError('other', 'no TF buffer (not acquired or released)')
            if self.kind == 'fallback':
                return buffer.lookup(target, source, stamp_ns)[0]
            from rclpy.time import Time

            stamped = buffer.lookup_transform(target, source, Time(nanoseconds=int(stamp_ns)))
            return pose_from_transform(stamped.transform)
        except Exception as error:  # noqa: B902 - tf2 raises several unrelated types
            kind = error.kind if isinstance(error, TfLookupError) else failure_kind(error)
            if caller:
                self.failures[f'{caller}.{kind}'] += 1
            if isinstance(error, TfLookupError):
                raise
            raise TfLookupError(kind, str(error)) from error

    def diagnostics(self) -> dict[str, str]:
        """``tf.buffer`` (back end, '' while not acquired) and the failed lookups."""
        values = {'tf.buffer': self.kind if self.active else ''}
        for key, count in sorted(self.failures.items()):
            values[f'tf.lookup_failures.{key}'] = str(count)
        return values


__all__ = ['NodeTf', 'TF_QOS', 'TF_STATIC_QOS', 'TfLookupError']
