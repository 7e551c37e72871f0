# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Multi-camera rig input: the rig's cameras and extrinsics, and grouping frames into steps.

A rig has N synchronised cameras fixed to ``base_link``. Their frames arrive on N streams;
:class:`RigGrouper` groups them into time steps (one frame per camera within ``slop``) with
``message_filters``' ApproximateTime policy (:class:`vggt4d_ros.runtime.sync.ApproximateSync`)
plus one rule for steps consumed in time order: once a group is out, frames older than its
oldest stamp are discarded (they could only form a group going back in time). A frame that
never joins a complete group is a counted outcome (``unmatched``; ``incomplete`` once it left
its queue), never a partial step. The engine takes the steps (``PerceptionEngine.offer_step``),
runs T steps x N views per window and outputs per-camera masks and one rig pose per step: the
pose of ``base_link``, from the reference camera (view 0) and its extrinsic (:func:`base_poses`).

:class:`RigConfig` holds the rig's parameters (``image_topics``, ``camera_names``, ...; part of
the engine's :class:`~vggt4d_ros.runtime.config.EngineConfig`, so the node declares them and the
replay tool reads them from the same parameter file, like every other group).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Literal, Sequence, TypeVar

import numpy as np

from vggt4d_ros.config_fields import field_meta as _meta
from vggt4d_ros.geometry.rigid import invert_rigid
from vggt4d_ros.geometry.rigid import pose_from_translation_quaternion
from vggt4d_ros.runtime.sync import ApproximateSync

Item = TypeVar('Item')

#: Cameras a rig may have (the window budget: 4 cameras x 2 steps = 8 images).
MAX_VIEWS = 4


@dataclass(frozen=True)
class RigSetup:
    """The cameras of a rig, in view order (view 0 is the reference camera).

    Attributes:
        camera_names: N names (topic namespaces of the per-camera outputs).
        base_from_camera: [N,4,4] each camera's optical frame in ``base_link`` (metres), or
            None while unknown (then no base_link pose and no rig-baseline scale).

    """

    camera_names: tuple[str, ...]
    base_from_camera: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        count = len(self.camera_names)
        if not 1 <= count <= MAX_VIEWS:
            raise ValueError(f'a rig has 1 to {MAX_VIEWS} cameras, got {count}')
        if len(set(self.camera_names)) != count or not all(self.camera_names):
            raise ValueError(f'camera names must be unique and non-empty: {self.camera_names}')
        if self.base_from_camera is not None:
            poses = np.asarray(self.base_from_camera, dtype=np.float64)
            if poses.shape != (count, 4, 4):
                raise ValueError(f'{count} cameras need [{count},4,4] extrinsics, got '
                                 f'{poses.shape}')
            object.__setattr__(self, 'base_from_camera', poses)

    @property
    def num_views(self) -> int:
        return len(self.camera_names)

    @classmethod
    def from_parameters(cls, camera_names: Sequence[str],
                        extrinsics: Sequence[float] = ()) -> 'RigSetup':
        """Rig from names and a flat list of 7 numbers per camera ([x,y,z,qx,qy,qz,qw]...).

        An empty ``extrinsics`` list means unknown (e.g. from TF later).
        """
        values = np.asarray(list(extrinsics), dtype=np.float64)
        if values.size == 0:
            return cls(tuple(camera_names))
        if values.size != 7 * len(camera_names):
            raise ValueError(f'rig extrinsics need 7 numbers [x, y, z, qx, qy, qz, qw] per '
                             f'camera ({7 * len(camera_names)}), got {values.size}')
        poses = np.stack([pose_from_translation_quaternion(row[:3], row[3:])
                          for row in values.reshape(-1, 7)])
        return cls(tuple(camera_names), poses)

    def with_extrinsics(self, base_from_camera: np.ndarray) -> 'RigSetup':
        """Return the same cameras with known extrinsics [N,4,4]."""
        return RigSetup(self.camera_names, base_from_camera)


#: How the node groups the cameras' images into steps (``rig_sync``).
RIG_SYNC = ('auto', 'message_filters', 'builtin')


