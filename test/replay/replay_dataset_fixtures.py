# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Tiny benchmark datasets written in each dataset's exact on-disk layout (test helpers).

Every writer returns what it wrote as ground truth (poses world_from_camera, masks, depth) so
tests can check the loaders and the evaluation against known answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vggt4d_ros.geometry.rigid import translation_quaternion_from_pose

HW = (48, 64)  # tiny frames: DAVIS boundary radius ceil(0.008 * 80) = 1
#: Mask rectangle of the DAVIS fixture: rows 10..29, columns 10 + i .. 29 + i in frame i.
RECT = (10, 30, 10, 30)


def trajectory(count: int) -> np.ndarray:
    """[count,4,4] world_from_camera: a curved, turning path (well-posed Sim(3) fits)."""
    poses = []
    for i in range(count):
        angle = 0.08 * i
        c, s = np.cos(angle), np.sin(angle)
        pose = np.eye(4)
        pose[:3, :3] = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        pose[:3, 3] = [np.sin(0.3 * i), 0.1 * i, 0.5 * np.cos(0.3 * i)]
        poses.append(pose)
    return np.stack(poses)


def texture(i: int, hw: tuple[int, int] = HW) -> np.ndarray:
    """HxWx3 uint8 image that differs per frame."""
    v, u = np.mgrid[0:hw[0], 0:hw[1]]
    rgb = np.stack([(u * 4 + i * 7) % 256, (v * 5 + i * 3) % 256, (u + v + i) % 256], -1)
    return rgb.astype(np.uint8)


def _jpg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])


def _png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


def davis_mask(i: int) -> np.ndarray:
    y0, y1, x0, x1 = RECT
    mask = np.zeros(HW, bool)
    mask[y0:y1, x0 + i:x1 + i] = True
    return mask


def write_davis(root: Path, sequences: tuple[str, ...] = ('bear', 'camel'),
                frames: int = 6) -> dict[str, list[np.ndarray]]:
    """DAVIS-2017 480p layout: JPEGs, palette PNG annotations (two object ids), val list."""
    base = root / 'DAVIS'
    truth = {}
    for name in sequences:
        masks = []
        for i in range(frames):
            _jpg(base / 'JPEGImages' / '480p' / name / f'{i:05d}.jpg', texture(i))
            labels = np.zeros(HW, np.uint8)
            mask = davis_mask(i)
            labels[mask] = 1
            labels[RECT[0]:RECT[0] + 5, RECT[2] + i:RECT[2] + i + 5] = 2  # second object
            image = Image.fromarray(labels, mode='P')
            image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
            path = base / 'Annotations' / '480p' / name / f'{i:05d}.png'
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
            masks.append(mask)
        truth[name] = masks
    sets = base / 'ImageSets' / '2017'
    sets.mkdir(parents=True, exist_ok=True)
    (sets / 'val.txt').write_text(''.join(f'{name}\n' for name in sequences))
    return truth


def write_vkitti(root: Path, scene: str = 'Scene01', frames: int = 8) -> np.ndarray:
    """Virtual KITTI 2 layout (rgb + textgt); returns the poses written."""
    folder = root / scene / 'clone'
    poses = trajectory(frames)
    ext = ['frame cameraID r1,1 r1,2 r1,3 t1 r2,1 r2,2 r2,3 t2 r3,1 r3,2 r3,3 t3 0 0 0 1']
    intr = ['frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]']
    for i in range(frames):
        _jpg(folder / 'frames' / 'rgb' / 'Camera_0' / f'rgb_{i:05d}.jpg', texture(i))
        for camera in (0, 1):
            extrinsic = np.linalg.inv(poses[i])
            extrinsic[0, 3] += 0.5 * camera  # camera 1 differs: must not be read
            values = [f'{v:.12g}' for v in extrinsic.reshape(-1)]
            ext.append(' '.join([str(i), str(camera), *values]))
            intr.append(f'{i} {camera} 60.0 61.0 31.5 23.5')
    (folder / 'extrinsic.txt').write_text('\n'.join(ext) + '\n')
    (folder / 'intrinsic.txt').write_text('\n'.join(intr) + '\n')
    return poses


