# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Constant-velocity Kalman filter, vectorised over tracks.

State per track: position and velocity along three axes. The three axes are independent with
the same noise, so one [2,2] covariance per track serves all of them: states are [T,3,2]
(position, velocity per axis) and covariances [T,2,2]. Process noise: white acceleration of
standard deviation ``accel_noise``; measurements: position with standard deviation ``sigma``.
"""

from __future__ import annotations

import numpy as np


def predict(state: np.ndarray, cov: np.ndarray, dt: np.ndarray, accel_noise: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """Advance states [T,3,2] and covariances [T,2,2] by dt [T] seconds (dt >= 0)."""
    dt = np.maximum(np.asarray(dt, dtype=np.float64), 0.0)
    out = state.copy()
    out[:, :, 0] += state[:, :, 1] * dt[:, None]
    p00, p01, p11 = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    q = accel_noise ** 2
    new = np.empty_like(cov)
    new[:, 0, 0] = p00 + 2 * dt * p01 + dt * dt * p11 + q * dt ** 4 / 4
    new[:, 0, 1] = p01 + dt * p11 + q * dt ** 3 / 2
    new[:, 1, 0] = new[:, 0, 1]
    new[:, 1, 1] = p11 + q * dt ** 2
    return out, new


def update(state: np.ndarray, cov: np.ndarray, measured: np.ndarray, sigma: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Fuse position measurements [T,3] with standard deviations [T] into states [T,3,2]."""
    innovation_var = cov[:, 0, 0] + sigma ** 2
    gain = cov[:, :, 0] / innovation_var[:, None]  # [T,2]
    residual = measured - state[:, :, 0]  # [T,3]
    out = state + residual[:, :, None] * gain[:, None, :]
    # Joseph-free form is fine here: the gain is optimal and the state is 2-dimensional.
    new = cov - gain[:, :, None] * cov[:, None, 0, :]
    new = 0.5 * (new + np.transpose(new, (0, 2, 1)))
    return out, new


def initial(position: np.ndarray, sigma: np.ndarray, velocity_sigma: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """States [T,3,2] at rest at positions [T,3] and their covariances [T,2,2]."""
    count = len(position)
    state = np.zeros((count, 3, 2))
    state[:, :, 0] = position
    cov = np.zeros((count, 2, 2))
    cov[:, 0, 0] = sigma ** 2
    cov[:, 1, 1] = velocity_sigma ** 2
    return state, cov
