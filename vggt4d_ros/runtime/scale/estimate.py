# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""One window's metric scale measurement, and the robust statistics the sources share."""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np

#: 1.4826 * MAD estimates the standard deviation of Gaussian data.
MAD_TO_SIGMA = 1.4826


@dataclass
class ScaleEstimate:
    """Metres per VGGT unit of ONE window (VGGT normalises every window on its own).

    Attributes:
        source: 'depth' | 'odometry' | 'camera_height' | 'none'.
        metres_per_unit: metres per unit of this window, or None (see ``reason``).
        spread: relative 1-sigma uncertainty of ``metres_per_unit`` (0.01 = 1 %), nan if none.
        samples: pixels, frame pairs or frames the estimate rests on.
        reason: '' when there is an estimate, else why not (a counted outcome, e.g.
            'no_depth', 'wrong_size', 'wrong_encoding', 'all_invalid', 'too_few_pixels',
            'no_tf', 'tf_gap', 'odometry_jump', 'too_little_motion', 'no_floor',
            'tilted_floor').
        details: per-frame outcomes and extra numbers for diagnostics.

    """

    source: str
    metres_per_unit: float | None
    spread: float = float('nan')
    samples: int = 0
    reason: str = ''
    details: dict | None = None

    @property
    def ok(self) -> bool:
        return self.metres_per_unit is not None

    @staticmethod
    def failed(source: str, reason: str, details: dict | None = None) -> 'ScaleEstimate':
        return ScaleEstimate(source, None, float('nan'), 0, reason, details)


def robust_log_centre(log_values: np.ndarray) -> tuple[float, float]:
    """Median and robust sigma (1.4826 MAD) of log values [N] (N >= 1)."""
    centre = float(np.median(log_values))
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(log_values - centre)))
    return centre, sigma


def combine_frames(log_ratios: list[np.ndarray], source: str, min_samples: int,
                   details: dict) -> ScaleEstimate:
    """Pool per-frame log ratios (metres / units) into one estimate.

    The estimate is the median of all pooled log ratios. Its spread is the larger of the
    spread of the per-frame medians over sqrt(frames) (pixels of one frame are correlated, so
    frames are the independent samples) and the pooled robust sigma over sqrt(samples).
    """
    pooled = np.concatenate(log_ratios) if log_ratios else np.zeros(0)
    if pooled.size < min_samples:
        reason = 'all_invalid' if pooled.size == 0 else 'too_few_pixels'
        return ScaleEstimate.failed(source, reason, details)
    centre, sigma = robust_log_centre(pooled)
    spread = sigma / math.sqrt(pooled.size)
    medians = np.array([np.median(r) for r in log_ratios if r.size])
    if medians.size >= 2:
        spread = max(spread, robust_log_centre(medians)[1] / math.sqrt(medians.size))
    return ScaleEstimate(source, math.exp(centre), spread, int(pooled.size), '', details)
