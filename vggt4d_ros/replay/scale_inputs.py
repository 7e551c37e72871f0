# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Read a bag's metric-scale inputs for the ROS-free scale sources (docs/scale.md).

* :func:`read_depth_images`: an aligned depth topic (16UC1 / mono16 / 32FC1) as
  ``DepthImage`` objects (decoding problems become the source's counted outcomes later, so
  images are passed through as received);
* :func:`read_odometry`: ``parent -> child`` transforms of a ``tf2_msgs/TFMessage`` topic
  (``odom -> base_link``) or the poses of a ``nav_msgs/Odometry`` topic into an
  ``OdometryBuffer`` (the samples alone: :func:`odometry_samples`, also used by the replay's
  scale feed);
* :func:`read_static_transform`: one ``parent -> child`` transform from ``/tf_static``.
"""

from __future__ import annotations

import numpy as np

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.runtime.scale.config import OdometryScaleConfig
from vggt4d_ros.runtime.scale.depth import DepthImage
from vggt4d_ros.runtime.scale.odometry import OdometryBuffer


def read_depth_images(reader: BagReader, topic: str) -> list[DepthImage]:
    """All depth images of ``topic`` in bag order (raw arrays with their encodings)."""
    reader.require_topic(topic, (m.IMAGE,))
    images = []
    for _, msg in reader.messages(topic):
        try:
            data = m.image_to_array(msg)
        except ValueError:
            data = np.zeros((0, 0), np.uint8)  # unsupported encoding: counted by the source
        images.append(DepthImage(m.stamp_ns_of(msg.header), data, msg.encoding))
    return images


def odometry_samples(reader: BagReader, topic: str, parent: str, child: str,
                     match_odometry_frames: bool = True) -> list[tuple[int, np.ndarray]]:
    """``parent -> child`` poses [4,4] of a TF or nav_msgs/Odometry topic, sorted by stamp.

    TF transforms are always picked by their frames. ``match_odometry_frames`` False takes
    every Odometry message of the topic whatever its frames, as the node does.
    """
    msgtype = reader.require_topic(topic, (m.TF_MESSAGE, m.ODOMETRY))
    samples = []
    for _, msg in reader.messages(topic):
        if msgtype == m.ODOMETRY:
            if not match_odometry_frames or (msg.header.frame_id.lstrip('/') == parent and
                                             msg.child_frame_id.lstrip('/') == child):
                samples.append((m.stamp_ns_of(msg.header), m.pose_to_matrix(msg.pose.pose)))
            continue
        for transform in msg.transforms:
            if transform.header.frame_id.lstrip('/') == parent and \
                    transform.child_frame_id.lstrip('/') == child:
                samples.append((m.stamp_ns_of(transform.header),
                                m.transform_to_matrix(transform.transform)))
    return sorted(samples, key=lambda sample: sample[0])


def read_odometry(reader: BagReader, topic: str, parent: str = 'odom',
                  child: str = 'base_link',
                  config: OdometryScaleConfig | None = None) -> OdometryBuffer:
    """``parent -> child`` poses of a TF or nav_msgs/Odometry topic in an OdometryBuffer."""
    buffer = OdometryBuffer(config)
    for stamp, pose in odometry_samples(reader, topic, parent, child):
        buffer.add(stamp, pose)
    return buffer


def read_static_transform(reader: BagReader, parent: str, child: str,
                          topic: str = '/tf_static') -> np.ndarray | None:
    """Return the ``parent -> child`` transform [4,4] on ``topic`` (None if not there)."""
    if topic not in reader.topics():
        return None
    for _, msg in reader.messages(topic):
        for transform in msg.transforms:
            if transform.header.frame_id.lstrip('/') == parent and \
                    transform.child_frame_id.lstrip('/') == child:
                return m.transform_to_matrix(transform.transform)
    return None
