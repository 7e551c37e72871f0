# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Read and write rosbag2 recordings (mcap or sqlite3) with the pure-Python ``rosbags``.

Reading wraps every library failure (missing metadata, corrupt chunk, truncated file) into a
:class:`~vggt4d_ros.replay.errors.BagError` that names the bag, and a missing topic into a
:class:`~vggt4d_ros.replay.errors.TopicError` that lists what the bag does hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.errors import BagError
from vggt4d_ros.replay.errors import TopicError
from vggt4d_ros.replay.recovery import add_chunk_crcs

Storage = Literal['mcap', 'sqlite3']
IMAGE_TYPES = (m.IMAGE, m.COMPRESSED_IMAGE)
POSE_TYPES = (m.POSE_STAMPED, m.ODOMETRY, m.TF_MESSAGE, m.PATH)


class BagWriter:
    """Append-only rosbag2 writer; topics are registered on first use.

    Use as a context manager. ``close()`` is safe to call twice and always writes the metadata,
    so a run that fails half way still leaves a readable bag of what was written. MCAP files
    get a CRC-32 per chunk at close (:func:`~vggt4d_ros.replay.recovery.add_chunk_crcs`), so a
    damaged byte is detected on reading and the intact chunks around it can be recovered
    (:func:`~vggt4d_ros.replay.recovery.recover_mcap`).
    """

    def __init__(self, path: str | Path, storage: Storage = 'mcap') -> None:
        self.path = Path(path)
        self._storage = storage
        plugin = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}.get(storage)
        if plugin is None:
            raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
        try:
            self._writer = Writer(self.path, version=9, storage_plugin=plugin)
            self._writer.open()
        except Exception as err:  # rosbags raises WriterError, OSError, ...
            raise BagError(f'cannot create bag {self.path}: {err}') from err
        self._connections: dict[str, Any] = {}
        self._open = True
        self.counts: dict[str, int] = {}

    def write(self, topic: str, msgtype: str, message: Any, stamp_ns: int) -> None:
        """Serialise ``message`` (a typestore object of ``msgtype``) at bag time ``stamp_ns``."""
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=m.TYPESTORE)
            self._connections[topic] = connection
        elif connection.msgtype != msgtype:
            raise ValueError(f'topic {topic} has type {connection.msgtype}, not {msgtype}')
        data = m.TYPESTORE.serialize_cdr(message, msgtype)
        self._writer.write(connection, int(stamp_ns), data)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> None:
        """Finish the storage file and write metadata.yaml (idempotent)."""
        if self._open:
            self._open = False
            self._writer.close()
            if self._storage == 'mcap':
                for storage_file in sorted(self.path.glob('*.mcap')):
                    try:
                        add_chunk_crcs(storage_file)
                    except Exception as err:  # mcap raises several types; the bag stays
                        raise BagError(f'bag {self.path}: adding chunk CRCs to '
                                       f'{storage_file.name} failed: {err}') from err

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class ImageFrame:
    """One decoded camera image.

    Attributes:
        stamp_ns: header stamp (bag receive time when the header stamp is zero).
        frame_id: header frame id.
        rgb: HxWx3 uint8 RGB.

    """

    stamp_ns: int
    frame_id: str
    rgb: np.ndarray


def _bag_dir(path: str | Path) -> Path:
    """Return the rosbag2 directory of ``path`` (a storage file inside one is accepted)."""
    path = Path(path)
    if path.is_file() and path.suffix in ('.mcap', '.db3', '.yaml'):
        return path.parent
    return path