def write_pointodyssey(root: Path, name: str = 'ani', frames: int = 10) -> np.ndarray:
    """Write the PointOdyssey layout (split folder test/); returns the poses written."""
    folder = root / 'test' / name
    poses = trajectory(frames)
    for i in range(frames):
        _jpg(folder / 'rgbs' / f'rgb_{i:05d}.jpg', texture(i))
        depth = np.full(HW, 2.0 / 1000.0 * 65535.0, np.float64).astype(np.uint16)
        (folder / 'depths').mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / 'depths' / f'depth_{i:05d}.png'), depth)
    k = np.array([[60.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])
    np.savez(folder / 'anno.npz', extrinsics=np.linalg.inv(poses),
             intrinsics=np.repeat(k[None], frames, 0), trajs_2d=np.zeros((frames, 3, 2)),
             trajs_3d=np.zeros((frames, 3, 3)), valids=np.ones((frames, 3), bool),
             visibs=np.ones((frames, 3), bool))
    return poses


def dycheck_depth(i: int) -> np.ndarray:
    v, u = np.mgrid[0:HW[0], 0:HW[1]]
    depth = 1.5 + 0.3 * np.sin(u / 9.0 + 0.1 * i) + 0.2 * np.cos(v / 7.0)
    depth[:4, :4] = 0.0  # invalid lidar pixels
    return depth.astype(np.float32)


def write_dycheck(root: Path, name: str = 'apple', frames: int = 40) -> dict[str, object]:
    """Write the DyCheck iPhone layout; the protocol keeps every 10th training id."""
    folder = root / name
    ids = [f'0_{i:05d}' for i in range(frames)]
    (folder / 'camera').mkdir(parents=True, exist_ok=True)
    (folder / 'dataset.json').write_text(json.dumps(
        {'count': frames, 'num_exemplars': frames, 'ids': ids, 'train_ids': ids,
         'val_ids': []}))
    (folder / 'extra.json').write_text(json.dumps({'fps': 30.0}))
    poses = trajectory(frames)
    for i, frame_id in enumerate(ids):
        _png(folder / 'rgb' / '1x' / f'{frame_id}.png', texture(i))
        (folder / 'depth' / '1x').mkdir(parents=True, exist_ok=True)
        np.save(folder / 'depth' / '1x' / f'{frame_id}.npy', dycheck_depth(i)[..., None])
        rotation = poses[i][:3, :3].T  # camera_from_world rotation
        (folder / 'camera' / f'{frame_id}.json').write_text(json.dumps({
            'orientation': rotation.tolist(), 'position': poses[i][:3, 3].tolist(),
            'focal_length': 50.0, 'principal_point': [31.5, 23.5], 'skew': 0.0,
            'pixel_aspect_ratio': 1.0, 'radial_distortion': [0.0, 0.0, 0.0],
            'tangential_distortion': [0.0, 0.0], 'image_size': [HW[1], HW[0]]}))
    return {'ids': ids, 'poses': poses}


def tum_stamps(count: int, start: float = 1305031102.0) -> list[float]:
    return [start + i / 30.0 for i in range(count)]


def write_tum_folder(root: Path, name: str, frames: int = 12
                     ) -> tuple[list[float], np.ndarray]:
    """TUM/Bonn folder layout; ground truth at 100 Hz, offset from the images by 3 ms."""
    folder = root / name
    stamps = tum_stamps(frames)
    lines = ['# color images', '# file: test', '# timestamp filename']
    for i, stamp in enumerate(stamps):
        _png(folder / 'rgb' / f'{stamp:.6f}.png', texture(i))
        lines.append(f'{stamp:.6f} rgb/{stamp:.6f}.png')
    (folder / 'rgb.txt').write_text('\n'.join(lines) + '\n')
    dense = np.arange(stamps[0] - 0.05, stamps[-1] + 0.05, 0.01)
    poses = trajectory(len(dense))
    truth = ['# ground truth trajectory', '# timestamp tx ty tz qx qy qz qw']
    for stamp, pose in zip(dense, poses):
        t, q = translation_quaternion_from_pose(pose)
        truth.append(f'{stamp + 0.003:.4f} ' + ' '.join(f'{v:.6f}' for v in (*t, *q)))
    (folder / 'groundtruth.txt').write_text('\n'.join(truth) + '\n')
    return stamps, poses


def write_tum_bag(path: Path, frames: int = 12, with_tf: bool = True
                  ) -> tuple[list[float], np.ndarray]:
    """Write a ROS 1 bag as TUM distributes it (image_color, camera_info, /tf)."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import get_typestore
    from rosbags.typesys import get_types_from_msg
    from rosbags.typesys import Stores

    store = get_typestore(Stores.ROS1_NOETIC)
    store.register(get_types_from_msg('geometry_msgs/TransformStamped[] transforms',
                                      'tf/msg/tfMessage'))
    types = store.types
    stamps = tum_stamps(frames)
    poses = trajectory(frames)

    def header(stamp: float, frame: str) -> object:
        ns = int(round(stamp * 1e9))
        return types['std_msgs/msg/Header'](
            seq=0, stamp=types['builtin_interfaces/msg/Time'](sec=ns // 10**9,
                                                              nanosec=ns % 10**9),
            frame_id=frame)

    path.parent.mkdir(parents=True, exist_ok=True)
    with Writer(path) as writer:
        image_conn = writer.add_connection('/camera/rgb/image_color', 'sensor_msgs/msg/Image',
                                           typestore=store)
        info_conn = writer.add_connection('/camera/rgb/camera_info',
                                          'sensor_msgs/msg/CameraInfo', typestore=store)
        tf_conn = writer.add_connection('/tf', 'tf/msg/tfMessage', typestore=store)
        for i, stamp in enumerate(stamps):
            ns = int(round(stamp * 1e9))
            rgb = texture(i)
            image = types['sensor_msgs/msg/Image'](
                header=header(stamp, '/openni_rgb_optical_frame'), height=HW[0], width=HW[1],
                encoding='rgb8', is_bigendian=0, step=HW[1] * 3, data=rgb.reshape(-1))
            writer.write(image_conn, ns, store.serialize_ros1(image, 'sensor_msgs/msg/Image'))
            roi = types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0,
                                                            width=0, do_rectify=False)
            info = types['sensor_msgs/msg/CameraInfo'](
                header=header(stamp, '/openni_rgb_optical_frame'), height=HW[0], width=HW[1],
                distortion_model='plumb_bob', D=np.zeros(5),
                K=np.array([70.0, 0, 32.0, 0, 71.0, 24.0, 0, 0, 1]), R=np.eye(3).reshape(-1),
                P=np.zeros(12), binning_x=0, binning_y=0, roi=roi)
            writer.write(info_conn, ns, store.serialize_ros1(info,
                                                             'sensor_msgs/msg/CameraInfo'))
            if with_tf:
                t, q = translation_quaternion_from_pose(poses[i])
                transform = types['geometry_msgs/msg/TransformStamped'](
                    header=header(stamp + 0.004, '/world'), child_frame_id='/kinect',
                    transform=types['geometry_msgs/msg/Transform'](
                        translation=types['geometry_msgs/msg/Vector3'](x=t[0], y=t[1], z=t[2]),
                        rotation=types['geometry_msgs/msg/Quaternion'](
                            x=q[0], y=q[1], z=q[2], w=q[3])))
                message = types['tf/msg/tfMessage'](transforms=[transform])
                writer.write(tf_conn, ns + 4_000_000,
                             store.serialize_ros1(message, 'tf/msg/tfMessage'))
    return stamps, poses


def write_params(path: Path, window_size: int = 4, stride: int = 2) -> Path:
    """Write a node parameter file: small windows, a mapper stride for 48x64 frames."""
    path.write_text(
        '/**:\n  ros__parameters:\n    device: cpu\n    window:\n'
        f'      window_size: {window_size}\n      stride: {stride}\n'
        '    mapper:\n      pixel_stride: 4\n')
    return path
