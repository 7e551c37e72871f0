# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Multi-camera input of the node: N image topics grouped into rig steps, per-camera masks.

The rig's parameters are the engine's :class:`vggt4d_ros.runtime.rig.RigConfig` (declared with
every other parameter by ``ros/params.py``).

With ``image_topics`` (2 to 4 topics; empty: the single ``image_topic``) the node subscribes
every camera, groups their images into time steps by stamp and hands whole steps to the worker
(``engine.offer_step``). Grouping is ``message_filters.ApproximateTimeSynchronizer`` on a ROS
install that has it, else :class:`vggt4d_ros.runtime.rig.RigGrouper` (the same policy,
tested against it), chosen by ``rig_sync``. A group is decoded only once complete; frames that
never join one are counted per camera (``rig.unmatched.<camera>``), as are groups with an
undecodable image. Per-camera masks go to ``~/<camera_name>/dynamic_mask`` (each with its
source header); TF, odometry and path carry one rig pose per step (the reference camera,
view 0, through its extrinsic: ``base_link`` in ``odom_to_base`` mode).

Extrinsics (base_link -> each camera's optical frame): ``rig_extrinsics`` (7 numbers per
camera), or empty to look them up in the node's TF buffer (base_frame -> each image's
frame_id, chains resolved; tf2_ros or the pip-only fallback) once the first step arrived;
until then the rig-baseline scale has none (a counted 'no_extrinsic'; failed lookups count
as ``tf.lookup_failures.rig.<kind>``).
"""

from __future__ import annotations

from dataclasses import dataclass
import time
from typing import Any, Callable

import numpy as np

from vggt4d_ros.ros.tf_buffer import NodeTf
from vggt4d_ros.ros.tf_buffer import TfLookupError
from vggt4d_ros.runtime.rig import RigConfig
from vggt4d_ros.runtime.rig import RigGrouper


@dataclass
class QueuedStep:
    """One complete rig step for the worker (frames in view order).

    Attributes:
        rgbs: N [H,W,3] uint8 images.
        stamps_ns: N header stamps.
        headers: N source headers.
        received_s: N ``time.monotonic()`` arrival times.

    """

    rgbs: list
    stamps_ns: list[int]
    headers: list
    received_s: list[float]

    @property
    def nbytes(self) -> int:
        return int(sum(getattr(rgb, 'nbytes', 0) for rgb in self.rgbs))


#: Decodes one message: (header, convert) -> (rgb, stamp_ns) or None (rejected and counted).
Decode = Callable[[Any, Callable[[], np.ndarray]], Any]


class RigInputs:
    """Subscriptions, grouping and per-camera counters of a rig (see the module docstring).

    Args:
        node: the node (subscriptions, logger, TF).
        params: rig parameters (``image_topics`` given).
        msg_type: Image or CompressedImage.
        convert: message -> [H,W,3] uint8 RGB (raises the node's decode errors).
        decode: the node's checked decode (counts and logs rejects; None when rejected).
        on_step: receives each complete, decoded :class:`QueuedStep` (enqueue).
        qos: image subscription QoS.
        callback_group: the node's input callback group.
        tf: the node's TF buffer (extrinsics looked up while ``rig_extrinsics`` is empty;
            None or no TF back end: they stay unknown).

    """

    def __init__(self, node, params: RigConfig, msg_type, convert: Callable[[Any], np.ndarray],
                 decode: Decode, on_step: Callable[[QueuedStep], None], qos,
                 callback_group=None, tf: NodeTf | None = None) -> None:
        self._node = node
        self.params = params
        self.setup = params.setup()
        self._convert = convert
        self._decode = decode
        self._on_step = on_step
        self._subscriptions: list = []
        self.camera_info: dict[str, Any] = {}
        self.received = [0] * self.setup.num_views
        self.groups = 0
        self.rejected_groups = 0
        self._grouper: RigGrouper | None = None
        self._synchronizer = None
        #: where the extrinsics came from: 'parameter', 'tf' (once looked up) or 'unknown'
        self.extrinsics_source = 'parameter' if params.rig_extrinsics else 'unknown'
        self._tf = None if params.rig_extrinsics else _acquired(tf)
        self._next_lookup_s = 0.0
        self.backend = self._pick_backend()
        if self.backend == 'message_filters':
            self._subscribe_message_filters(msg_type, qos, callback_group)
        else:
            self._grouper = RigGrouper(self.setup.num_views, params.rig_queue_size,
                                       params.rig_slop_s)
            for view, topic in enumerate(params.image_topics):
                self._subscriptions.append(node.create_subscription(
                    msg_type, topic, lambda msg, v=view: self._add(v, msg), qos,
                    callback_group=callback_group))
        for name, topic in zip(self.setup.camera_names, params.camera_info_topics):
            if topic:
                self._subscriptions.append(node.create_subscription(
                    _camera_info_type(), topic,
                    lambda msg, n=name: self.camera_info.__setitem__(n, msg), qos))

    def _pick_backend(self) -> str:
        if self.params.rig_sync == 'builtin':
            return 'builtin'
        try:
            import message_filters  # noqa: F401
        except ImportError:
            if self.params.rig_sync == 'message_filters':
                raise ValueError('rig_sync=message_filters, but message_filters is not '
                                 'installed (install ros-<distro>-message-filters or use '
                                 'rig_sync=builtin)')
            return 'builtin'
        return 'message_filters'

    def _subscribe_message_filters(self, msg_type, qos, callback_group) -> None:
        import message_filters

        subscribers = [message_filters.Subscriber(self._node, msg_type, topic, qos_profile=qos,
                                                  callback_group=callback_group)
                       for topic in self.params.image_topics]
        for view, subscriber in enumerate(subscribers):
            subscriber.registerCallback(lambda msg, v=view: self._count(v))
        self._synchronizer = message_filters.ApproximateTimeSynchronizer(
            subscribers, self.params.rig_queue_size, self.params.rig_slop_s)
        self._synchronizer.registerCallback(lambda *msgs: self._group(
            [(msg, time.monotonic()) for msg in msgs]))
        self._subscriptions.extend(subscriber.sub for subscriber in subscribers)

    def _count(self, view: int) -> None:
        self.received[view] += 1

    def _add(self, view: int, msg) -> None:
        """Builtin grouping: one camera's message (callback thread)."""
        self._count(view)
        stamp = msg.header.stamp
        group = self._grouper.add(view, stamp.sec * 1_000_000_000 + stamp.nanosec,
                                  (msg, time.monotonic()))
        if group is not None:
            self._group(list(group))

    def _group(self, group: list[tuple[Any, float]]) -> None:
        """Decode a complete group; enqueue it as one step (or count it rejected)."""
        self.groups += 1
        decoded = [self._decode(msg.header, lambda m=msg: self._convert(m)) for msg, _ in group]
        if any(item is None for item in decoded):
            self.rejected_groups += 1
            return
        self._on_step(QueuedStep([rgb for rgb, _ in decoded], [s for _, s in decoded],
                                 [msg.header for msg, _ in group], [t for _, t in group]))

    def new_extrinsics(self, frame_ids: list[str]) -> np.ndarray | None:
        """[N,4,4] extrinsics looked up in TF the first time they are all there, else None.

        Called by the worker per step while ``rig_extrinsics`` is empty; tries at most once a
        second, and returns a result once (then the source is 'tf').
        """
        now = time.monotonic()
        if self._tf is None or self.extrinsics_source != 'unknown' \
                or now < self._next_lookup_s:
            return None
        self._next_lookup_s = now + 1.0
        found = lookup_extrinsics(self._tf, self.base_frame, frame_ids)
        if found is not None:
            self.extrinsics_source = 'tf'
        return found

    @property
    def base_frame(self) -> str:
        return self._node.get_parameter('base_frame').value

    def destroy(self) -> None:
        """Destroy the subscriptions."""
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions.clear()
        self._tf = None  # the node's buffer: the node releases it

    def diagnostics(self) -> dict[str, str]:
        """Key/values for /diagnostics: groups, per-camera unmatched frames, sync backend."""
        values = {'rig.cameras': ','.join(self.setup.camera_names), 'rig.sync': self.backend,
                  'rig.extrinsics': self.extrinsics_source,
                  'rig.groups': str(self.groups),
                  'rig.rejected_groups': str(self.rejected_groups)}
        for name, count in zip(self.setup.camera_names, self.received):
            values[f'rig.received.{name}'] = str(count)
            values[f'rig.unmatched.{name}'] = str(count - self.groups)
        if self._grouper is not None:
            values['rig.incomplete'] = str(self._grouper.stats.incomplete)
        return values


