# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Similarity transforms Sim(3), closed-form and robust point-set alignment.

A ``Sim3`` maps a point ``p`` to ``scale * R @ p + t``. Everything here is NumPy float64: the
point sets this project aligns are small (tens of thousands of points), and doing the 3x3
algebra in double precision avoids drift when thousands of windows are chained.

Rotations and quaternions have their own home, :mod:`vggt4d_ros.geometry.rotation`.
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
