# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The synthetic scene seen by a two-camera rig, with ground truth per camera.

The rig rides the synthetic camera path (:class:`~vggt4d_ros.replay.synthetic.SyntheticScene`):
its reference camera is the path camera, the other camera is fixed to it. Two layouts:

* ``stereo``: ``left`` (reference) and ``right`` 0.30 m to its right, same orientation;
* ``front_side``: ``front`` (reference) and ``side`` 0.15 m to its right, turned 60° to the
  right (it sees the room's side while the front camera sees the moving objects).

Bag topics per camera ``<c>``: ``/rig/<c>/image_raw`` (rgb8), ``/rig/<c>/camera_info``,
``/ground_truth/<c>/pose`` (world-from-optical-frame in ``world``) and
``/ground_truth/<c>/dynamic_mask`` (mono8); ``/tf_static`` holds ``base_link -> <c>_optical``
(the reference camera on the single-camera mount, :func:`synthetic.base_from_camera`). All
cameras share the path camera's stamps (a hardware-synchronised rig).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay.bag import BagWriter
from vggt4d_ros.replay.bag import Storage
from vggt4d_ros.replay.synthetic import base_from_camera
from vggt4d_ros.replay.synthetic import BASE_FRAME
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticScene
from vggt4d_ros.replay.synthetic import WORLD_FRAME

RIG_LAYOUTS = ('stereo', 'front_side')


def _camera(x_m: float, yaw_right_deg: float = 0.0) -> np.ndarray:
    """Pose [4,4] in the reference optical frame: x_m to the right, turned right about y."""
    yaw = np.radians(yaw_right_deg)
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(yaw), 0.0, np.sin(yaw)], [0.0, 1.0, 0.0],
                    [-np.sin(yaw), 0.0, np.cos(yaw)]]
    pose[0, 3] = x_m
    return pose


def rig_cameras(layout: str) -> dict[str, np.ndarray]:
    """Camera name -> pose [4,4] in the reference camera's optical frame (reference first)."""
    if layout == 'stereo':
        return {'left': np.eye(4), 'right': _camera(0.30)}
    if layout == 'front_side':
        return {'front': np.eye(4), 'side': _camera(0.15, 60.0)}
    raise ValueError(f'rig layout must be one of {RIG_LAYOUTS}, got {layout!r}')


def rig_topics(name: str) -> dict[str, str]:
    """Topics of one rig camera."""
    return {'image': f'/rig/{name}/image_raw', 'camera_info': f'/rig/{name}/camera_info',
            'pose': f'/ground_truth/{name}/pose', 'mask': f'/ground_truth/{name}/dynamic_mask'}


def rig_extrinsics(layout: str) -> np.ndarray:
    """[N,4,4] base_link -> each camera's optical frame (metres), reference first."""
    mount = base_from_camera()
    return np.stack([mount @ camera for camera in rig_cameras(layout).values()])


def write_synthetic_rig_bag(path: str | Path, config: SceneConfig | None = None,
                            layout: str = 'stereo', storage: Storage = 'mcap',
                            progress: Callable[[int, int], None] | None = None) -> Path:
    """Render the scene for a two-camera rig into a new rosbag2 directory (module docstring).

    Returns:
        The bag directory.

    """
    cameras = rig_cameras(layout)
    scene = SyntheticScene(config)
    cfg = scene.config
    k = cfg.intrinsics()
    path = Path(path)
    with BagWriter(path, storage) as bag:
        mounts = [m.transform_stamped_msg(extrinsic, cfg.start_ns, BASE_FRAME, f'{name}_optical')
                  for name, extrinsic in zip(cameras, rig_extrinsics(layout))]
        bag.write('/tf_static', m.TF_MESSAGE, m.tf_message(mounts), cfg.start_ns)
        for index in range(cfg.num_frames):
            for name, camera in cameras.items():
                frame = scene.render(index, camera)
                topics, frame_id, stamp = rig_topics(name), f'{name}_optical', frame.stamp_ns
                bag.write(topics['image'], m.IMAGE,
                          m.image_msg(frame.rgb, stamp, frame_id, 'rgb8'), stamp)
                bag.write(topics['camera_info'], m.CAMERA_INFO,
                          m.camera_info_msg(k, (cfg.height, cfg.width), stamp, frame_id), stamp)
                bag.write(topics['pose'], m.POSE_STAMPED,
                          m.pose_stamped_msg(frame.world_from_camera, stamp, WORLD_FRAME), stamp)
                bag.write(topics['mask'], m.IMAGE,
                          m.image_msg(frame.dynamic_mask, stamp, frame_id, 'mono8'), stamp)
            if progress is not None:
                progress(index + 1, cfg.num_frames)
    return path
