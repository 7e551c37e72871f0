# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The report's tracking section: scores, and tracks and velocities over time (one figure).

Left: top view of every track's positions and the ground-truth objects' paths; right: speed
over time per track and per object (ground-truth frame and units, after the trajectory's
Sim(3) alignment, see ``track_evaluation``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from vggt4d_ros.replay.track_evaluation import TrackEvaluation

PLOT = 'tracks.png'


def plot_tracks(plt: Any, save: Callable[[Any, Any, Path], None], evaluation: TrackEvaluation,
                path: Path) -> None:
    """Write the tracks figure to ``path``."""
    fig, (top, speed) = plt.subplots(1, 2, figsize=(11, 4.2))
    stamps = [s for series in (*evaluation.tracks.values(), *evaluation.truth.values())
              for s in series[0]]
    start = min(stamps) if stamps else 0
    styles = ('-', '--', ':', '-.')  # ground truth: grey, one line style per object
    for k, (object_id, (t, positions, velocities)) in enumerate(sorted(evaluation.truth.items())):
        style = dict(linestyle=styles[k % len(styles)], color='0.55', linewidth=2.5,
                     label=f'truth object {object_id}')
        top.plot(positions[:, 0], positions[:, 1], **style)
        speed.plot((t - start) * 1e-9, np.linalg.norm(velocities, axis=1), **style)
    for track_id, (t, positions, velocities) in sorted(evaluation.tracks.items()):
        top.plot(positions[:, 0], positions[:, 1], '.-', label=f'track {track_id}')
        speed.plot((t - start) * 1e-9, np.linalg.norm(velocities, axis=1), '.-',
                   label=f'track {track_id}')
    top.set_title('Tracks (top view)')
    top.set_xlabel('x')
    top.set_ylabel('y')
    top.axis('equal')
    speed.set_title('Speed over time')
    speed.set_xlabel('time [s]')
    speed.set_ylabel('speed [GT units/s]')
    for ax in (top, speed):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc='best')
    save(plt, fig, path)


def track_lines(evaluation: TrackEvaluation | None, note: str) -> list[str]:
    """Markdown lines of the tracking section (after the plot was written)."""
    lines = ['## Tracked objects', '']
    if evaluation is None:
        return lines + [f'No tracking metrics: {note or "no ground-truth objects"}.', '']
    m = evaluation.metrics
    per_object = ', '.join(f'{k}: {v:.3f}' for k, v in m.velocity_error_per_object.items())
    ids = ', '.join(f'{k}: {v}' for k, v in m.ids_per_object.items())
    lines += ['Tracks per window against the ground-truth objects (optimal one-to-one '
              f'matching within {evaluation.match_distance} GT units; protocol in '
              '`replay/track_metrics.py`).', '',
              '| metric | value |', '|---|---|',
              f'| windows scored | {m.frames} |',
              f'| recall / precision | {m.recall:.3f} / {m.precision:.3f} |',
              f'| id switches | {m.id_switches} |',
              f'| track ids per object | {ids or "-"} |',
              f'| position error (of the distance) mean / max | '
              f'{m.position_error_mean:.3f} / {m.position_error_max:.3f} |',
              f'| velocity error (RMS / RMS speed) mean / max | '
              f'{m.velocity_error_mean:.3f} / {m.velocity_error_max:.3f} |',
              f'| velocity error per object | {per_object or "-"} |', '',
              f'![tracks]({PLOT})', '']
    return lines
