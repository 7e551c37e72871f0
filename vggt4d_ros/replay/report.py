# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Markdown report with PNG plots of a replay run (matplotlib, headless Agg backend).

Plots: the trajectory against ground truth after Sim(3) alignment (top view), translation
error over time, per-frame mask J/F, mask overlays on sample frames (prediction in red, ground
truth outline in green), tracks and their speeds over time (``track_report``) and mean time
per pipeline stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vggt4d_ros.replay.parameters import RANDOM_WEIGHTS_WARNING
from vggt4d_ros.replay.metrics import MaskMetrics
from vggt4d_ros.replay.metrics import TrajectoryMetrics
from vggt4d_ros.replay.scale_report import scale_section
from vggt4d_ros.replay.track_evaluation import TrackEvaluation
from vggt4d_ros.replay.track_report import plot_tracks
from vggt4d_ros.replay.track_report import PLOT as TRACKS_PLOT
from vggt4d_ros.replay.track_report import track_lines


@dataclass
class ReportInputs:
    """Everything the report shows.

    Attributes:
        title: first heading.
        facts: (label, value) lines of the run description.
        random_weights: True prints the warning banner.
        trajectory: ATE/RPE results or None; trajectory_note says why they are missing.
        masks: mask J/F results or None.
        estimate_xyz: [N,3] estimated positions (shown when there is no ground truth).
        stage_seconds: stage -> list of seconds (one per window).
        samples: (stamp, rgb [H,W,3], predicted mask [H,W], ground-truth mask or None).
        metrics_json: name of the metrics file to link.
        scale: ``metrics.json['scale']`` of a run with a metric scale source (or None).
        tracks: tracking scores and series, or None; tracks_note says why they are missing
            (None and an empty note: perception was not part of the run, no section).

    """

    title: str
    facts: list[tuple[str, str]]
    random_weights: bool
    trajectory: TrajectoryMetrics | None = None
    trajectory_note: str = ''
    masks: MaskMetrics | None = None
    mask_note: str = ''
    estimate_xyz: np.ndarray | None = None
    stage_seconds: dict[str, list[float]] = field(default_factory=dict)
    samples: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]] = field(
        default_factory=list)
    metrics_json: str = 'metrics.json'
    scale: dict[str, Any] | None = None
    tracks: TrackEvaluation | None = None
    tracks_note: str = ''


