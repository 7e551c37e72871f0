# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Similarity transforms Sim(3), closed-form and robust point-set alignment, quaternions.

A ``Sim3`` maps a point ``p`` to ``scale * R @ p + t``. Everything here is NumPy float64: the
point sets this project aligns are small (tens of thousands of points), and doing the 3x3
algebra in double precision avoids drift when thousands of windows are chained.

Quaternions are XYZW (scalar last), the order VGGT and ROS ``geometry_msgs/Quaternion`` use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Sim3:
    """A similarity transform ``x -> scale * rotation @ x + translation``.

    Attributes:
        scale: positive scalar.
        rotation: [3,3] rotation matrix (det +1).
        translation: [3] translation.

    """

    scale: float = 1.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, 'scale', float(self.scale))
        object.__setattr__(self, 'rotation', np.asarray(self.rotation, dtype=np.float64))
        object.__setattr__(self, 'translation', np.asarray(self.translation, dtype=np.float64))
        if self.rotation.shape != (3, 3) or self.translation.shape != (3,):
            raise ValueError('Sim3 needs rotation [3,3] and translation [3]')
        if not self.scale > 0.0:
            raise ValueError(f'Sim3 scale must be positive, got {self.scale}')

    @staticmethod
    def identity() -> 'Sim3':
        return Sim3()

    @staticmethod
    def from_matrix(matrix: np.ndarray) -> 'Sim3':
        """Build from a [4,4] matrix ``[[s R, t], [0, 1]]``."""
        matrix = np.asarray(matrix, dtype=np.float64)
        scaled = matrix[:3, :3]
        scale = float(np.cbrt(np.linalg.det(scaled)))
        return Sim3(scale, scaled / scale, matrix[:3, 3].copy())

    def as_matrix(self) -> np.ndarray:
        """[4,4] float64 matrix ``[[s R, t], [0, 1]]``."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.scale * self.rotation
        matrix[:3, 3] = self.translation
        return matrix

    def compose(self, other: 'Sim3') -> 'Sim3':
        """``self ∘ other``: apply ``other`` first, then ``self``."""
        return Sim3(
            self.scale * other.scale,
            self.rotation @ other.rotation,
            self.scale * self.rotation @ other.translation + self.translation,
        )

    def __matmul__(self, other: 'Sim3') -> 'Sim3':
        return self.compose(other)

    def inverse(self) -> 'Sim3':
        rot_t = self.rotation.T
        return Sim3(1.0 / self.scale, rot_t, -(rot_t @ self.translation) / self.scale)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform points [...,3]; float32 input stays float32."""
        points = np.asarray(points)
        dtype = points.dtype if points.dtype in (np.float32, np.float64) else np.float64
        matrix = (self.scale * self.rotation).astype(dtype)
        # One (N,3) x (3,3) product: numpy's batched matmul over [...,3] is far slower.
        flat = points.astype(dtype, copy=False).reshape(-1, 3)
        moved = flat @ matrix.T + self.translation.astype(dtype)
        return moved.reshape(points.shape)

    def transform_poses(self, world_from_camera: np.ndarray) -> np.ndarray:
        """Re-express rigid camera poses [...,4,4] in the target frame of this transform.

        A camera's rotation turns by ``R`` and its centre moves like a point; the scale goes into
        the camera's depth units, so the result is again a rigid (SE(3)) pose.
        """
        poses = np.array(world_from_camera, dtype=np.float64, copy=True)
        poses[..., :3, :3] = self.rotation @ poses[..., :3, :3]
        poses[..., :3, 3] = poses[..., :3, 3] @ (self.scale * self.rotation).T + self.translation
        return poses


def umeyama(
    src: np.ndarray,
    dst: np.ndarray,
    weights: np.ndarray | None = None,
    with_scale: bool = True,
) -> Sim3:
    """Weighted least-squares similarity (Umeyama 1991) with ``dst ≈ s R src + t``.

    Args:
        src: [N,3] source points.
        dst: [N,3] target points.
        weights: [N] non-negative weights (None = uniform).
        with_scale: solve the scale; otherwise it is fixed to 1 (rigid fit).

    Returns:
        The transform taking ``src`` onto ``dst``.

    Raises:
        ValueError: fewer than 3 points with positive weight, or all source points coincide.

    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f'umeyama needs matching [N,3] arrays, got {src.shape} and {dst.shape}')
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    if np.count_nonzero(w > 0) < 3:
        raise ValueError('umeyama needs at least 3 points with positive weight')
    w = w / w.sum()
    mu_src = w @ src
    mu_dst = w @ dst
    src_c = src - mu_src
    dst_c = dst - mu_dst
    cov = (dst_c * w[:, None]).T @ src_c
    var_src = float(w @ np.einsum('ij,ij->i', src_c, src_c))
    if var_src <= 1e-18:
        raise ValueError('umeyama: source points are all identical')
    u, sing, vt = np.linalg.svd(cov)
    # Reflection guard: force det(R) = +1.
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2] = -1.0
    rotation = (u * sign) @ vt
    scale = float((sing * sign).sum() / var_src) if with_scale else 1.0
    if scale <= 0.0:
        raise ValueError('umeyama: degenerate configuration (non-positive scale)')
    translation = mu_dst - scale * rotation @ mu_src
    return Sim3(scale, rotation, translation)


@dataclass(frozen=True)
class RobustFit:
    """Result of :func:`robust_umeyama`.

    Attributes:
        transform: the fitted ``Sim3`` (src -> dst).
        residuals: [N] final distances ``|dst - T(src)|``.
        weights: [N] final IRLS weights (prior weight times Huber weight).
        iterations: IRLS iterations run.

    """

    transform: Sim3
    residuals: np.ndarray
    weights: np.ndarray
    iterations: int


def robust_umeyama(
    src: np.ndarray,
    dst: np.ndarray,
    weights: np.ndarray | None = None,
    with_scale: bool = True,
    huber_delta: float | np.ndarray = 0.1,
    iterations: int = 5,
    tolerance: float = 1e-6,
) -> RobustFit:
    """Fit with iteratively re-weighted Umeyama with a Huber loss on point distances.

    Args:
        src: [N,3] source points.
        dst: [N,3] target points.
        weights: [N] prior weights, e.g. confidences (None = uniform).
        with_scale: solve the scale.
        huber_delta: Huber threshold in ``dst`` units, scalar or per point [N]; residuals above
            it get weight ``delta / residual``.
        iterations: maximum IRLS iterations after the initial weighted fit.
        tolerance: stop when the transform changes less than this, relative to its scale
            (max abs entry of the 4x4 matrix difference divided by the scale).

    Returns:
        ``RobustFit`` with the transform, final residuals and weights.

    """
    prior = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    transform = umeyama(src, dst, prior, with_scale)
    current = prior
    done = 0
    for done in range(1, iterations + 1):
        residuals = np.linalg.norm(dst - transform.apply(src), axis=1)
        huber = np.minimum(1.0, huber_delta / np.maximum(residuals, 1e-12))
        current = prior * huber
        updated = umeyama(src, dst, current, with_scale)
        change = np.abs(updated.as_matrix() - transform.as_matrix()).max() / transform.scale
        transform = updated
        if change < tolerance:
            break
    residuals = np.linalg.norm(dst - transform.apply(src), axis=1)
    return RobustFit(transform, residuals, current, done)


def quaternion_xyzw_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Rotation matrices [...,3,3] -> unit quaternions [...,4] XYZW with w >= 0.

    Uses the numerically stable branch on the largest diagonal term (Shepperd's method).
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
    quat[quat[:, 3] < 0] *= -1.0
    return quat.reshape(batch + (4,))


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
