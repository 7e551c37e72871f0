# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Read a bag's metric-scale inputs for the ROS-free scale sources (docs/scale.md).

* :func:`read_depth_images`: an aligned depth topic (16UC1 / mono16 / 32FC1) as
  ``DepthImage`` objects (decoding problems become the source's counted outcomes later, so
  images are passed through as received);
* :func:`read_odometry`: ``parent -> child`` poses of a ``tf2_msgs/TFMessage`` topic
  (``odom -> base_link``, chains resolved in the node's TF tree, see ``replay/bag_tf.py``)
  or of a ``nav_msgs/Odometry`` topic into an ``OdometryBuffer`` (the samples alone:
  :func:`odometry_samples`; the replay's scale feed resolves TF at the image stamps instead,
  as the node does: ``replay/scale_run.py``);
* :func:`read_static_transform`: ``parent -> child`` from ``/tf_static``, through a chain of
  static links (``base_link -> camera_link -> camera_optical_frame``) when there is one.
"""

from __future__ import annotations

import numpy as np

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay.bag_tf import BagTf
from vggt4d_ros.replay.bag_tf import TF_STATIC_TOPIC
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

    TF: the pose at each stamp of the topic's transforms, looked up in the node's TF tree fed
    up to that stamp (a chain resolves once each of its links has a sample there; stamps
    where it does not are left out). ``match_odometry_frames`` False takes every Odometry
    message of the topic whatever its frames, as the node does.
    """
    msgtype = reader.require_topic(topic, (m.TF_MESSAGE, m.ODOMETRY))
    if msgtype == m.TF_MESSAGE:
        tf = BagTf(reader, topic)
        samples = []
        for stamp in tf.dynamic_stamps:
            tf.advance(stamp)
            pose = tf.find(parent, child, stamp)
            if pose is not None:
                samples.append((stamp, pose))
        return samples
    samples = []
    for _, msg in reader.messages(topic):
        if not match_odometry_frames or (msg.header.frame_id.lstrip('/') == parent and
                                         msg.child_frame_id.lstrip('/') == child):
            samples.append((m.stamp_ns_of(msg.header), m.pose_to_matrix(msg.pose.pose)))
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
                          topic: str = TF_STATIC_TOPIC) -> np.ndarray | None:
    """Return ``parent -> child`` [4,4] from the static transforms on ``topic`` (None: absent).

    A chain of static links resolves (the node's TF tree, latest time).
    """
    return BagTf(reader, tf_topic=None, static_topic=topic).find(parent, child, 0)
