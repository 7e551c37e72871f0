# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Incremental output files of a replay run.

Everything per frame is written as soon as the frame is out of the engine (mask PNG, TUM
line, output-bag messages), so a run that fails half way keeps what it produced; ``close``
always finalises the output bag (metadata.yaml), even after an error.

Layout of the output directory::

    masks/<stamp_ns>.png     mono8 0/255 dynamic masks at camera resolution
    trajectory.tum           'stamp tx ty tz qx qy qz qw', world-from-camera, image stamps
    output_bag/              rosbag2 (mcap): images, masks, TF, path, odometry, map cloud
                             and, with perception on, the planner outputs (PLANNER_TOPICS)
    static_map.ply           fused static map (written at the end)
    metrics.json, report/    metrics and the Markdown report with its plots (at the end)
"""

from __future__ import annotations

from pathlib import Path
import shutil
from typing import Any, Sequence

import cv2
import numpy as np

from vggt4d_ros.geometry.rigid import pose_from_translation_quaternion
from vggt4d_ros.geometry.rigid import invert_rigid
from vggt4d_ros.geometry.rigid import translation_quaternion_from_pose
from vggt4d_ros.perception.perception_tracker import PerceptionOutput
from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay import planner_messages as pm
from vggt4d_ros.replay.bag import BagWriter
from vggt4d_ros.replay.bag import Storage

OUTPUT_TOPICS = {
    'image': '/camera/image_raw',
    'mask': '/vggt4d/dynamic_mask',
    'tf': '/tf',
    'path': '/vggt4d/path',
    'odometry': '/vggt4d/odometry',
    'map': '/vggt4d/static_map',
}
#: The node's planner-output topics (``~/...`` of the node ``vggt4d``), same types.
PLANNER_TOPICS = {
    'dynamic_cloud': '/vggt4d/dynamic_cloud',
    'static': '/vggt4d/static_grid',
    'dynamic': '/vggt4d/dynamic_grid',
    'combined': '/vggt4d/combined_grid',
    'detections': '/vggt4d/detections',
    'obstacles': '/vggt4d/obstacles',
    'markers': '/vggt4d/track_markers',
    'tf_static': '/tf_static',
}
MAP_FRAME = 'map'
#: Frame of the planner outputs: the map frame turned by ``PerceptionConfig.output_from_world``
#: (z up); ``/tf_static`` holds map -> PLANNER_FRAME.
PLANNER_FRAME = 'map_z_up'
#: Files and folders a replay writes; earlier results of these names are replaced.
PRODUCTS = ('output_bag', 'masks', 'report', 'trajectory.tum', 'static_map.ply',
            'metrics.json')


def clear_previous(out: Path) -> None:
    """Remove the products of an earlier replay into ``out`` (nothing else is touched)."""
    for name in PRODUCTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def mask_png_path(out: Path, stamp_ns: int) -> Path:
    """``out/masks/<stamp_ns>.png`` (the same naming the DDS driver uses)."""
    return out / 'masks' / f'{int(stamp_ns)}.png'


def read_mask_dir(folder: Path) -> dict[int, np.ndarray]:
    """Masks of a folder of ``<stamp_ns>.png`` files: stamp -> [H,W] uint8."""
    masks = {}
    for path in sorted(Path(folder).glob('*.png')):
        if not path.stem.isdigit():
            continue
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is not None:
            masks[int(path.stem)] = image
    return masks


def format_stamp(stamp_ns: int) -> str:
    """Nanoseconds -> exact decimal seconds (TUM's first column)."""
    whole, frac = divmod(int(stamp_ns), 1_000_000_000)
    return f'{whole}.{frac:09d}'


def tum_line(stamp_ns: int, world_from_camera: np.ndarray) -> str:
    """One TUM line: ``stamp tx ty tz qx qy qz qw``."""
    translation, quat = translation_quaternion_from_pose(world_from_camera)
    values = ' '.join(f'{v:.9f}' for v in (*translation, *quat))
    return f'{format_stamp(stamp_ns)} {values}'


def read_tum(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Stamps [N] int64 ns and poses [N,4,4] of a TUM file (comments and blanks skipped)."""
    stamps, poses = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        fields = line.split()
        if len(fields) != 8:
            raise ValueError(f'{path}:{number}: expected 8 columns, got {len(fields)}')
        whole, _, frac = fields[0].partition('.')
        stamps.append(int(whole) * 1_000_000_000 + int((frac + '000000000')[:9]))
        values = [float(v) for v in fields[1:]]
        poses.append(pose_from_translation_quaternion(values[:3], values[3:]))
    return np.asarray(stamps, np.int64), np.asarray(poses).reshape(-1, 4, 4)


class ReplayOutputs:
    """Writes the per-frame and final outputs of one replay into ``out_dir``.

    Args:
        out_dir: output directory (created; products of an earlier run are replaced).
        storage: output bag storage.
        copy_images: also store the source images in the output bag (self-contained viewing).
        path_max_poses: bound of the recorded nav_msgs/Path.

    """

    def __init__(self, out_dir: str | Path, storage: Storage = 'mcap', copy_images: bool = True,
                 path_max_poses: int = 1024) -> None:
        self.out_dir = Path(out_dir)
        clear_previous(self.out_dir)
        (self.out_dir / 'masks').mkdir(parents=True, exist_ok=True)
        self.tum_path = self.out_dir / 'trajectory.tum'
        self.bag_path = self.out_dir / 'output_bag'
        self.ply_path = self.out_dir / 'static_map.ply'
        self.copy_images = copy_images
        self.path_max_poses = path_max_poses
        self._tum = open(self.tum_path, 'w')
        self.bag = BagWriter(self.bag_path, storage)
        self.stamps: list[int] = []
        self.poses: list[np.ndarray] = []
        self.masks: dict[int, np.ndarray] = {}
        self._planner_frame_written = False

    def write_frame(self, stamp_ns: int, frame_id: str, mask: np.ndarray,
                    world_from_camera: np.ndarray, rgb: np.ndarray | None = None) -> None:
        """Persist one output frame (mask [H,W] uint8 0/255, pose [4,4], optional rgb)."""
        frame_id = frame_id or 'camera_optical_frame'
        stamp_ns = int(stamp_ns)
        mask = np.ascontiguousarray(mask, np.uint8)
        cv2.imwrite(str(mask_png_path(self.out_dir, stamp_ns)), mask)
        self._tum.write(tum_line(stamp_ns, world_from_camera) + '\n')
        self._tum.flush()
        if rgb is not None and self.copy_images:
            self.bag.write(OUTPUT_TOPICS['image'], m.IMAGE,
                           m.image_msg(rgb, stamp_ns, frame_id, 'rgb8'), stamp_ns)
        self.bag.write(OUTPUT_TOPICS['mask'], m.IMAGE,
                       m.image_msg(mask, stamp_ns, frame_id, 'mono8'), stamp_ns)
        transform = m.transform_stamped_msg(world_from_camera, stamp_ns, MAP_FRAME, frame_id)
        self.bag.write(OUTPUT_TOPICS['tf'], m.TF_MESSAGE, m.tf_message([transform]), stamp_ns)
        self.bag.write(OUTPUT_TOPICS['odometry'], m.ODOMETRY,
                       m.odometry_msg(world_from_camera, stamp_ns, MAP_FRAME, frame_id),
                       stamp_ns)
        self.stamps.append(stamp_ns)
        self.poses.append(np.asarray(world_from_camera, np.float64))
        self.masks[stamp_ns] = mask

    def write_window_end(self, points: np.ndarray, colors: np.ndarray,
                         trajectory: tuple[Sequence[int], Sequence[np.ndarray]] | None = None
                         ) -> None:
        """Path and map cloud after a window, stamped with the newest frame's stamp.

        Args:
            points: [M,3] static map points; colors: [M,3] uint8.
            trajectory: (stamps, poses) to publish as the path; default: the frames so far.

        """
        if not self.stamps:
            return
        stamp = self.stamps[-1]
        stamps, poses = trajectory if trajectory is not None else (self.stamps, self.poses)
        stamps, poses = list(stamps)[-self.path_max_poses:], list(poses)[-self.path_max_poses:]
        self.bag.write(OUTPUT_TOPICS['path'], m.PATH, m.path_msg(poses, stamps, MAP_FRAME), stamp)
        self.bag.write(OUTPUT_TOPICS['map'], m.POINT_CLOUD2,
                       m.point_cloud_msg(points, colors, stamp, MAP_FRAME), stamp)

    def write_perception(self, output: PerceptionOutput, output_from_world: np.ndarray
                         ) -> None:
        """Planner outputs of one window, as the node publishes them (``PLANNER_TOPICS``).

        Per frame the dynamic cloud (its image stamp); per window (the newest frame's stamp)
        the three grids, the detections, the obstacles and the track markers, all in
        ``PLANNER_FRAME``. The first call also writes ``/tf_static`` map -> PLANNER_FRAME
        (``output_from_world`` [4,4] rigid: PLANNER_FRAME from the map frame).
        """
        topics = PLANNER_TOPICS
        if not self._planner_frame_written:
            stamp = output.stamp_ns if output.stamp_ns is not None else 0
            link = m.transform_stamped_msg(invert_rigid(np.asarray(output_from_world)), stamp,
                                           MAP_FRAME, PLANNER_FRAME)
            self.bag.write(topics['tf_static'], m.TF_MESSAGE, m.tf_message([link]), stamp)
            self._planner_frame_written = True
        for cloud in output.clouds:
            self.bag.write(topics['dynamic_cloud'], m.POINT_CLOUD2,
                           pm.dynamic_cloud_msg(cloud, PLANNER_FRAME), cloud.stamp_ns)
        if output.stamp_ns is None:
            return
        stamp = output.stamp_ns
        if output.grids is not None:
            for name, msg in pm.grid_msgs(output.grids, PLANNER_FRAME).items():
                self.bag.write(topics[name], pm.OCCUPANCY_GRID, msg, stamp)
        self.bag.write(topics['detections'], pm.DETECTION3D_ARRAY,
                       pm.detections_msg(output.tracks, stamp, PLANNER_FRAME), stamp)
        self.bag.write(topics['obstacles'], pm.OBSTACLE_ARRAY,
                       pm.obstacles_msg(output.tracks, stamp, PLANNER_FRAME), stamp)
        self.bag.write(topics['markers'], pm.MARKER_ARRAY,
                       pm.markers_msg(output.tracks, stamp, PLANNER_FRAME), stamp)

    def write_ply(self, points: np.ndarray, colors: np.ndarray) -> int:
        """Binary little-endian PLY of the static map; returns the point count."""
        points = np.asarray(points, np.float32).reshape(-1, 3)
        colors = np.asarray(colors, np.uint8).reshape(-1, 3)
        record = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'),
                           ('red', 'u1'), ('green', 'u1'), ('blue', 'u1')])
        data = np.empty(len(points), record)
        data['x'], data['y'], data['z'] = points.T
        data['red'], data['green'], data['blue'] = colors.T
        header = ('ply\nformat binary_little_endian 1.0\n'
                  f'element vertex {len(points)}\n'
                  'property float x\nproperty float y\nproperty float z\n'
                  'property uchar red\nproperty uchar green\nproperty uchar blue\n'
                  'end_header\n')
        with open(self.ply_path, 'wb') as handle:
            handle.write(header.encode('ascii'))
            handle.write(data.tobytes())
        return len(points)

    def close(self) -> None:
        """Flush the TUM file and finalise the output bag (safe to call twice)."""
        if not self._tum.closed:
            self._tum.close()
        self.bag.close()

    def __enter__(self) -> 'ReplayOutputs':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
