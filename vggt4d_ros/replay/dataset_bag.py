# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Write one benchmark sequence as a rosbag2 (mcap) that ``vggt4d-replay`` and the node can play.

Topics (the ground-truth names are the ones ``vggt4d-replay`` finds by itself)::

    /camera/image_raw            sensor_msgs/Image rgb8, frame camera_optical_frame
    /camera/camera_info          sensor_msgs/CameraInfo, when the dataset has intrinsics
    /ground_truth/pose           geometry_msgs/PoseStamped world_from_camera, frame world
    /tf                          world -> ground_truth_camera (the same pose as TF)
    /ground_truth/dynamic_mask   sensor_msgs/Image mono8 0/255, when the dataset has masks

Every message is stamped with its image's stamp (bag time = header stamp).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagWriter
from vggt4d_ros.replay.bag import Storage
from vggt4d_ros.replay.datasets.base import SequenceData

CAMERA_FRAME = 'camera_optical_frame'
WORLD_FRAME = 'world'
TRUTH_CHILD_FRAME = 'ground_truth_camera'
TOPICS = {
    'image': '/camera/image_raw', 'camera_info': '/camera/camera_info',
    'pose': '/ground_truth/pose', 'tf': '/tf', 'mask': '/ground_truth/dynamic_mask',
}


def write_sequence_bag(sequence: SequenceData, out: str | Path,
                       storage: Storage = 'mcap') -> dict[str, int]:
    """Write ``sequence`` into the new bag directory ``out``; returns messages per topic.

    Raises:
        DatasetError: a frame's file is missing or unreadable (the bag written so far is
            closed properly and stays readable).
        BagError: ``out`` cannot be created (e.g. it exists).

    """
    with BagWriter(out, storage) as bag:
        for index, frame in enumerate(sequence.frames):
            rgb = frame.load_rgb()
            stamp = frame.stamp_ns
            bag.write(TOPICS['image'], m.IMAGE, m.image_msg(rgb, stamp, CAMERA_FRAME, 'rgb8'),
                      stamp)
            if sequence.intrinsics is not None:
                info = m.camera_info_msg(sequence.intrinsics[index], rgb.shape[:2], stamp,
                                         CAMERA_FRAME)
                bag.write(TOPICS['camera_info'], m.CAMERA_INFO, info, stamp)
            if sequence.poses is not None:
                pose = sequence.poses[index]
                bag.write(TOPICS['pose'], m.POSE_STAMPED,
                          m.pose_stamped_msg(pose, stamp, WORLD_FRAME), stamp)
                transform = m.transform_stamped_msg(pose, stamp, WORLD_FRAME, TRUTH_CHILD_FRAME)
                bag.write(TOPICS['tf'], m.TF_MESSAGE, m.tf_message([transform]), stamp)
            if sequence.load_mask is not None:
                mask = np.asarray(sequence.load_mask[index](), bool).astype(np.uint8) * 255
                bag.write(TOPICS['mask'], m.IMAGE, m.image_msg(mask, stamp, CAMERA_FRAME,
                                                               'mono8'), stamp)
        return dict(bag.counts)
