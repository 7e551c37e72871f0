# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Analytic oracle scene and backend for mapping tests and benchmarks (no network).

The scene is an axis-aligned box room (a side length may be infinite: a corridor) with a
checker texture, plus one moving sphere. World axes follow OpenCV (y down). A camera moves on
an analytic path; rays are cast in closed form, so depth, dynamic masks and poses are exact.

``OracleBackend.run(frames, stamps_ns)`` ignores the image content and returns the ground truth
for those stamps as a ``WindowResult`` the way VGGT would express it: in the window's frame-0
camera, with a random per-window scale (VGGT normalises each window on its own), optional
random rigid offset, depth and pose noise, and low-confidence outlier pixels.

Rig mode (``rig``: each camera's pose in the path frame): the scene's camera path is the rig's
body, camera v sits at ``camera_pose(t) @ rig[v]``, and ``run(frames, stamps_ns, layout)``
renders frame ``t * N + v`` from camera v (step-major, as the engine sends rig windows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import ResizeCrop
from vggt4d_ros.geometry.rotation import random_rotation
from vggt4d_ros.geometry.rotation import rotation_from_axis_angle
from vggt4d_ros.geometry.sim3 import Sim3
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.motion.rig import RigLayout


@dataclass
class OracleScene:
    """Room, moving sphere and camera path, all analytic functions of time (seconds).

    Attributes:
        room_half: half extents of the room along x, y, z (inf = open, e.g. a corridor).
        sphere_radius: radius of the moving sphere.
        sphere_orbit: radius of the sphere's horizontal circle around the room centre.
        sphere_speed: angular speed of the sphere (rad/s).
        camera_orbit: radius of the camera's circle (0 with ``forward_speed`` for corridors).
        camera_speed: angular speed of the camera on its circle (rad/s).
        yaw_rate: camera heading change (rad/s) on top of its motion.
        forward_speed: camera speed along +z (corridor scenes).
        checker: size of the texture checker squares.
        camera_height_offset: camera path's mean y (y points down: 1.0 puts the camera 1 m
            lower, 0.5 m above the default floor: a ground robot's camera).
        bob_amplitude: vertical oscillation of the camera (0 for a ground robot).
        pitch_amplitude: camera nod in radians (0 for a ground robot on a flat floor).

    """

    room_half: tuple[float, float, float] = (4.0, 1.5, 4.0)
    sphere_radius: float = 0.4
    sphere_orbit: float = 2.4
    sphere_speed: float = 0.9
    camera_orbit: float = 1.0
    camera_speed: float = 0.25
    yaw_rate: float = 0.35
    forward_speed: float = 0.0
    checker: float = 0.35
    camera_height_offset: float = 0.0
    bob_amplitude: float = 0.15
    pitch_amplitude: float = 0.1

    def camera_pose(self, t: float) -> np.ndarray:
        """World-from-camera [4,4] at time ``t``."""
        angle = self.camera_speed * t
        centre = np.array([
            self.camera_orbit * np.cos(angle),
            self.camera_height_offset + self.bob_amplitude * np.sin(0.7 * t),
            self.camera_orbit * np.sin(angle) + self.forward_speed * t,
        ])
        yaw = self.yaw_rate * t
        pitch = self.pitch_amplitude * np.sin(0.5 * t)
        cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
        # Heading about the (downward) y axis, then a nod about the camera's x axis.
        rot = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]]) @ np.array(
            [[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]]
        )
        pose = np.eye(4)
        pose[:3, :3] = rot
        pose[:3, 3] = centre
        return pose

    def sphere_centre(self, t: float) -> np.ndarray:
        angle = self.sphere_speed * t + 1.0
        offset = np.array([0.0, 0.0, self.forward_speed * t])
        orbit = self.sphere_orbit
        return np.array([orbit * np.cos(angle), 0.3, orbit * np.sin(angle)]) + offset

    def render(
        self, t: float, intrinsics: np.ndarray, hw: tuple[int, int],
        pose: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ray-cast one view.

        Args:
            t: time in seconds.
            intrinsics: [3,3] pinhole, integer pixel-index convention.
            hw: (h, w).
            pose: world-from-camera [4,4] (None: the camera path at ``t``).

        Returns:
            depth [h,w] float64 z-depth (0 where a ray hits nothing), dynamic mask [h,w] bool,
            rgb [h,w,3] uint8.

        """
        height, width = hw
        pose = self.camera_pose(t) if pose is None else pose
        v, u = np.mgrid[0:height, 0:width].astype(np.float64)
        rays_cam = np.stack(
            [
                (u - intrinsics[0, 2]) / intrinsics[0, 0],
                (v - intrinsics[1, 2]) / intrinsics[1, 1],
                np.ones_like(u),
            ],
            axis=-1,
        )
        rays = rays_cam @ pose[:3, :3].T
        origin = pose[:3, 3]
        half = np.asarray(self.room_half, dtype=np.float64)
        with np.errstate(divide='ignore', invalid='ignore'):
            wall = (np.sign(rays) * half - origin) / rays
        wall = np.where(np.isfinite(wall) & (wall > 0), wall, np.inf)
        t_room = wall.min(axis=-1)
        t_ball = self._sphere_hit(rays, origin - self.sphere_centre(t))
        dynamic = t_ball < t_room
        depth = np.where(dynamic, t_ball, t_room)
        hit = origin + rays * np.where(np.isfinite(depth), depth, 0.0)[..., None]
        rgb = self._texture(hit, dynamic)
        depth = np.where(np.isfinite(depth), depth, 0.0)
        return depth, dynamic, rgb

    def _sphere_hit(self, rays: np.ndarray, rel: np.ndarray) -> np.ndarray:
        a = np.einsum('hwi,hwi->hw', rays, rays)
        b = 2.0 * rays @ rel
        c = rel @ rel - self.sphere_radius**2
        disc = b * b - 4 * a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        near = (-b - root) / (2 * a)
        return np.where((disc > 0) & (near > 0), near, np.inf)

    def _texture(self, hit: np.ndarray, dynamic: np.ndarray) -> np.ndarray:
        cells = np.floor(hit / self.checker).astype(np.int64).sum(axis=-1) % 2
        base = 0.5 + 0.5 * np.sin(hit * np.array([0.9, 1.7, 1.3]))
        rgb = base * (0.45 + 0.55 * cells[..., None])
        rgb[dynamic] = (0.9, 0.1, 0.1)
        return (rgb * 255).astype(np.uint8)


@dataclass
class OracleNoise:
    """What the oracle backend does to the ground truth of each window.

    Attributes:
        normalise: scale each window like VGGT's training normalisation (mean distance of the
            valid points from the frame-0 camera = 1) before the random factor.
        scale_range: per-window random scale factor, drawn log-uniformly in this range.
        random_rigid: also move the window's world by a random rigid transform (frame 0 is
            then NOT at identity; the mapper must not rely on it).
        depth_noise: relative Gaussian depth noise.
        rotation_noise_rad: per-frame pose rotation noise (frames > 0).
        translation_noise: per-frame pose translation noise (scene units, before scaling).
        outlier_fraction: pixels given wrong depth and low confidence.

    """

    normalise: bool = True
    scale_range: tuple[float, float] = (0.5, 2.0)
    random_rigid: bool = False
    depth_noise: float = 0.003
    rotation_noise_rad: float = 0.001
    translation_noise: float = 0.003
    outlier_fraction: float = 0.02


class OracleBackend:
    """Stand-in for the VGGT4D pipeline that returns the scene's ground truth per window.

    Args:
        scene: the scene to render.
        network_hw: (h, w) of the WindowResult; camera images must have this size too.
        noise: per-window perturbations.
        seed: random seed (same seed, same results).
        start_ns: stamp that corresponds to scene time 0.
        focal_factor: focal length as a multiple of the width.
        rig: [N,4,4] camera poses in the camera path's frame (None: one camera on the path).

    """

    def __init__(
        self,
        scene: OracleScene | None = None,
        network_hw: tuple[int, int] = (28, 42),
        noise: OracleNoise | None = None,
        seed: int = 0,
        start_ns: int = 0,
        focal_factor: float = 0.7,
        rig: np.ndarray | None = None,
    ) -> None:
        self.scene = scene or OracleScene()
        self.rig = np.eye(4)[None] if rig is None else np.asarray(rig, dtype=np.float64)
        self.network_hw = network_hw
        self.noise = noise or OracleNoise()
        self.rng = np.random.default_rng(seed)
        self.start_ns = start_ns
        height, width = network_hw
        focal = focal_factor * width
        self.intrinsics = np.array(
            [[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]]
        )
        self.calls = 0
        self.corrupt_calls: set[int] = set()
        self.window_scales: list[float] = []
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def time_of(self, stamp_ns: int) -> float:
        return (int(stamp_ns) - self.start_ns) * 1e-9

    def camera_pose(self, stamp_ns: int, view: int = 0) -> np.ndarray:
        """World-from-camera [4,4] of camera ``view`` at a stamp."""
        return self.scene.camera_pose(self.time_of(stamp_ns)) @ self.rig[view]

    def camera_image(self, stamp_ns: int, view: int = 0) -> np.ndarray:
        """Camera image (HxWx3 uint8, network size) of the scene at a stamp."""
        return self._render(stamp_ns, view)[2]

    def true_mask(self, stamp_ns: int, view: int = 0) -> np.ndarray:
        """Return the true dynamic mask [h,w] bool of camera ``view`` at a stamp."""
        return self._render(stamp_ns, view)[1]

    def _render(self, stamp_ns: int, view: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render with a cache: overlap frames are asked for twice; the cache keeps 32 views."""
        key = (int(view), int(stamp_ns))
        if key not in self._cache:
            if len(self._cache) >= 32:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self.scene.render(self.time_of(stamp_ns), self.intrinsics,
                                                 self.network_hw, self.camera_pose(*key[::-1]))
        return self._cache[key]

    def plan(self) -> ResizeCrop:
        hw = tuple(self.network_hw)
        return ResizeCrop(hw, hw, hw, (0, 0), 'crop')

    def run(self, frames: list[np.ndarray], stamps_ns: list[int],
            layout: RigLayout | None = None) -> WindowResult:
        """Ground truth for the window's stamps (and rig views), perturbed as ``noise`` says."""
        del frames  # the oracle knows the scene
        layout = layout or RigLayout.single(len(stamps_ns))
        if layout.num_views != len(self.rig):
            raise ValueError(f'a {len(self.rig)}-camera oracle got a {layout} window')
        call = self.calls
        self.calls += 1
        noise = self.noise
        rng = self.rng
        views = layout.view_of_frame
        renders = [self._render(stamp, view) for stamp, view in zip(stamps_ns, views)]
        depth = np.stack([r[0] for r in renders])
        dynamic = np.stack([r[1] for r in renders])
        rgb = np.stack([r[2] for r in renders])
        low, high = noise.scale_range
        scale = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        if noise.normalise:
            scale /= _mean_point_distance(depth, self.intrinsics)
        self.window_scales.append(scale)
        world_from_first = np.linalg.inv(self.camera_pose(stamps_ns[0], views[0]))
        offset = Sim3(scale)
        if noise.random_rigid:
            offset = Sim3(scale, random_rotation(rng), rng.normal(size=3))
        extrinsics = []
        for index, (stamp, view) in enumerate(zip(stamps_ns, views)):
            cam_to_first = world_from_first @ self.camera_pose(stamp, view)
            if index > 0:
                cam_to_first = _perturb(cam_to_first, rng, noise)
            cam_to_window = offset.transform_poses(cam_to_first)
            extrinsics.append(np.linalg.inv(cam_to_window)[:3])
        valid = depth > 0
        depth = depth * scale * (1.0 + noise.depth_noise * rng.standard_normal(depth.shape))
        conf = rng.uniform(3.0, 10.0, size=depth.shape)
        outliers = rng.random(depth.shape) < noise.outlier_fraction
        depth = np.where(outliers, depth * rng.uniform(0.3, 3.0, size=depth.shape), depth)
        conf = np.where(outliers, rng.uniform(1.0, 1.5, size=depth.shape), conf)
        depth = np.where(valid, depth, 0.0)
        conf = np.where(valid, conf, 1.0)
        if call in self.corrupt_calls:
            depth = rng.uniform(0.2, 5.0, size=depth.shape) * scale
            conf = np.full(depth.shape, 9.0)
        extrinsics = np.stack(extrinsics)
        plan = self.plan()
        return _to_result(stamps_ns, rgb, depth, conf, self.intrinsics, extrinsics, dynamic, plan,
                          layout)