def offer_step(item: QueuedStep, engine, sink, rig: RigInputs | None) -> None:
    """Hand a step to the engine (worker thread): arrival times, TF extrinsics, the frames.

    ``rig`` is None once unsubscribed (replay deactivate still works off the queue); the
    extrinsics are then not looked up any more.
    """
    frame_ids = [header.frame_id for header in item.headers]
    for stamp_ns, received_s, frame_id in zip(item.stamps_ns, item.received_s, frame_ids):
        sink.arrived(stamp_ns, received_s, frame_id)
    extrinsics = rig.new_extrinsics(frame_ids) if rig is not None else None
    if extrinsics is not None and engine.metric is not None:
        engine.metric.set_rig_extrinsics(extrinsics)  # the rig_baseline scale source
    engine.offer_step(item.rgbs, item.stamps_ns, frame_ids)


def lookup_extrinsics(tf: NodeTf, base_frame: str, frame_ids: list[str]) -> np.ndarray | None:
    """[N,4,4] base_frame -> each camera frame from TF (latest), or None while any is missing."""
    try:
        return np.stack([tf.lookup(base_frame, frame_id, 0, 'rig') for frame_id in frame_ids])
    except TfLookupError:
        return None


def _acquired(tf: NodeTf | None) -> NodeTf | None:
    """Return the node's TF buffer, acquired; None without one (extrinsics stay unknown)."""
    if tf is None:
        return None
    try:
        tf.acquire()
    except ValueError:
        return None
    return tf


def _camera_info_type():
    from sensor_msgs.msg import CameraInfo

    return CameraInfo


__all__ = ['lookup_extrinsics', 'offer_step', 'QueuedStep', 'RigInputs']
