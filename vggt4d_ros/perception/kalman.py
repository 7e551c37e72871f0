# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Kinematic Kalman filters (constant velocity or constant acceleration), vectorised over tracks.

State per track and axis: the first ``order`` derivatives of the position (order 2: position,
velocity; order 3: position, velocity, acceleration). The three axes are independent with the
same noise, so one [k,k] covariance per track serves all of them: states are [T,3,k] and
covariances [T,k,k]. Process noise: the k-th derivative (acceleration for k = 2, jerk for
k = 3) is white, piecewise constant over a step, of standard deviation ``noise``
(``Q = noise^2 g g^T``, ``g_i = dt^(k-i) / (k-i)!``); measurements: position with standard
deviation ``sigma``.
"""

from __future__ import annotations

import functools
from math import factorial

import numpy as np


def predict(state: np.ndarray, cov: np.ndarray, dt: np.ndarray | float, noise: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """Advance states [T,3,k] and covariances [T,k,k] by dt [T] seconds (dt >= 0).

    ``dt`` may be one float for every track (the tracker's case: no per-track checks).
    """
    order = state.shape[2]
    if np.ndim(dt) == 0:
        uniform = max(float(dt), 0.0)
    else:
        dt = np.maximum(np.asarray(dt, dtype=np.float64), 0.0)
        uniform = float(dt[0]) if len(dt) and (dt == dt[0]).all() else None
    if uniform is not None:  # one step for all tracks: its matrices are made once
        # [1,k,k]: einsum and matmul broadcast it over the tracks themselves (the same stride
        # 0 as np.broadcast_to's view, so the same bits, without its ~3 us per call).
        transition, spread = _step_matrices(uniform, order, noise)
    else:
        transition, spread = _matrices(dt, order, noise)
    out = np.einsum('tij,taj->tai', transition, state)
    new = transition @ cov @ transition.transpose(0, 2, 1)
    new += spread
    return out, new


def _matrices(dt: np.ndarray, order: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Transitions F [T,k,k] and process noises Q [T,k,k] of steps dt [T] (dt >= 0)."""
    # Transition F[T,k,k]: F_ij = dt^(j-i) / (j-i)! for j >= i (Taylor series of the motion).
    transition = np.zeros((len(dt), order, order))
    for i in range(order):
        for j in range(i, order):
            transition[:, i, j] = dt ** (j - i) / factorial(j - i)
    g = np.stack([dt ** (order - i) / factorial(order - i) for i in range(order)], axis=1)
    return transition, noise ** 2 * g[:, :, None] * g[:, None, :]


@functools.lru_cache(maxsize=64)
def _step_matrices(dt: float, order: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """``_matrices`` of one step dt, [1,k,k] each, made once (frames come at a few rates)."""
    transition, spread = _matrices(np.array([dt]), order, noise)
    transition.flags.writeable = False  # shared by every later call: read-only
    spread.flags.writeable = False
    return transition, spread


def update(state: np.ndarray, cov: np.ndarray, measured: np.ndarray, sigma: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Fuse position measurements [T,3] with standard deviations [T] into states [T,3,k]."""
    innovation_var = cov[:, 0, 0] + sigma ** 2
    gain = cov[:, :, 0] / innovation_var[:, None]  # [T,k]
    residual = measured - state[:, :, 0]  # [T,3]
    out = state + residual[:, :, None] * gain[:, None, :]
    # Joseph-free form is fine here: the gain is optimal and the state is small.
    new = cov - gain[:, :, None] * cov[:, None, 0, :]
    new = 0.5 * (new + new.transpose(0, 2, 1))  # the method: no np.transpose wrapper (~1 us)
    return out, new


def initial(position: np.ndarray, sigma: np.ndarray, derivative_sigmas: tuple[float, ...]
            ) -> tuple[np.ndarray, np.ndarray]:
    """States [T,3,k] at rest at positions [T,3] and their covariances [T,k,k].

    ``derivative_sigmas``: prior standard deviations of velocity (and acceleration): k - 1.
    """
    count, order = len(position), 1 + len(derivative_sigmas)
    state = np.zeros((count, 3, order))
    state[:, :, 0] = position
    cov = np.zeros((count, order, order))
    cov[:, 0, 0] = sigma ** 2
    for i, value in enumerate(derivative_sigmas, start=1):
        cov[:, i, i] = value ** 2
    return state, cov
