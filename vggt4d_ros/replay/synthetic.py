# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Synthetic dynamic scene with exact ground truth, rendered by ray casting in numpy.

The scene is a textured room (floor, ceiling, four walls) with two static boxes, a ball rolling
on a circle and a crate that slides and turns. A camera sweeps an arc around the room centre
(plenty of parallax) while looking at it. Every frame gives RGB, z-depth, the dynamic mask
(pixels whose first hit is a moving object) and the world-from-camera pose, all exact.

World frame: z up (REP-103). Camera frame: optical (x right, y down, z forward). Intrinsics
follow OpenCV: pixel (u, v) has its centre at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
import sys
from typing import Any, Callable, Iterator

import numpy as np

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay import planner_messages as pm
from vggt4d_ros.replay.bag import BagWriter
from vggt4d_ros.replay.bag import Storage

CAMERA_FRAME = 'camera_optical_frame'
WORLD_FRAME = 'world'
TOPICS = {
    'image': '/camera/image_raw',
    'camera_info': '/camera/camera_info',
    'pose': '/ground_truth/pose',
    'depth': '/ground_truth/depth',
    'mask': '/ground_truth/dynamic_mask',
    'objects': '/ground_truth/objects',
}
_FAR = 1e6

# Metric-scale sensors (see docs/scale.md): an RGB-D camera's aligned depth, wheel odometry on
# TF and the camera mount (base_link -> optical frame) on /tf_static.
METRIC_TOPICS = {
    'depth': '/camera/aligned_depth_to_color/image_raw',
    'tf': '/tf',
    'tf_static': '/tf_static',
}
ODOM_FRAME = 'odom'
BASE_FRAME = 'base_link'
#: Intermediate frames of ``SensorConfig.chained_tf`` (the usual robot tree).
FOOTPRINT_FRAME = 'base_footprint'
CAMERA_LINK_FRAME = 'camera_link'
#: base_link's height above base_footprint in the chained tree (metres).
FOOTPRINT_TO_BASE_Z_M = 0.1
#: The optical frame's offset in camera_link in the chained tree (metres).
CAMERA_LINK_TO_OPTICAL_M = (0.0, -0.015, 0.0)
#: Nominal camera height above the floor (the arc's mean; the path bobs +-0.15 m around it).
CAMERA_HEIGHT_M = 1.45
#: Mean downward pitch of the camera along the arc (it looks at the room centre).
CAMERA_PITCH_RAD = 0.29


@dataclass(frozen=True)
class SceneConfig:
    """Size and timing of the synthetic sequence.

    Attributes:
        num_frames: frames to render.
        width, height: image size in pixels.
        fps: frame rate; stamps are ``start_ns + i / fps``.
        horizontal_fov_deg: horizontal field of view.
        seed: texture and motion-phase seed (same seed, same bytes).
        supersample: colour anti-aliasing factor per axis (depth and mask are not averaged).
        start_ns: stamp of the first frame.

    """

    num_frames: int = 24
    width: int = 160
    height: int = 120
    fps: float = 10.0
    horizontal_fov_deg: float = 70.0
    seed: int = 0
    supersample: int = 2
    start_ns: int = 1_700_000_000_000_000_000

    @classmethod
    def large(cls, seed: int = 0) -> 'SceneConfig':
        """Return a longer, sharper sequence for a more telling (slower) demo."""
        return cls(num_frames=96, width=320, height=240, seed=seed)

    def intrinsics(self) -> np.ndarray:
        """K [3,3] (OpenCV convention, square pixels)."""
        focal = 0.5 * self.width / np.tan(np.radians(self.horizontal_fov_deg) / 2.0)
        return np.array([[focal, 0.0, (self.width - 1) / 2.0],
                         [0.0, focal, (self.height - 1) / 2.0],
                         [0.0, 0.0, 1.0]])

    def stamp_ns(self, index: int) -> int:
        return self.start_ns + int(round(index * 1e9 / self.fps))


@dataclass
class RenderedFrame:
    """One rendered frame.

    Attributes:
        stamp_ns: image stamp.
        rgb: [H,W,3] uint8.
        depth: [H,W] float32 z-depth in metres.
        dynamic_mask: [H,W] uint8, 255 where a moving object is seen.
        world_from_camera: [4,4] float64 pose of the optical frame.

    """

    stamp_ns: int
    rgb: np.ndarray
    depth: np.ndarray
    dynamic_mask: np.ndarray
    world_from_camera: np.ndarray