class BagReader:
    """Read-only view of a rosbag2 recording with decoding helpers.

    Use as a context manager. Raises :class:`BagError` when the bag cannot be opened and
    :class:`TopicError` for a missing topic.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = _bag_dir(path)
        if not self.path.exists():
            raise BagError(f'bag {self.path} does not exist')
        try:
            self._reader = AnyReader([self.path], default_typestore=m.TYPESTORE)
            self._reader.open()
        except Exception as err:  # AnyReaderError, ReaderError, FileNotFoundError, mcap errors
            raise BagError(f'cannot open bag {self.path}: {err}') from err

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> 'BagReader':
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def topics(self) -> dict[str, str]:
        """Topic name -> message type of every connection."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    def message_count(self, topic: str) -> int:
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def require_topic(self, topic: str, allowed_types: tuple[str, ...]) -> str:
        """Check that ``topic`` exists with one of ``allowed_types``; returns its type."""
        topics = self.topics()
        if topic not in topics:
            listing = ', '.join(f'{t} [{k}]' for t, k in sorted(topics.items())) or 'none'
            raise TopicError(f'topic {topic} not found in bag {self.path}; topics: {listing}')
        if topics[topic] not in allowed_types:
            raise TopicError(f'topic {topic} in bag {self.path} has type {topics[topic]}, '
                             f'expected one of {", ".join(allowed_types)}')
        return topics[topic]

    def image_topics(self) -> list[str]:
        """Image and CompressedImage topics, most messages first."""
        found = [t for t, k in self.topics().items() if k in IMAGE_TYPES]
        return sorted(found, key=lambda t: (-self.message_count(t), t))

    def pick_image_topic(self, preferred: str | None = None) -> str:
        """Return the image topic to replay: ``preferred`` if given, else auto-detected.

        Auto-detection prefers a colour topic whose name looks like a raw camera stream
        (``image_raw``/``image_color``/``image_rect_color``) and ignores the ground-truth,
        depth and mask topics this package writes.
        """
        if preferred:
            self.require_topic(preferred, IMAGE_TYPES)
            return preferred
        candidates = [t for t in self.image_topics()
                      if not any(word in t for word in ('ground_truth', 'depth', 'mask'))]
        if not candidates:
            raise TopicError(f'no camera image topic (sensor_msgs/Image or CompressedImage) '
                             f'in bag {self.path}; topics: {sorted(self.topics())}')
        for suffix in ('image_raw', 'image_color', 'image_rect_color', 'image'):
            for topic in candidates:
                if topic.endswith(suffix):
                    return topic
        return candidates[0]

    def messages(self, topic: str) -> Iterator[tuple[int, Any]]:
        """(bag time ns, deserialised message) of one topic in bag order.

        Raises:
            BagError: the storage is corrupt or truncated; the message says after how many
                messages of ``topic``.

        """
        connections = [c for c in self._reader.connections if c.topic == topic]
        if not connections:
            raise TopicError(f'topic {topic} not found in bag {self.path}')
        count = 0
        iterator = self._reader.messages(connections=connections)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except Exception as err:
                raise BagError(f'bag {self.path} is corrupt or truncated: reading {topic} '
                               f'failed after {count} messages: {err} (intact chunks of an '
                               'MCAP bag: vggt4d_ros.replay.recovery.recover_mcap)') from err
            connection, bag_time, raw = item
            try:
                message = self._reader.deserialize(raw, connection.msgtype)
            except Exception as err:
                raise BagError(f'bag {self.path}: message {count} of {topic} cannot be '
                               f'decoded: {err}') from err
            count += 1
            yield bag_time, message

    def images(self, topic: str) -> Iterator[ImageFrame]:
        """Decode the RGB frames of an Image or CompressedImage topic."""
        msgtype = self.require_topic(topic, IMAGE_TYPES)
        for index, (bag_time, message) in enumerate(self.messages(topic)):
            try:
                rgb = (m.compressed_to_rgb(message) if msgtype == m.COMPRESSED_IMAGE
                       else m.image_to_rgb(message))
            except ValueError as err:
                raise BagError(f'bag {self.path}: image {index} on {topic}: {err}') from err
            stamp = m.stamp_ns_of(message.header) or bag_time
            yield ImageFrame(stamp, message.header.frame_id, rgb)

    def mono_images(self, topic: str) -> Iterator[tuple[int, np.ndarray]]:
        """(stamp, HxW array) of a single-channel image topic (masks, depth)."""
        self.require_topic(topic, (m.IMAGE,))
        for bag_time, message in self.messages(topic):
            yield m.stamp_ns_of(message.header) or bag_time, m.image_to_array(message)

    def poses(self, topic: str, child_frame: str | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """Stamped poses of a PoseStamped, Odometry, Path (last message) or TF topic.

        Args:
            topic: the topic.
            child_frame: for TF topics, the child frame id to keep (default: the first
                child frame seen).

        Returns:
            stamps [N] int64 ns and poses [N,4,4] float64 (parent-from-child).

        """
        msgtype = self.require_topic(topic, POSE_TYPES)
        stamps: list[int] = []
        poses: list[np.ndarray] = []
        for _, message in self.messages(topic):
            if msgtype == m.POSE_STAMPED:
                stamps.append(m.stamp_ns_of(message.header))
                poses.append(m.pose_to_matrix(message.pose))
            elif msgtype == m.ODOMETRY:
                stamps.append(m.stamp_ns_of(message.header))
                poses.append(m.pose_to_matrix(message.pose.pose))
            elif msgtype == m.PATH:
                stamps = [m.stamp_ns_of(p.header) for p in message.poses]
                poses = [m.pose_to_matrix(p.pose) for p in message.poses]
            else:
                for transform in message.transforms:
                    child_frame = child_frame or transform.child_frame_id
                    if transform.child_frame_id == child_frame:
                        stamps.append(m.stamp_ns_of(transform.header))
                        poses.append(m.transform_to_matrix(transform.transform))
        return np.asarray(stamps, dtype=np.int64), np.asarray(poses).reshape(-1, 4, 4)

    def camera_info(self, topic: str) -> Any | None:
        """Return the first CameraInfo message of ``topic``, or None when it is absent."""
        if topic not in self.topics():
            return None
        for _, message in self.messages(topic):
            return message
        return None