@dataclass(frozen=True)
class RigConfig:
    """The rig parameters (top-level names, as the node has always declared them).

    ``image_topics`` empty (the default) means one camera, on the node's ``image_topic``.
    The grouping runs in the node (``ros/rig_inputs.py``) and in the replay tool
    (``replay/rig_runner.py``, always the built-in grouping: ``rig_sync`` is the node's).
    """

    image_topics: list[str] = field(default_factory=list, metadata=_meta(
        'Camera topics of a rig, 2 to 4, the reference camera first, e.g. '
        '[/front/image_raw, /left/image_raw] (empty: one camera on image_topic). Images are '
        'grouped into time steps by stamp; windows are steps x cameras.', any_length=True))
    camera_names: list[str] = field(default_factory=list, metadata=_meta(
        "One name per rig camera (masks on ~/<name>/dynamic_mask); empty: each topic's "
        'namespace (/front/image_raw -> front).', any_length=True))
    camera_info_topics: list[str] = field(default_factory=list, metadata=_meta(
        'Optional CameraInfo topic per rig camera (latest cached; VGGT estimates '
        'intrinsics).', any_length=True))
    rig_extrinsics: list[float] = field(default_factory=list, metadata=_meta(
        'Pose of each rig camera optical frame in base_link, [x, y, z, qx, qy, qz, qw] per '
        'camera in topic order; empty: looked up in TF (base_frame -> image frame_id; the '
        "replay tool: the bag's /tf_static).", any_length=True))
    rig_slop_s: float = field(default=0.01, metadata=_meta(
        'Largest stamp spread of one rig step (seconds, message_filters slop).', (1e-6, 10.0)))
    rig_queue_size: int = field(default=10, metadata=_meta(
        'Images per camera waiting for their partners (message_filters queue_size).',
        (1, 10000)))
    rig_sync: Literal['auto', 'message_filters', 'builtin'] = field(
        default='auto', metadata=_meta(
            'auto: message_filters when importable, else the built-in equivalent; '
            'message_filters; builtin.'))

    def __post_init__(self) -> None:
        count = len(self.image_topics)
        if count and not 2 <= count <= MAX_VIEWS:
            raise ValueError(f'image_topics needs 2 to {MAX_VIEWS} topics, got {count}')
        if not all(self.image_topics):
            raise ValueError('image_topics has an empty topic name')
        if self.camera_names and len(self.camera_names) != count:
            raise ValueError(f'camera_names needs one name per image topic ({count})')
        if self.camera_info_topics and len(self.camera_info_topics) != count:
            raise ValueError(f'camera_info_topics needs one topic per image topic ({count})')
        if self.rig_sync not in RIG_SYNC:
            raise ValueError(f'rig_sync must be one of {RIG_SYNC}, got {self.rig_sync!r}')
        if not self.rig_slop_s > 0 or self.rig_queue_size < 1:
            raise ValueError('rig_slop_s must be positive and rig_queue_size >= 1')
        if count:
            self.setup()  # unique names, 7 extrinsic numbers per camera

    @property
    def enabled(self) -> bool:
        """Whether this is a rig (``image_topics`` given) rather than one camera."""
        return bool(self.image_topics)

    def setup(self) -> RigSetup:
        """Build the engine's rig: names (given or from the topics), parameter extrinsics.

        Raises:
            ValueError: duplicate names or a wrong number of extrinsic values.

        """
        names = self.camera_names or [camera_name_of_topic(t) for t in self.image_topics]
        return RigSetup.from_parameters(names, self.rig_extrinsics)


def camera_name_of_topic(topic: str) -> str:
    """Name a camera after its image topic's namespace ('/front/image_raw' -> 'front')."""
    parts = [part for part in topic.split('/') if part]
    if len(parts) >= 2:
        return parts[-2]
    return parts[0] if parts else 'camera'


def base_poses(reference_poses: np.ndarray, rig: RigSetup) -> np.ndarray:
    """``base_link`` poses [K,4,4] from reference-camera (view 0) poses [K,4,4].

    world_from_base = world_from_camera0 @ inverse(base_from_camera0). Without known
    extrinsics the reference camera's poses are returned unchanged.
    """
    poses = np.asarray(reference_poses, dtype=np.float64)
    if rig.base_from_camera is None:
        return poses.copy()
    return poses @ invert_rigid(rig.base_from_camera[0])


@dataclass
class RigGroupStats:
    """Counters of the grouping.

    Attributes:
        received: frames added, per camera.
        groups: complete groups (steps) emitted.
        dropped: frames pushed out of their full queue without a group, per camera.
        expired: frames discarded as older than a group already out, per camera.

    """

    received: list[int]
    groups: int = 0
    dropped: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)

    @property
    def unmatched(self) -> list[int]:
        """Frames per camera not (yet) in a complete group: dropped or still waiting."""
        return [count - self.groups for count in self.received]

    @property
    def incomplete(self) -> int:
        """Frames (all cameras) that left their queue without a complete group."""
        return sum(self.dropped) + sum(self.expired)


class RigGrouper(Generic[Item]):
    """Groups N camera streams into steps (ApproximateTime policy, see the module docstring).

    Args:
        num_views: cameras (>= 2).
        queue_size: frames kept per camera while waiting for partners.
        slop_s: largest stamp spread (seconds) within a group.

    """

    def __init__(self, num_views: int, queue_size: int = 10, slop_s: float = 0.01) -> None:
        self.sync: ApproximateSync[tuple[int, Item]] = ApproximateSync(
            num_views, queue_size, slop_s)
        self._received = [0] * num_views
        self._expired = [0] * num_views

    def add(self, view: int, stamp_ns: int, item: Item) -> tuple[Item, ...] | None:
        """Add camera ``view``'s frame; return the complete group (view order) or None."""
        self._received[view] += 1
        group = self.sync.add(view, stamp_ns, (int(stamp_ns), item))
        if group is None:
            return None
        expired = self.sync.discard_older(min(stamp for stamp, _ in group))
        self._expired = [a + b for a, b in zip(self._expired, expired)]
        return tuple(item for _, item in group)

    @property
    def stats(self) -> RigGroupStats:
        sync = self.sync.stats
        return RigGroupStats(list(self._received), sync.matched, list(sync.dropped),
                             list(self._expired))


__all__ = ['base_poses', 'camera_name_of_topic', 'MAX_VIEWS', 'RIG_SYNC', 'RigConfig',
           'RigGrouper', 'RigGroupStats', 'RigSetup']
