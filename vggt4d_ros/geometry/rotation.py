# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Rotations: quaternions <-> matrices, slerp, axis-angle, random draws (NumPy float64).

Quaternions are XYZW (scalar last), the order VGGT and ROS ``geometry_msgs/Quaternion`` use.
q and -q are the same rotation; every quaternion this package produces (TF, odometry, pose
messages, bags, TUM files) comes from :func:`quaternion_xyzw_from_rotation` and so has ONE
canonical sign: w > 0, or, for half-turns (w == 0), the first non-zero of x, y, z positive.
Zeros are +0.0, so equal rotations give equal bits.

The torch conversions inside VGGT's camera encoding (``geometry.pose_encoding``: batched, on
the model's device, w >= 0) stay there: they are part of the network's output format.
"""

from __future__ import annotations

import numpy as np


def quaternion_xyzw_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Rotation matrices [...,3,3] -> unit quaternions [...,4] XYZW with the canonical sign.

    Uses the numerically stable branch on the largest of the four candidates 4 q_i^2
    (Shepperd's method). The one conversion of the package: live TF, replay bags and the
    trajectory all call it, so they agree to the bit.
    """
    rot = np.asarray(rotation, dtype=np.float64)
    batch = rot.shape[:-2]
    m = rot.reshape(-1, 3, 3)
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # Candidates 4*q_i^2 for i = w, x, y, z; pick the largest to divide by.
    cand = np.stack(
        [
            1.0 + trace,
            1.0 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2],
            1.0 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2],
            1.0 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2],
        ],
        axis=1,
    )
    best = np.argmax(cand, axis=1)
    quat = np.empty((len(m), 4))
    diff_zy = m[:, 2, 1] - m[:, 1, 2]
    diff_xz = m[:, 0, 2] - m[:, 2, 0]
    diff_yx = m[:, 1, 0] - m[:, 0, 1]
    sum_xy = m[:, 0, 1] + m[:, 1, 0]
    sum_xz = m[:, 0, 2] + m[:, 2, 0]
    sum_yz = m[:, 1, 2] + m[:, 2, 1]
    root = 2.0 * np.sqrt(np.maximum(cand[np.arange(len(m)), best], 1e-300))
    rows = {
        0: (diff_zy, diff_xz, diff_yx, None),
        1: (None, sum_xy, sum_xz, diff_zy),
        2: (sum_xy, None, sum_yz, diff_xz),
        3: (sum_xz, sum_yz, None, diff_yx),
    }
    for case, (qx, qy, qz, qw) in rows.items():
        sel = best == case
        if not np.any(sel):
            continue
        r = root[sel]
        quat[sel, 0] = r / 4.0 if qx is None else qx[sel] / r
        quat[sel, 1] = r / 4.0 if qy is None else qy[sel] / r
        quat[sel, 2] = r / 4.0 if qz is None else qz[sel] / r
        quat[sel, 3] = r / 4.0 if qw is None else qw[sel] / r
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    return canonical_sign(quat).reshape(batch + (4,))


def canonical_sign(quat: np.ndarray) -> np.ndarray:
    """Return the one of q, -q [...,4] XYZW that has the canonical sign (module docstring).

    For w == 0 (a half-turn, computed exactly when the matrix is exactly symmetric) w >= 0
    leaves two answers; the first non-zero of x, y, z decides, so a half-turn built from q
    and one built from -q give the same quaternion. Adding 0.0 turns -0.0 into +0.0.
    """
    quat = np.array(quat, dtype=np.float64, copy=True)
    flat = quat.reshape(-1, 4)
    vector = flat[:, :3]
    first = vector[np.arange(len(flat)), np.argmax(vector != 0.0, axis=1)]
    flip = (flat[:, 3] < 0) | ((flat[:, 3] == 0) & (first < 0))
    flat[flip] *= -1.0
    flat += 0.0
    return quat


def rotation_from_quaternion_xyzw(quat: np.ndarray) -> np.ndarray:
    """Quaternions [...,4] XYZW (any norm > 0) -> rotation matrices [...,3,3]."""
    q = np.asarray(quat, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rot = np.empty(q.shape[:-1] + (3, 3))
    rot[..., 0, 0] = 1 - 2 * (y * y + z * z)
    rot[..., 0, 1] = 2 * (x * y - z * w)
    rot[..., 0, 2] = 2 * (x * z + y * w)
    rot[..., 1, 0] = 2 * (x * y + z * w)
    rot[..., 1, 1] = 1 - 2 * (x * x + z * z)
    rot[..., 1, 2] = 2 * (y * z - x * w)
    rot[..., 2, 0] = 2 * (x * z - y * w)
    rot[..., 2, 1] = 2 * (y * z + x * w)
    rot[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return rot


def slerp_xyzw(q0: np.ndarray, q1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Spherical interpolation between quaternions [...,4] XYZW at fractions ``alpha`` [...]."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.array(q1, dtype=np.float64, copy=True)
    alpha = np.asarray(alpha, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    # Take the short way round.
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-9
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1.0 - alpha, np.sin((1.0 - alpha) * theta) / safe)
    w1 = np.where(near, alpha, np.sin(alpha * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def random_rotation(rng: np.random.Generator, max_angle_rad: float | None = None) -> np.ndarray:
    """Draw a random rotation [3,3]: uniform on SO(3), or about a random axis up to an angle."""
    if max_angle_rad is None:
        quat = rng.normal(size=4)
        return rotation_from_quaternion_xyzw(quat)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(-max_angle_rad, max_angle_rad)
    return rotation_from_axis_angle(axis * angle)


def rotation_from_axis_angle(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation vectors [...,3] (axis times angle, radians) -> [...,3,3]."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    half = angle / 2.0
    # sin(half)/angle is well defined at 0 (limit 1/2).
    factor = np.where(angle > 1e-12, np.sin(half) / np.where(angle > 0, angle, 1.0), 0.5)
    quat = np.concatenate([rotvec * factor, np.cos(half)], axis=-1)
    return rotation_from_quaternion_xyzw(quat)
