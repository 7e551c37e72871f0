# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The report's metric-scale section: units, metric vs Sim(3) ATE, scale over time (a plot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: The plot's file name inside the report directory.
SCALE_PLOT = 'scale_over_time.png'


def _plot(plt: Any, scale: dict[str, Any], path: Path) -> None:
    """Fused metres per map unit per window and the per-segment scale error over time."""
    over = scale['over_time']
    stamps = np.asarray(over['stamps_ns'], np.float64)
    start = stamps[0] if len(stamps) else 0.0
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 4.5), sharex=True)
    fused = np.array([np.nan if v is None else v for v in over['fused_metres_per_map_unit']],
                     np.float64)
    top.plot((stamps - start) * 1e-9, fused, 'b.-', label='fused (applied)')
    top.set_ylabel('metres per map unit')
    top.set_title(f'Metric scale ({scale["source"]})')
    top.legend(fontsize=8)
    if 'segment_scale_error' in over:
        ends = np.asarray(over['segment_end_s'], np.float64) - start * 1e-9
        bottom.plot(ends, 100.0 * np.asarray(over['segment_scale_error']), 'r.-',
                    label='estimated / true travel - 1')
        bottom.axhline(0.0, color='0.5', linewidth=0.8)
        bottom.legend(fontsize=8)
    bottom.set_ylabel('scale error [%]')
    bottom.set_xlabel('time [s]')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def scale_section(plt: Any, scale: dict[str, Any], report_dir: Path) -> list[str]:
    """Markdown lines of the metric-scale section (and its plot, written into report_dir)."""
    lines = ['## Metric scale', '']
    if scale['source'] == 'none':
        return lines + ["No scale source: poses and maps are in VGGT's scale-free units.", '']
    lines += [f'Source `{scale["source"]}` (`{scale.get("topic", "")}`, extrinsic: '
              f'{scale.get("extrinsic", "")}); outputs in **{scale["units"]}**.', '',
              '| metric | value |', '|---|---|',
              f'| metres per map unit (final) | {scale["metres_per_map_unit"]:.5g} |',
              f'| windows with an estimate | {scale["windows_with_estimate"]} / '
              f'{scale["windows"]} |']
    if 'ate_rmse_metric' in scale:
        lines += [f'| ATE RMSE metric (SE(3), no scale) [m] | {scale["ate_rmse_metric"]:.4f} |',
                  f'| ATE RMSE Sim(3) [m] | {scale["ate_rmse_sim3"]:.4f} |',
                  f'| metric / Sim(3) ATE | {scale["ate_metric_over_sim3"]:.3f} |',
                  f'| scale error (estimate / truth - 1) | {scale["scale_error"]:+.4f} |']
    if scale['windows']:
        _plot(plt, scale, report_dir / SCALE_PLOT)
        lines += ['', f'![scale over time]({SCALE_PLOT})']
    return lines + ['']
