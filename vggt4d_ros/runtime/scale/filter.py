# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Fuse per-window metric scale over windows: robust, outlier windows rejected, bounded rate.

VGGT normalises every window on its own, so raw metres-per-unit values of two windows are not
comparable. The mapper therefore feeds this filter ``metres per map unit``: the window's
estimate divided by the window's scale in the map's own (first-window) units, which the Sim(3)
chain knows. That quantity is constant up to the chain's slow scale drift, so it can be fused:

* the filter keeps the last ``history`` accepted values (log scale) and aims at their median;
* a value farther than ``gate_mads`` robust sigmas (and ``min_gate``) from that median is
  rejected (counted); ``max_consecutive_rejects`` rejections in a row restart the history from
  those values ('relock': the world really changed, e.g. a wrong first estimate);
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
        self._rejected: list[float] = []
        self._log_value: float | None = None

    @property
    def value(self) -> float | None:
        """Fused metres per map unit, None before the first estimate (or after a reset)."""
        return None if self._log_value is None else math.exp(self._log_value)

    def reset(self) -> None:
        """Map units changed (a fresh map segment): forget everything but the counters."""
        self._history.clear()
        self._rejected = []
        self._log_value = None
        self.state.resets += 1
        self.state.metres_per_map_unit = float('nan')
        self.state.spread = float('nan')

    def update(self, metres_per_map_unit: float | None, spread: float | None = None
               ) -> float | None:
        """Take one window's measurement (None: no estimate); return the fused value.

        Args:
            metres_per_map_unit: this window's estimate in metres per map unit, or None.
            spread: its relative 1-sigma (unused by the median target; kept for diagnostics
                and future weighting).

        Returns:
            Fused metres per map unit, or None while nothing was measured.

        """
        del spread
        state = self.state
        state.windows += 1
        valid = metres_per_map_unit is not None and math.isfinite(metres_per_map_unit) \
            and metres_per_map_unit > 0
        if not valid:
            state.without_estimate += 1
            state.last_measurement = float('nan')
            return self.value
        state.last_measurement = float(metres_per_map_unit)
        measured = math.log(metres_per_map_unit)
        if self._accept(measured):
            self._history.append(measured)
            self._rejected = []
            state.accepted += 1
        else:
            state.rejected += 1
            self._rejected.append(measured)
            if len(self._rejected) >= self.config.max_consecutive_rejects:
                self._history.clear()
                self._history.extend(self._rejected)
                self._rejected = []
                state.relocks += 1
        self._step()
        return self.value

    def _accept(self, measured: float) -> bool:
        cfg = self.config
        if len(self._history) < cfg.min_history:
            return True
        history = np.fromiter(self._history, float)
        centre = float(np.median(history))
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(history - centre)))
        return abs(measured - centre) <= max(cfg.gate_mads * sigma, cfg.min_gate)

    def _step(self) -> None:
        if not self._history:
            return
        history = np.fromiter(self._history, float)
        target = float(np.median(history))
        if self._log_value is None:
            self._log_value = target
        else:
            step = float(np.clip(target - self._log_value, -self.config.max_step,
                                 self.config.max_step))
            self._log_value += step
        self.state.metres_per_map_unit = math.exp(self._log_value)
        self.state.spread = MAD_TO_SIGMA * float(np.median(np.abs(history - target)))