def _pyplot() -> Any:
    os.environ.setdefault('MPLBACKEND', 'Agg')
    os.environ.setdefault('MPLCONFIGDIR', os.path.join(os.getcwd(), '.mplconfig')
                          if not os.access(os.path.expanduser('~'), os.W_OK) else
                          os.environ.get('MPLCONFIGDIR', os.path.expanduser('~/.config/mpl')))
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(plt: Any, fig: Any, path: Path) -> None:
    """Lay out, write as PNG (100 dpi) and close one report figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_trajectory(plt: Any, inputs: ReportInputs, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if inputs.trajectory is not None:
        ref, est = inputs.trajectory.reference_xyz, inputs.trajectory.aligned_xyz
        ax.plot(ref[:, 0], ref[:, 1], 'g-', label='ground truth')
        ax.plot(est[:, 0], est[:, 1], 'r.-', label='estimate (Sim(3)-aligned)')
        for a, b in zip(ref, est):
            ax.plot([a[0], b[0]], [a[1], b[1]], color='0.7', linewidth=0.5)
    elif inputs.estimate_xyz is not None and len(inputs.estimate_xyz):
        est = inputs.estimate_xyz
        ax.plot(est[:, 0], est[:, 1], 'r.-', label='estimate (not aligned)')
    ax.set_xlabel('x')
    ax.set_ylabel('y')
    ax.set_title('Camera trajectory (top view)')
    ax.axis('equal')
    ax.legend(loc='best', fontsize=8)
    _save(plt, fig, path)


def _plot_errors(plt: Any, trajectory: TrajectoryMetrics, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3))
    t = trajectory.stamps_s - trajectory.stamps_s[0]
    ax.plot(t, trajectory.errors, 'b.-')
    ax.axhline(trajectory.ate_rmse, color='r', linestyle='--', label='RMSE')
    ax.set_xlabel('time [s]')
    ax.set_ylabel('translation error [GT units]')
    ax.set_title('Absolute trajectory error after Sim(3) alignment')
    ax.legend(fontsize=8)
    _save(plt, fig, path)


def _plot_mask_scores(plt: Any, masks: MaskMetrics, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(range(len(masks.j)), masks.j, 'b.-', label=f'J (mean {masks.j_mean:.3f})')
    ax.plot(range(len(masks.f)), masks.f, 'm.-', label=f'F (mean {masks.f_mean:.3f})')
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel('frame')
    ax.set_title('Dynamic-mask scores per frame')
    ax.legend(fontsize=8)
    _save(plt, fig, path)


def overlay(rgb: np.ndarray, predicted: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
    """RGB [H,W,3] uint8 with the prediction tinted red and the truth outlined in green."""
    out = rgb.astype(np.float32).copy()
    dynamic = np.asarray(predicted) > 0
    out[dynamic] = 0.45 * out[dynamic] + 0.55 * np.array([255.0, 0.0, 0.0])
    out = np.clip(out, 0, 255).astype(np.uint8)
    if truth is not None:
        contours, _ = cv2.findContours((np.asarray(truth) > 0).astype(np.uint8),
                                       cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, (0, 255, 0), 1)
    return out


def _plot_overlays(plt: Any, samples: list, path: Path) -> None:
    fig, axes = plt.subplots(1, len(samples), figsize=(3.2 * len(samples), 2.8))
    first = samples[0][0]
    for ax, (stamp, rgb, pred, truth) in zip(np.atleast_1d(axes), samples):
        ax.imshow(overlay(rgb, pred, truth))
        ax.set_title(f't = {(stamp - first) / 1e9:.2f} s', fontsize=8)
        ax.axis('off')
    fig.suptitle('Predicted dynamic mask (red), ground truth outline (green)', fontsize=9)
    _save(plt, fig, path)


def _plot_timings(plt: Any, stage_seconds: dict[str, list[float]], path: Path) -> None:
    names = list(stage_seconds)
    means = [1000.0 * float(np.mean(stage_seconds[n])) for n in names]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.2))
    ax.barh(names, means, color='tab:blue')
    ax.invert_yaxis()
    ax.set_xlabel('mean ms per window')
    ax.set_title('Time per stage')
    _save(plt, fig, path)


def write_report(out_dir: str | Path, inputs: ReportInputs) -> Path:
    """Write ``report.md`` and its PNGs into ``out_dir/report``; returns the Markdown path."""
    plt = _pyplot()
    report_dir = Path(out_dir) / 'report'
    report_dir.mkdir(parents=True, exist_ok=True)
    lines = [f'# {inputs.title}', '']
    if inputs.random_weights:
        lines += [f'> **{RANDOM_WEIGHTS_WARNING}**', '']
    lines += ['## Run', '', '| | |', '|---|---|']
    lines += [f'| {label} | {value} |' for label, value in inputs.facts]
    lines += ['', '## Trajectory', '']
    _plot_trajectory(plt, inputs, report_dir / 'trajectory.png')
    if inputs.trajectory is not None:
        tm = inputs.trajectory
        _plot_errors(plt, tm, report_dir / 'trajectory_error.png')
        lines += ['Sim(3) Umeyama alignment of all associated poses (evo, correct_scale); '
                  'errors in ground-truth units.', '',
                  '| metric | value |', '|---|---|',
                  f'| associated poses | {tm.matched} |',
                  f'| ATE RMSE (Sim(3)) | {tm.ate_rmse:.4f} |',
                  f'| ATE mean / median / max | {tm.ate_mean:.4f} / {tm.ate_median:.4f} / '
                  f'{tm.ate_max:.4f} |',
                  f'| ATE RMSE (SE(3), no scale) | {tm.ate_rmse_se3:.4f} |',
                  f'| RPE trans RMSE (1 frame) | {tm.rpe_trans_rmse:.4f} |',
                  f'| RPE rot RMSE (1 frame, deg) | {tm.rpe_rot_deg_rmse:.4f} |',
                  f'| Sim(3) scale | {tm.scale:.4f} |',
                  f'| scale error (1 / scale - 1; metric runs only) | {tm.scale_error:+.4f} |',
                  '',
                  '![trajectory](trajectory.png)', '',
                  '![error over time](trajectory_error.png)', '']
    else:
        lines += [f'No trajectory metrics: {inputs.trajectory_note or "no ground truth"}.', '',
                  '![trajectory](trajectory.png)', '']
    if inputs.scale is not None:
        lines += scale_section(plt, inputs.scale, report_dir)
    lines += ['## Dynamic masks', '']
    if inputs.masks is not None and inputs.masks.j:
        summary = inputs.masks.summary()
        _plot_mask_scores(plt, inputs.masks, report_dir / 'mask_scores.png')
        lines += ['DAVIS J (IoU, 1 when both empty) and F (boundary F-measure, tolerance '
                  'ceil(0.008 x diagonal) px) per frame at camera resolution.', '',
                  '| metric | value |', '|---|---|']
        lines += [f'| {key} | {value:.4f} |' if isinstance(value, float)
                  else f'| {key} | {value} |' for key, value in summary.items()]
        lines += ['', '![mask scores](mask_scores.png)', '']
    else:
        lines += [f'No mask metrics: {inputs.mask_note or "no ground-truth masks"}.', '']
    if inputs.samples:
        _plot_overlays(plt, inputs.samples, report_dir / 'mask_overlays.png')
        lines += ['![mask overlays](mask_overlays.png)', '']
    if inputs.tracks is not None:
        plot_tracks(plt, _save, inputs.tracks, report_dir / TRACKS_PLOT)
    if inputs.tracks is not None or inputs.tracks_note:
        lines += track_lines(inputs.tracks, inputs.tracks_note)
    lines += ['## Timing', '']
    if inputs.stage_seconds:
        _plot_timings(plt, inputs.stage_seconds, report_dir / 'timings.png')
        lines += ['| stage | mean ms | total s | windows |', '|---|---|---|---|']
        for name, values in inputs.stage_seconds.items():
            lines.append(f'| {name} | {1000 * np.mean(values):.1f} | {np.sum(values):.2f} | '
                         f'{len(values)} |')
        lines += ['', '![timings](timings.png)', '']
    lines += [f'All numbers: [`{inputs.metrics_json}`](../{inputs.metrics_json}).', '']
    path = report_dir / 'report.md'
    path.write_text('\n'.join(lines))
    return path