@dataclass
class _Hits:
    """Nearest hit per ray: distance, unit normal, surface coordinates, material, dynamic flag."""

    t: np.ndarray
    normal: np.ndarray
    uv: np.ndarray
    material: np.ndarray
    dynamic: np.ndarray

    @classmethod
    def empty(cls, count: int) -> '_Hits':
        return cls(np.full(count, _FAR), np.zeros((count, 3)), np.zeros((count, 2)),
                   np.zeros(count, dtype=np.int64), np.zeros(count, dtype=bool))

    def merge(self, t: np.ndarray, normal: np.ndarray, uv: np.ndarray, material: int,
              dynamic: bool) -> None:
        closer = t < self.t
        self.t = np.where(closer, t, self.t)
        self.normal[closer] = normal[closer]
        self.uv[closer] = uv[closer]
        self.material[closer] = material
        self.dynamic[closer] = dynamic


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _face_uv(local: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Surface coordinates [P,2]: the two local coordinates other than the hit face's axis."""
    first = np.where(axis == 0, local[:, 1], local[:, 0])
    second = np.where(axis == 2, local[:, 1], local[:, 2])
    return np.stack([first, second], axis=1)


def _box_hits(origin: np.ndarray, dirs: np.ndarray, center: np.ndarray, half: np.ndarray,
              rotation: np.ndarray, inside: bool) -> tuple[np.ndarray, ...]:
    """Ray / oriented-box intersection (slab method).

    Args:
        origin: [3] ray origin (world); dirs: [P,3] ray directions (world).
        center, half, rotation: box centre, half extents and world-from-box rotation.
        inside: rays start inside (room walls: take the exit point, normal pointing inward).

    Returns:
        t [P] (``_FAR`` when missed), normal [P,3] world, uv [P,2].

    """
    local_o = rotation.T @ (origin - center)
    local_d = dirs @ rotation
    with np.errstate(divide='ignore', invalid='ignore'):
        inv = 1.0 / np.where(np.abs(local_d) < 1e-12, 1e-12, local_d)
        t0 = (-half - local_o) * inv
        t1 = (half - local_o) * inv
    t_near, t_far = np.minimum(t0, t1), np.maximum(t0, t1)
    if inside:
        t = t_far.min(axis=1)
        axis = t_far.argmin(axis=1)
        hit = t > 0
    else:
        t = t_near.max(axis=1)
        axis = t_near.argmax(axis=1)
        hit = (t <= t_far.min(axis=1)) & (t > 1e-6)
    rows = np.arange(len(dirs))
    sign = np.sign(local_d[rows, axis])
    normal_local = np.zeros_like(local_d)
    # Outside: the normal faces the ray (against its direction); inside: likewise (inward).
    normal_local[rows, axis] = -sign
    local_hit = local_o + local_d * t[:, None]
    uv = _face_uv(local_hit, axis)
    return np.where(hit, t, _FAR), normal_local @ rotation.T, uv


def _sphere_hits(origin: np.ndarray, dirs: np.ndarray, center: np.ndarray, radius: float,
                 rotation: np.ndarray) -> tuple[np.ndarray, ...]:
    """Ray / sphere intersection; uv are longitude/latitude in the ball's own (rolling) frame."""
    offset = origin - center
    a = np.einsum('pi,pi->p', dirs, dirs)
    b = 2.0 * dirs @ offset
    c = offset @ offset - radius ** 2
    disc = b * b - 4 * a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    t = (-b - root) / (2 * a)
    hit = (disc > 0) & (t > 1e-6)
    point = origin + dirs * t[:, None]
    normal = (point - center) / radius
    local = normal @ rotation
    uv = np.stack([np.arctan2(local[:, 1], local[:, 0]) * radius * 2.0,
                   np.arcsin(np.clip(local[:, 2], -1, 1)) * radius * 2.0], axis=1)
    return np.where(hit, t, _FAR), normal, uv


class _Textures:
    """Procedural textures: per-material colour, checker and two octaves of value noise."""

    COLORS = np.array([
        [0.75, 0.68, 0.55],  # 0 floor
        [0.85, 0.85, 0.80],  # 1 ceiling
        [0.55, 0.65, 0.80],  # 2 walls
        [0.45, 0.70, 0.45],  # 3 pillar
        [0.70, 0.55, 0.35],  # 4 table block
        [0.90, 0.25, 0.20],  # 5 ball (dynamic)
        [0.95, 0.75, 0.15],  # 6 crate (dynamic)
    ])
    CHECKER = np.array([0.5, 0.6, 0.35, 0.25, 0.2, 0.12, 0.15])

    def __init__(self, rng: np.random.Generator, grid: int = 48) -> None:
        self.noise = rng.random((len(self.COLORS), 2, grid, grid, 3))
        self.grid = grid

    def _value_noise(self, material: np.ndarray, octave: int, uv: np.ndarray) -> np.ndarray:
        pos = uv % self.grid
        base = np.floor(pos).astype(np.int64)
        frac = pos - base
        nxt = (base + 1) % self.grid
        g = self.noise[:, octave]
        c00 = g[material, base[:, 0], base[:, 1]]
        c10 = g[material, nxt[:, 0], base[:, 1]]
        c01 = g[material, base[:, 0], nxt[:, 1]]
        c11 = g[material, nxt[:, 0], nxt[:, 1]]
        fx, fy = frac[:, :1], frac[:, 1:]
        return (c00 * (1 - fx) + c10 * fx) * (1 - fy) + (c01 * (1 - fx) + c11 * fx) * fy

    def shade(self, hits: _Hits, light: np.ndarray) -> np.ndarray:
        """Linear RGB [P,3] in [0,1] of the hit surfaces."""
        material = hits.material
        coarse = self._value_noise(material, 0, hits.uv * 2.5)
        fine = self._value_noise(material, 1, hits.uv * 11.0)
        checker = (np.floor(hits.uv[:, 0] * 2.0) + np.floor(hits.uv[:, 1] * 2.0)) % 2
        amount = self.CHECKER[material][:, None]
        albedo = self.COLORS[material] * (1 - amount + amount * checker[:, None])
        albedo = albedo * (0.55 + 0.6 * coarse) * (0.8 + 0.35 * fine)
        lambert = np.clip(hits.normal @ light, 0.0, 1.0)[:, None]
        return np.clip(albedo * (0.5 + 0.55 * lambert), 0.0, 1.0)


class SyntheticScene:
    """The room, its objects and the camera path; ``render(i)`` gives frame i."""

    ROOM_CENTER = np.array([0.0, 0.0, 1.5])
    ROOM_HALF = np.array([4.0, 4.0, 1.5])
    STATIC_BOXES = (  # centre, half extents, yaw, material
        (np.array([-1.4, 1.3, 1.0]), np.array([0.25, 0.25, 1.0]), 0.3, 3),
        (np.array([1.3, -1.4, 0.35]), np.array([0.45, 0.3, 0.35]), -0.4, 4),
    )

    def __init__(self, config: SceneConfig | None = None) -> None:
        self.config = config or SceneConfig()
        rng = np.random.default_rng(self.config.seed)
        self.textures = _Textures(rng)
        self.phase = rng.uniform(0.0, 2 * np.pi, size=2)
        self.light = np.array([0.3, -0.4, 0.87]) / np.linalg.norm([0.3, -0.4, 0.87])

    def time_of(self, index: int) -> float:
        return index / self.config.fps

    def world_from_camera(self, index: int) -> np.ndarray:
        """[4,4] pose of the optical frame: an arc around the room looking at its centre."""
        progress = index / max(self.config.num_frames - 1, 1)
        angle = -0.55 + 1.1 * progress
        position = np.array([3.0 * np.cos(angle), 3.0 * np.sin(angle),
                             1.45 + 0.15 * np.sin(2 * np.pi * progress)])
        target = np.array([0.0, 0.2 * np.sin(np.pi * progress), 0.55])
        forward = (target - position) / np.linalg.norm(target - position)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        pose = np.eye(4)
        pose[:3, :3] = np.stack([right, down, forward], axis=1)
        pose[:3, 3] = position
        return pose

    def ball_state(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Centre [3] and rolling rotation [3,3] of the ball (radius 0.35) at frame ``index``."""
        angle = self.phase[0] + 1.3 * self.time_of(index)
        center = np.array([0.2 + 0.9 * np.cos(angle), 0.3 + 0.9 * np.sin(angle), 0.35])
        spin = 0.9 * 1.3 * self.time_of(index) / 0.35
        c, s = np.cos(spin), np.sin(spin)
        roll = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
        return center, _yaw(angle) @ roll

    def crate_state(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Centre [3] and yaw rotation [3,3] of the sliding crate at frame ``index``."""
        t = self.time_of(index)
        center = np.array([-0.6 + 0.7 * np.sin(self.phase[1] + 1.7 * t), -0.7, 0.3])
        return center, _yaw(0.8 * t)

    def _cast(self, origin: np.ndarray, dirs: np.ndarray, index: int) -> _Hits:
        hits = _Hits.empty(len(dirs))
        t, normal, uv = _box_hits(origin, dirs, self.ROOM_CENTER, self.ROOM_HALF, np.eye(3),
                                  inside=True)
        up = normal[:, 2]
        room_material = np.where(up > 0.5, 0, np.where(up < -0.5, 1, 2))
        hits.t, hits.normal, hits.uv = t, normal, uv
        hits.material = room_material.astype(np.int64)
        for center, half, yaw, material in self.STATIC_BOXES:
            t, normal, uv = _box_hits(origin, dirs, center, half, _yaw(yaw), inside=False)
            hits.merge(t, normal, uv, material, dynamic=False)
        center, rotation = self.ball_state(index)
        t, normal, uv = _sphere_hits(origin, dirs, center, 0.35, rotation)
        hits.merge(t, normal, uv, 5, dynamic=True)
        center, rotation = self.crate_state(index)
        t, normal, uv = _box_hits(origin, dirs, center, np.array([0.35, 0.22, 0.3]), rotation,
                                  inside=False)
        hits.merge(t, normal, uv, 6, dynamic=True)
        return hits

    def _rays(self, pose: np.ndarray, factor: int) -> np.ndarray:
        """World ray directions [H*f*W*f,3] with camera-frame z = 1 (so t is z-depth)."""
        cfg = self.config
        k = cfg.intrinsics()
        step = 1.0 / factor
        offsets = (np.arange(factor) + 0.5) * step - 0.5
        us = (np.arange(cfg.width)[:, None] + offsets[None, :]).reshape(-1)
        vs = (np.arange(cfg.height)[:, None] + offsets[None, :]).reshape(-1)
        grid_u, grid_v = np.meshgrid(us, vs)
        cam = np.stack([(grid_u - k[0, 2]) / k[0, 0], (grid_v - k[1, 2]) / k[1, 1],
                        np.ones_like(grid_u)], axis=-1).reshape(-1, 3)
        return cam @ pose[:3, :3].T

    def render(self, index: int, camera: np.ndarray | None = None) -> RenderedFrame:
        """Render frame ``index`` (0-based).

        Args:
            index: frame index.
            camera: [4,4] pose of the rendering camera in the path camera's optical frame (a
                rig's other camera, see :mod:`vggt4d_ros.replay.synthetic_rig`); None: the
                path camera itself.

        """
        cfg = self.config
        pose = self.world_from_camera(index)
        if camera is not None:
            pose = pose @ camera
        origin = pose[:3, 3]
        hits = self._cast(origin, self._rays(pose, 1), index)
        depth = hits.t.reshape(cfg.height, cfg.width).astype(np.float32)
        mask = (hits.dynamic.reshape(cfg.height, cfg.width) * 255).astype(np.uint8)
        factor = max(int(cfg.supersample), 1)
        if factor > 1:
            fine = self._cast(origin, self._rays(pose, factor), index)
            colour = self.textures.shade(fine, self.light)
            colour = colour.reshape(cfg.height, factor, cfg.width, factor, 3).mean(axis=(1, 3))
        else:
            colour = self.textures.shade(hits, self.light).reshape(cfg.height, cfg.width, 3)
        # Display gamma so the image looks like a camera's.
        rgb = np.clip(np.round(255.0 * colour ** (1 / 2.2)), 0, 255).astype(np.uint8)
        return RenderedFrame(cfg.stamp_ns(index), rgb, depth, mask, pose)

    def frames(self) -> Iterator[RenderedFrame]:
        for index in range(self.config.num_frames):
            yield self.render(index)


def base_from_camera() -> np.ndarray:
    """[4,4] camera mount: optical frame CAMERA_HEIGHT_M above base_link, pitched down.

    base_link follows REP-103 (x forward, y left, z up); the optical frame has x right, y down,
    z forward. The synthetic camera bobs and nods along its arc, so base_link (rigidly under
    the camera) rocks with it like a robot on an uneven floor.
    """
    level = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    c, s = np.cos(CAMERA_PITCH_RAD), np.sin(CAMERA_PITCH_RAD)
    pitch_down = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    mount = np.eye(4)
    mount[:3, :3] = pitch_down @ level
    mount[2, 3] = CAMERA_HEIGHT_M
    return mount


@dataclass(frozen=True)
class SensorConfig:
    """Simulated metric sensors of the synthetic scene.

    Attributes:
        depth_noise_at_1m: depth 1-sigma at 1 m; it grows with the square of the distance
            (structured-light / stereo cameras), so 0.004 gives 1.6 cm at 2 m.
        depth_holes: fraction of pixels randomly invalid (0), besides depth edges and range.
        depth_max_range_m: farther returns are invalid.
        odometry_noise: relative 1-sigma on every odometry increment's translation.
        odometry_per_frame: odometry samples per camera frame.
        seed: noise seed (independent of the scene's seed).
        chained_tf: write TF as a robot's tree instead of one edge per transform:
            ``odom -> base_footprint`` on ``/tf`` with ``base_footprint -> base_link`` and
            ``base_link -> camera_link -> camera_optical_frame`` on ``/tf_static``. The
            composed ``odom -> base_link`` and ``base_link -> camera_optical_frame`` are the
            one-edge bag's (same noise), so both bags must give the same metric scale.

    """

    depth_noise_at_1m: float = 0.004
    depth_holes: float = 0.05
    depth_max_range_m: float = 6.0
    odometry_noise: float = 0.02
    odometry_per_frame: int = 5
    seed: int = 1
    chained_tf: bool = False


def sensor_depth_mm(depth_m: np.ndarray, rng: np.random.Generator,
                    config: SensorConfig) -> np.ndarray:
    """[H,W] uint16 millimetres (16UC1, 0 = invalid) of an aligned RGB-D depth image.

    Noise grows with distance; invalid: random holes, depth edges (mixed pixels) and returns
    beyond the maximum range. Inverse depth is affine in pixel coordinates on a plane, so its
    second difference is ~0 on slanted surfaces and large only where surfaces are cut.
    """
    depth = depth_m.astype(np.float64)
    sigma = config.depth_noise_at_1m * depth ** 2
    noisy = depth + sigma * rng.standard_normal(depth.shape)
    inverse = np.pad(1.0 / np.maximum(depth, 1e-6), 1, mode='edge')
    curve_x = np.abs(inverse[1:-1, :-2] - 2 * inverse[1:-1, 1:-1] + inverse[1:-1, 2:])
    curve_y = np.abs(inverse[:-2, 1:-1] - 2 * inverse[1:-1, 1:-1] + inverse[2:, 1:-1])
    edges = np.maximum(curve_x, curve_y) * depth > 0.05
    invalid = ((depth_m <= 0) | (noisy > config.depth_max_range_m) | edges
               | (rng.random(depth_m.shape) < config.depth_holes))
    millimetres = np.clip(np.round(noisy * 1000.0), 0, 65535).astype(np.uint16)
    millimetres[invalid] = 0
    return millimetres


def footprint_from_base() -> np.ndarray:
    """[4,4] base_footprint -> base_link of the chained tree (base_link above the floor)."""
    pose = np.eye(4)
    pose[2, 3] = FOOTPRINT_TO_BASE_Z_M
    return pose


def link_from_optical() -> np.ndarray:
    """[4,4] camera_link (x forward, y left, z up) -> camera_optical_frame (x right, y down)."""
    pose = np.eye(4)
    pose[:3, :3] = [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]
    pose[:3, 3] = CAMERA_LINK_TO_OPTICAL_M
    return pose


def _mount_transforms(stamp: int, chained: bool) -> list[Any]:
    """Return the static TF of the camera mount (and base_footprint -> base_link if chained)."""
    if not chained:
        return [m.transform_stamped_msg(base_from_camera(), stamp, BASE_FRAME, CAMERA_FRAME)]
    base_from_link = base_from_camera() @ np.linalg.inv(link_from_optical())
    return [m.transform_stamped_msg(footprint_from_base(), stamp, FOOTPRINT_FRAME, BASE_FRAME),
            m.transform_stamped_msg(base_from_link, stamp, BASE_FRAME, CAMERA_LINK_FRAME),
            m.transform_stamped_msg(link_from_optical(), stamp, CAMERA_LINK_FRAME,
                                    CAMERA_FRAME)]


def _odometry_transform(odom_from_base: np.ndarray, stamp: int, chained: bool) -> Any:
    """``odom -> base_link``, or ``odom -> base_footprint`` of the same base_link pose."""
    if not chained:
        return m.transform_stamped_msg(odom_from_base, stamp, ODOM_FRAME, BASE_FRAME)
    odom_from_footprint = odom_from_base @ np.linalg.inv(footprint_from_base())
    return m.transform_stamped_msg(odom_from_footprint, stamp, ODOM_FRAME, FOOTPRINT_FRAME)


class SyntheticOdometry:
    """Noisy ``odom -> base_link``: true base motion increments, each scaled by 1 + noise."""

    def __init__(self, scene: 'SyntheticScene', config: SensorConfig) -> None:
        self.scene = scene
        self.config = config
        self.rng = np.random.default_rng((config.seed, 7))
        self._camera_from_base = np.linalg.inv(base_from_camera())
        self._previous: np.ndarray | None = None
        self._estimate: np.ndarray | None = None

    def true_pose(self, index: float) -> np.ndarray:
        """World-from-base_link [4,4] at a (fractional) frame index (world = odom origin)."""
        return self.scene.world_from_camera(index) @ self._camera_from_base

    def next(self, index: float) -> np.ndarray:
        """Return the odometry pose at a fractional frame index (call in increasing order)."""
        truth = self.true_pose(index)
        if self._previous is None:
            self._estimate = truth.copy()
        else:
            delta = np.linalg.inv(self._previous) @ truth
            delta[:3, 3] *= 1.0 + self.config.odometry_noise * self.rng.standard_normal()
            self._estimate = self._estimate @ delta
        self._previous = truth
        return self._estimate.copy()


def _write_metric_topics(bag: BagWriter, scene: 'SyntheticScene', frame: RenderedFrame,
                         index: int, odometry: SyntheticOdometry, sensors: SensorConfig) -> None:
    """Depth image, the frame's odometry samples and (first frame) the static camera mount."""
    cfg = scene.config
    stamp = frame.stamp_ns
    if index == 0:
        bag.write(METRIC_TOPICS['tf_static'], m.TF_MESSAGE,
                  m.tf_message(_mount_transforms(stamp, sensors.chained_tf)), stamp)
    rng = np.random.default_rng((sensors.seed, index))
    depth = sensor_depth_mm(frame.depth, rng, sensors)
    bag.write(METRIC_TOPICS['depth'], m.IMAGE, m.image_msg(depth, stamp, CAMERA_FRAME, '16UC1'),
              stamp)
    steps = sensors.odometry_per_frame
    for step in range(steps):
        fraction = index + step / steps
        odom_stamp = cfg.start_ns + int(round(fraction * 1e9 / cfg.fps))
        pose = odometry.next(fraction)
        transform = _odometry_transform(pose, odom_stamp, sensors.chained_tf)
        bag.write(METRIC_TOPICS['tf'], m.TF_MESSAGE, m.tf_message([transform]), odom_stamp)


def write_synthetic_bag(path: str | Path, config: SceneConfig | None = None,
                        storage: Storage = 'mcap',
                        progress: Callable[[int, int], None] | None = None,
                        sensors: SensorConfig | None = None) -> Path:
    """Render the scene into a new rosbag2 directory.

    Topics (all stamped with the image stamp): ``/camera/image_raw`` (Image rgb8),
    ``/camera/camera_info``, ``/ground_truth/pose`` (PoseStamped, world-from-optical-frame in
    ``world``), ``/ground_truth/depth`` (Image 32FC1, metres) and ``/ground_truth/dynamic_mask``
    (Image mono8, 255 = moving object) and ``/ground_truth/objects`` (ObstacleArray in
    ``world``, see :func:`object_truth_msg`). Images use frame id ``camera_optical_frame``.

    With ``sensors`` (the demo and this module's CLI pass them) also the metric-scale inputs:
    ``/camera/aligned_depth_to_color/image_raw`` (16UC1 mm, noisy, with holes),
    ``/tf`` ``odom -> base_link`` (noisy odometry, ``odometry_per_frame`` samples per frame)
    and ``/tf_static`` ``base_link -> camera_optical_frame`` (camera height
    ``CAMERA_HEIGHT_M``); with ``sensors.chained_tf`` the same poses as a robot's chained tree
    (see :class:`SensorConfig`).

    Returns:
        The bag directory.

    """
    scene = SyntheticScene(config)
    cfg = scene.config
    path = Path(path)
    k = cfg.intrinsics()
    odometry = SyntheticOdometry(scene, sensors) if sensors is not None else None
    with BagWriter(path, storage) as bag:
        for index, frame in enumerate(scene.frames()):
            stamp = frame.stamp_ns
            bag.write(TOPICS['image'], m.IMAGE,
                      m.image_msg(frame.rgb, stamp, CAMERA_FRAME, 'rgb8'), stamp)
            bag.write(TOPICS['camera_info'], m.CAMERA_INFO,
                      m.camera_info_msg(k, (cfg.height, cfg.width), stamp, CAMERA_FRAME), stamp)
            bag.write(TOPICS['pose'], m.POSE_STAMPED,
                      m.pose_stamped_msg(frame.world_from_camera, stamp, WORLD_FRAME), stamp)
            bag.write(TOPICS['depth'], m.IMAGE,
                      m.image_msg(frame.depth, stamp, CAMERA_FRAME, '32FC1'), stamp)
            bag.write(TOPICS['mask'], m.IMAGE,
                      m.image_msg(frame.dynamic_mask, stamp, CAMERA_FRAME, 'mono8'), stamp)
            bag.write(TOPICS['objects'], pm.OBSTACLE_ARRAY,
                      object_truth_msg(scene, index, (cfg.height, cfg.width)), stamp)
            if odometry is not None:
                _write_metric_topics(bag, scene, frame, index, odometry, sensors)
            if progress is not None:
                progress(index + 1, cfg.num_frames)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m vggt4d_ros.replay.synthetic OUT_BAG [--large] [--chained-tf] [...]``."""
    import argparse

    parser = argparse.ArgumentParser(description='Write the synthetic demo bag.')
    parser.add_argument('bag', type=Path, help='output rosbag2 directory (must not exist)')
    parser.add_argument('--large', action='store_true', help='96 frames at 320x240')
    parser.add_argument('--frames', type=int, default=None)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--no-metric-sensors', action='store_true',
                        help='leave out the aligned depth, odometry TF and camera mount topics')
    parser.add_argument('--chained-tf', action='store_true',
                        help='write TF as a robot tree: odom -> base_footprint -> base_link -> '
                             'camera_link -> camera_optical_frame (same poses)')
    parser.add_argument('--rig', choices=('stereo', 'front_side'), default=None,
                        help='a two-camera rig bag instead (per-camera topics and truth, '
                             'replay with --image-topics; vggt4d_ros.replay.synthetic_rig)')
    args = parser.parse_args(argv)
    config = SceneConfig.large(args.seed) if args.large else SceneConfig(seed=args.seed)
    if args.frames:
        config = replace(config, num_frames=args.frames)
    if args.rig:
        from vggt4d_ros.replay.synthetic_rig import write_synthetic_rig_bag

        write_synthetic_rig_bag(args.bag, config, args.rig, args.storage)
        print(f'wrote a {args.rig} rig, {config.num_frames} steps, to {args.bag}',
              file=sys.stderr)
        return 0
    sensors = None if args.no_metric_sensors else SensorConfig(chained_tf=args.chained_tf)
    write_synthetic_bag(args.bag, config, args.storage, sensors=sensors)
    print(f'wrote {config.num_frames} frames to {args.bag}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())


# -- ground truth of the moving objects (ids, centres, velocities) ------------------------------

#: Ground-truth object ids: 1 the ball, 2 the crate (0 = no moving object).
OBJECT_IDS = {'ball': 1, 'crate': 2}
_OBJECT_MATERIALS = {5: OBJECT_IDS['ball'], 6: OBJECT_IDS['crate']}


@dataclass
class ObjectTruth:
    """One moving object at one time (world frame, metres, m/s).

    Attributes:
        object_id: ``OBJECT_IDS`` value.
        name: 'ball' or 'crate'.
        centre: [3] centre.
        velocity: [3] velocity of the centre (analytic derivative of the motion).
        half_extents: [3] half extents in the object's own frame (the ball: its radius).

    """

    object_id: int
    name: str
    centre: np.ndarray
    velocity: np.ndarray
    half_extents: np.ndarray


def object_truth(scene: SyntheticScene, index: float) -> list[ObjectTruth]:
    """Ground truth of the ball and the crate at frame ``index`` (fractional allowed)."""
    t = scene.time_of(index)
    ball_angle = scene.phase[0] + 1.3 * t
    ball_velocity = 0.9 * 1.3 * np.array([-np.sin(ball_angle), np.cos(ball_angle), 0.0])
    crate_velocity = np.array([0.7 * 1.7 * np.cos(scene.phase[1] + 1.7 * t), 0.0, 0.0])
    return [
        ObjectTruth(OBJECT_IDS['ball'], 'ball', scene.ball_state(index)[0], ball_velocity,
                    np.full(3, 0.35)),
        ObjectTruth(OBJECT_IDS['crate'], 'crate', scene.crate_state(index)[0], crate_velocity,
                    np.array([0.35, 0.22, 0.3])),
    ]


def object_id_image(scene: SyntheticScene, index: float, intrinsics: np.ndarray,
                    hw: tuple[int, int]) -> np.ndarray:
    """[h,w] uint8 ground-truth object id of the first hit per pixel (0 = static scene).

    Rendered with any pinhole ``intrinsics`` and size ``hw`` from the scene's camera pose.
    """
    pose = scene.world_from_camera(index)
    hits = scene._cast(pose[:3, 3], _camera_rays(pose, intrinsics, hw), index)
    ids = np.zeros(len(hits.material), np.uint8)
    for material, object_id in _OBJECT_MATERIALS.items():
        ids[hits.material == material] = object_id
    return ids.reshape(hw)


def object_pixels_unoccluded(scene: SyntheticScene, index: float, intrinsics: np.ndarray,
                             hw: tuple[int, int]) -> dict[int, int]:
    """Pixels each moving object would cover with nothing in front of it: {object id: count}.

    With :func:`object_id_image` this gives the visible fraction of an object (occlusion).
    """
    pose = scene.world_from_camera(index)
    origin, dirs = pose[:3, 3], _camera_rays(pose, intrinsics, hw)
    centre, rotation = scene.ball_state(index)
    ball = _sphere_hits(origin, dirs, centre, 0.35, rotation)[0] < _FAR
    centre, rotation = scene.crate_state(index)
    crate = _box_hits(origin, dirs, centre, np.array([0.35, 0.22, 0.3]), rotation,
                      inside=False)[0] < _FAR
    return {OBJECT_IDS['ball']: int(ball.sum()), OBJECT_IDS['crate']: int(crate.sum())}


def object_truth_msg(scene: SyntheticScene, index: int, hw: tuple[int, int]) -> object:
    """Build the ObstacleArray of the moving objects seen in frame ``index`` (world, metres).

    Per object: uuid = its id (``planner_messages.object_uuid``), score = visible fraction
    (visible pixels / pixels it would cover with nothing in front and no image border: the
    count is taken on an image grown by half its size on every side), centre, velocity, size.
    """
    k = scene.config.intrinsics()
    ids = object_id_image(scene, index, k, hw)
    grown = k.copy()
    grown[:2, 2] += np.array(hw[::-1]) / 2
    covered = object_pixels_unoccluded(scene, index, grown, (2 * hw[0], 2 * hw[1]))
    seen = [(obj, int((ids == obj.object_id).sum())) for obj in object_truth(scene, index)]
    seen = [(obj, count / max(covered[obj.object_id], 1)) for obj, count in seen if count]
    rows = [obj for obj, _ in seen]
    return pm.obstacle_array_msg(
        [pm.object_uuid(obj.object_id) for obj in rows], np.array([f for _, f in seen]),
        np.array([o.centre for o in rows]).reshape(-1, 3),
        np.array([o.velocity for o in rows]).reshape(-1, 3),
        np.array([2 * o.half_extents for o in rows]).reshape(-1, 3),
        np.zeros(len(rows)), np.zeros(len(rows)), scene.config.stamp_ns(index), WORLD_FRAME)


def _camera_rays(pose: np.ndarray, intrinsics: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """World ray directions [h*w,3] with camera-frame z = 1, integer pixel convention."""
    height, width = hw
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    cam = np.stack([(u - intrinsics[0, 2]) / intrinsics[0, 0],
                    (v - intrinsics[1, 2]) / intrinsics[1, 1], np.ones_like(u)], axis=-1)
    return cam.reshape(-1, 3) @ pose[:3, :3].T


class SyntheticOracleView:
    """The synthetic scene as an oracle-backend scene (``mapping.testing.OracleBackend``).

    Gives ``camera_pose(t)`` and ``render(t, intrinsics, hw) -> (depth, dynamic, rgb)`` at
    scene time ``t`` (seconds), so the oracle backend can return the synthetic scene's ground
    truth per window, with its per-window Sim(3) noise.
    """

    def __init__(self, scene: SyntheticScene) -> None:
        self.scene = scene

    def index_of(self, t: float) -> float:
        return t * self.scene.config.fps

    def camera_pose(self, t: float) -> np.ndarray:
        return self.scene.world_from_camera(self.index_of(t))

    def render(self, t: float, intrinsics: np.ndarray, hw: tuple[int, int],
               pose: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Depth [h,w] float64 z-depth, dynamic mask [h,w] bool, rgb [h,w,3] uint8.

        ``pose``: world-from-camera of the rendering camera (None: the path camera at ``t``).
        """
        index = self.index_of(t)
        pose = self.scene.world_from_camera(index) if pose is None else pose
        hits = self.scene._cast(pose[:3, 3], _camera_rays(pose, intrinsics, hw), index)
        colour = self.scene.textures.shade(hits, self.scene.light).reshape(hw + (3,))
        rgb = np.clip(np.round(255.0 * colour ** (1 / 2.2)), 0, 255).astype(np.uint8)
        return hits.t.reshape(hw), hits.dynamic.reshape(hw), rgb


def synthetic_oracle_backend(config: SceneConfig, seed: int = 0) -> Any:
    """``mapping.testing.OracleBackend`` of this scene with the camera's own intrinsics.

    Network size = camera size and the same focal length and principal point, so a network
    pixel is the camera pixel of the same ray (depth images line up). Per window it returns
    the scene's ground truth as VGGT would: own frame, normalised, a random scale in [0.5, 2].
    """
    from vggt4d_ros.mapping.testing import OracleBackend

    focal_factor = 0.5 / np.tan(np.radians(config.horizontal_fov_deg) / 2.0)
    return OracleBackend(scene=SyntheticOracleView(SyntheticScene(config)),
                         network_hw=(config.height, config.width), seed=seed,
                         start_ns=config.start_ns, focal_factor=focal_factor)
