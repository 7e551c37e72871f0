# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Fuse per-window metric scale over windows: robust, outlier windows rejected, bounded rate.

VGGT normalises every window on its own, so raw metres-per-unit values of two windows are not
comparable. The mapper therefore feeds this filter ``metres per map unit``: the window's
estimate divided by the window's scale in the map's own (first-window) units, which the Sim(3)
chain knows. That quantity is constant up to the chain's slow scale drift, so it can be fused:

* the target is a scalar Kalman filter on log(metres per map unit): a random walk of
  ``drift_per_window`` per window (the chain's scale drift) measured with each window's own
  spread (floored at ``min_spread``), so precise sources follow drift and noisy ones average;
* a value farther than ``gate_mads`` sigmas (and ``min_gate``) from the fused value is rejected
  (counted), sigma being the larger of the accepted history's robust sigma (1.4826 MAD) and the
  filter's predicted spread; ``max_consecutive_rejects`` rejections in a row restart from those
  values ('relock': the world really changed, e.g. a wrong first estimate);
* the output moves towards the target by at most ``max_step`` (log) per window, so the map
  does not jump; the first value is taken as is (that is when the outputs become metric);
* windows without an estimate keep the output (counted).

It implements the mapper's ``ScaleFusion`` protocol (``update``, ``reset``, ``value``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import math

import numpy as np

from vggt4d_ros.runtime.scale.config import ScaleFilterConfig
from vggt4d_ros.runtime.scale.estimate import MAD_TO_SIGMA


@dataclass
class ScaleFilterState:
    """Diagnostics of the filter.

    Attributes:
        source: the configured scale source.
        metres_per_map_unit: fused output (nan until the first estimate).
        spread: robust relative spread of the accepted history (1.4826 MAD of its log values).
        windows: windows seen.
        without_estimate: windows that brought no estimate.
        accepted, rejected: estimates accepted / rejected by the outlier gate.
        relocks: history restarts after consecutive rejections.
        resets: restarts because the map units changed (new map segment).
        last_measurement: the latest estimate given (metres per map unit, nan if none).

    """

    source: str = 'none'
    metres_per_map_unit: float = float('nan')
    spread: float = float('nan')
    windows: int = 0
    without_estimate: int = 0
    accepted: int = 0
    rejected: int = 0
    relocks: int = 0
    resets: int = 0
    last_measurement: float = float('nan')


class ScaleFilter:
    """Robust, rate-limited fusion of metres-per-map-unit measurements (see module docstring)."""

    def __init__(self, config: ScaleFilterConfig | None = None, source: str = 'none') -> None:
        self.config = config or ScaleFilterConfig()
        self.state = ScaleFilterState(source=source)
        self._history: deque[float] = deque(maxlen=self.config.history)
        self._rejected: list[tuple[float, float]] = []
        self._log_value: float | None = None  # rate-limited output
        self._mean: float | None = None  # Kalman estimate (log)
        self._variance = 0.0

    @property
    def value(self) -> float | None:
        """Fused metres per map unit, None before the first estimate (or after a reset)."""
        return None if self._log_value is None else math.exp(self._log_value)

    def reset(self) -> None:
        """Map units changed (a fresh map segment): forget everything but the counters."""
        if self._log_value is not None or self._rejected:
            self.state.resets += 1
        self._history.clear()
        self._rejected = []
        self._log_value = None
        self._mean = None
        self._variance = 0.0
        self.state.metres_per_map_unit = float('nan')
        self.state.spread = float('nan')

    def update(self, metres_per_map_unit: float | None, spread: float | None = None
               ) -> float | None:
        """Take one window's measurement (None: no estimate); return the fused value.

        Args:
            metres_per_map_unit: this window's estimate in metres per map unit, or None.
            spread: its relative 1-sigma (None: ``min_spread``).

        Returns:
            Fused metres per map unit, or None while nothing was measured.

        """
        state = self.state
        state.windows += 1
        self._variance += self.config.drift_per_window ** 2
        valid = metres_per_map_unit is not None and math.isfinite(metres_per_map_unit) \
            and metres_per_map_unit > 0
        if not valid:
            state.without_estimate += 1
            state.last_measurement = float('nan')
            return self.value
        state.last_measurement = float(metres_per_map_unit)
        measured = math.log(metres_per_map_unit)
        noise = max(self.config.min_spread, spread if spread is not None and
                    math.isfinite(spread) else 0.0) ** 2
        if self._accept(measured, noise):
            self._history.append(measured)
            self._rejected = []
            self._kalman(measured, noise)
            state.accepted += 1
        else:
            state.rejected += 1
            self._rejected.append((measured, noise))
            if len(self._rejected) >= self.config.max_consecutive_rejects:
                self._relock()
        self._step()
        return self.value

    def _accept(self, measured: float, noise: float) -> bool:
        cfg = self.config
        if self._mean is None or len(self._history) < cfg.min_history:
            return True
        history = np.fromiter(self._history, float)
        centre = float(np.median(history))
        sigma = max(MAD_TO_SIGMA * float(np.median(np.abs(history - centre))),
                    math.sqrt(self._variance + noise))
        return abs(measured - self._mean) <= max(cfg.gate_mads * sigma, cfg.min_gate)

    def _kalman(self, measured: float, noise: float) -> None:
        if self._mean is None:
            self._mean, self._variance = measured, noise
            return
        gain = self._variance / (self._variance + noise)
        self._mean += gain * (measured - self._mean)
        self._variance *= 1.0 - gain

    def _relock(self) -> None:
        """Restart from the consecutive rejected values: the world changed."""
        rejected, self._rejected = self._rejected, []
        self._history.clear()
        self._mean, self._variance = None, 0.0
        for measured, noise in rejected:
            self._history.append(measured)
            self._kalman(measured, noise)
        self.state.relocks += 1

    def _step(self) -> None:
        if self._mean is None:
            return
        if self._log_value is None:
            self._log_value = self._mean
        else:
            step = float(np.clip(self._mean - self._log_value, -self.config.max_step,
                                 self.config.max_step))
            self._log_value += step
        self.state.metres_per_map_unit = math.exp(self._log_value)
        history = np.fromiter(self._history, float)
        self.state.spread = MAD_TO_SIGMA * float(np.median(np.abs(history - np.median(history))))