def _mean_point_distance(depth: np.ndarray, intrinsics: np.ndarray) -> float:
    """Mean camera distance of the valid pixels' points (frame-0 distance approximated)."""
    valid = depth > 0
    if not valid.any():
        return 1.0
    height, width = depth.shape[1:]
    v, u = np.mgrid[0:height, 0:width]
    ray = np.sqrt(((u - intrinsics[0, 2]) / intrinsics[0, 0]) ** 2
                  + ((v - intrinsics[1, 2]) / intrinsics[1, 1]) ** 2 + 1.0)
    return float((depth * ray)[valid].mean())


def _perturb(pose: np.ndarray, rng: np.random.Generator, noise: OracleNoise) -> np.ndarray:
    out = pose.copy()
    turn = rotation_from_axis_angle(rng.normal(size=3) * noise.rotation_noise_rad)
    out[:3, :3] = turn @ out[:3, :3]
    out[:3, 3] += rng.normal(size=3) * noise.translation_noise
    return out


def _to_result(
    stamps_ns: list[int],
    rgb: np.ndarray,
    depth: np.ndarray,
    conf: np.ndarray,
    intrinsics: np.ndarray,
    extrinsics: np.ndarray,
    dynamic: np.ndarray,
    plan: ResizeCrop,
    layout: RigLayout | None = None,
) -> WindowResult:
    count = len(stamps_ns)
    height, width = plan.network_hw
    masks = torch.from_numpy(dynamic)
    return WindowResult(
        stamps_ns=[int(s) for s in stamps_ns],
        images=torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0,
        depth=torch.from_numpy(depth.astype(np.float32)),
        depth_conf=torch.from_numpy(conf.astype(np.float32)),
        intrinsics=torch.from_numpy(np.repeat(intrinsics[None], count, 0).astype(np.float32)),
        extrinsics=torch.from_numpy(extrinsics.astype(np.float32)),
        saliency=torch.zeros(count, max(1, height // 14), max(1, width // 14)),
        coarse_masks=masks.clone(),
        refined_masks=masks,
        transform=plan,
        layout=layout,
    )


def rig_mount(x: float = 0.0, yaw_deg: float = 0.0) -> np.ndarray:
    """Camera pose in the rig body for ``OracleBackend(rig=...)`` (OpenCV axes).

    Args:
        x: offset to the right (map units).
        yaw_deg: rotation about the body's y axis (down): negative looks left.

    Returns:
        [4,4] body-from-camera pose.

    """
    yaw = np.radians(yaw_deg)
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]
    pose[0, 3] = x
    return pose


def wall_distance(points: np.ndarray, room_half: tuple[float, float, float]) -> np.ndarray:
    """Distance [N] of scene-frame points [N,3] to the nearest wall of the room."""
    half = np.asarray(room_half, dtype=np.float64)
    gaps = np.abs(half - np.abs(points))
    return np.where(np.isfinite(gaps), gaps, np.inf).min(axis=1)
