# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Simulated metric sensors for the mapping oracle (tests and the benchmark; no ROS).

* :func:`sensor_depth`: an aligned depth image as an RGB-D camera driver publishes it: 16UC1
  millimetres at camera resolution, relative Gaussian noise (absolute noise grows with
  distance), random holes (0), nothing beyond the maximum range.
* :func:`odometry_buffer`: ``odom -> base_link`` at a fixed rate, integrated from the true
  motion with multiplicative noise on every increment (wheel odometry drifts).
* :data:`GROUND_CAMERA`: base_link -> camera extrinsic of a level camera 0.5 m above the floor,
  matching :func:`ground_robot_scene` (the oracle's floor is at y = +1.5, y down).
"""

from __future__ import annotations

import numpy as np

from vggt4d_ros.geometry.image_transform import intrinsics_to_camera
from vggt4d_ros.geometry.image_transform import ResizeCrop
from vggt4d_ros.geometry.rotation import rotation_from_axis_angle
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.mapping.testing import OracleScene
from vggt4d_ros.runtime.scale.camera_height import LEVEL_CAMERA
from vggt4d_ros.runtime.scale.config import OdometryScaleConfig
from vggt4d_ros.runtime.scale.depth import DepthImage
from vggt4d_ros.runtime.scale.odometry import OdometryBuffer

GROUND_CAMERA_HEIGHT_M = 0.5
GROUND_CAMERA = LEVEL_CAMERA.copy()
GROUND_CAMERA[2, 3] = GROUND_CAMERA_HEIGHT_M


def ground_robot_scene() -> OracleScene:
    """Oracle room with a camera 0.5 m above the floor, level, at a constant height."""
    return OracleScene(camera_height_offset=1.5 - GROUND_CAMERA_HEIGHT_M, bob_amplitude=0.0,
                       pitch_amplitude=0.0)


def sensor_depth(backend: OracleBackend, stamp_ns: int, plan: ResizeCrop,
                 rng: np.random.Generator, noise: float = 0.05, holes: float = 0.2,
                 max_range_m: float = 6.0) -> DepthImage:
    """Aligned 16UC1 depth (mm) of the oracle scene at camera resolution ``plan.camera_hw``.

    Args:
        backend: the oracle (its intrinsics are in network pixels of ``plan``).
        stamp_ns: image stamp.
        plan: camera <-> network mapping of the colour camera.
        rng: noise source.
        noise: relative 1-sigma depth noise (absolute noise grows with distance).
        holes: fraction of pixels set to 0 (invalid).
        max_range_m: farther returns are 0.

    """
    k_cam = intrinsics_to_camera(backend.intrinsics, plan)
    depth, _, _ = backend.scene.render(backend.time_of(stamp_ns), k_cam, plan.camera_hw)
    noisy = depth * (1.0 + noise * rng.standard_normal(depth.shape))
    invalid = (depth <= 0) | (noisy > max_range_m) | (rng.random(depth.shape) < holes)
    millimetres = np.clip(np.round(noisy * 1000.0), 0, 65535).astype(np.uint16)
    millimetres[invalid] = 0
    return DepthImage(int(stamp_ns), millimetres, '16UC1')


def odometry_buffer(scene: OracleScene, start_ns: int, end_ns: int, rng: np.random.Generator,
                    base_from_camera: np.ndarray = GROUND_CAMERA, rate_hz: float = 50.0,
                    noise: float = 0.02, rotation_noise_rad: float = 0.0005,
                    offset_ns: int = 3_000_000,
                    config: OdometryScaleConfig | None = None) -> OdometryBuffer:
    """Noisy ``odom -> base_link`` samples from ``start_ns`` to ``end_ns``.

    Every increment between samples has its translation scaled by ``1 + noise * N(0,1)`` and a
    small random rotation; the poses are the increments integrated (so the error drifts).
    Samples are offset from the image stamps by ``offset_ns`` to exercise interpolation.
    """
    camera_from_base = np.linalg.inv(base_from_camera)
    step = int(1e9 / rate_hz)
    stamps = range(start_ns - offset_ns, end_ns + step, step)
    buffer = OdometryBuffer(config)
    previous_true = None
    estimate = None
    for stamp in stamps:
        truth = scene.camera_pose(stamp * 1e-9) @ camera_from_base
        if previous_true is None:
            estimate = truth.copy()
        else:
            delta = np.linalg.inv(previous_true) @ truth
            delta[:3, 3] *= 1.0 + noise * rng.standard_normal()
            turn = rotation_from_axis_angle(rng.normal(size=3) * rotation_noise_rad)
            delta[:3, :3] = turn @ delta[:3, :3]
            estimate = estimate @ delta
        previous_true = truth
        buffer.add(stamp, estimate)
    return buffer
