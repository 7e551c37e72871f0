# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""metrics.json and report.md of a benchmark evaluation: per sequence, means, published numbers.

Means: DAVIS J/F over all frames of all sequences (each frame counts once, as in Easi3R's
``mask_metric.py``, whose DAVIS numbers VGGT4D compares against) and, for reference, the mean of
the sequence means; trajectory and reconstruction metrics as the mean over sequences.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TYPE_CHECKING

import numpy as np

from vggt4d_ros.replay.datasets.base import MASKS
from vggt4d_ros.replay.datasets.base import RECONSTRUCTION
from vggt4d_ros.replay.datasets.base import TRAJECTORY
from vggt4d_ros.replay.published import published_for

if TYPE_CHECKING:
    from vggt4d_ros.replay.dataset_eval import Evaluation

TRAJECTORY_KEYS = ('ate_rmse', 'rpe_trans_rmse', 'rpe_rot_deg_rmse', 'ate_rmse_se3')
RECONSTRUCTION_KEYS = ('accuracy', 'accuracy_median', 'completeness', 'completeness_median',
                       'distance', 'distance_median')


def _mask_mean(records: list[dict[str, Any]]) -> dict[str, float]:
    j = np.concatenate([np.asarray(r[MASKS]['j'], float) for r in records])
    f = np.concatenate([np.asarray(r[MASKS]['f'], float) for r in records])
    jm, fm = float(j.mean()), float(f.mean())
    return {'frames': int(len(j)), 'j_mean': jm, 'j_recall': float(np.mean(j > 0.5)),
            'f_mean': fm, 'f_recall': float(np.mean(f > 0.5)), 'jf_mean': (jm + fm) / 2.0,
            'j_mean_of_sequences': float(np.mean([r[MASKS]['j_mean'] for r in records])),
            'f_mean_of_sequences': float(np.mean([r[MASKS]['f_mean'] for r in records]))}


def _group_mean(records: list[dict[str, Any]], group: str, keys: tuple[str, ...]
                ) -> dict[str, float]:
    return {key: float(np.mean([r[group][key] for r in records])) for key in keys}


def means(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean of every metric group over the sequences that finished."""
    ok = [r for r in results.values() if r.get('status') == 'ok']
    out: dict[str, Any] = {'sequences': len(ok)}
    with_masks = [r for r in ok if MASKS in r]
    if with_masks:
        out[MASKS] = _mask_mean(with_masks)
    with_traj = [r for r in ok if TRAJECTORY in r]
    if with_traj:
        out[TRAJECTORY] = _group_mean(with_traj, TRAJECTORY, TRAJECTORY_KEYS)
    with_rec = [r for r in ok if RECONSTRUCTION in r]
    if with_rec:
        out[RECONSTRUCTION] = _group_mean(with_rec, RECONSTRUCTION, RECONSTRUCTION_KEYS)
    return out


def _ours(mean: dict[str, Any], metric: str) -> float | None:
    for group in (MASKS, TRAJECTORY, RECONSTRUCTION):
        if metric in mean.get(group, {}):
            return mean[group][metric]
    return None


def _published(dataset: str, mean: dict[str, Any]) -> list[dict[str, Any]]:
    return [{'metric': p.metric, 'method': p.method, 'value': p.value, 'source': p.source,
             'ours': _ours(mean, p.metric)} for p in published_for(dataset)]


def _fmt(value: Any) -> str:
    return f'{value:.4f}' if isinstance(value, float) else str(value)


def _sequence_rows(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = ['| sequence | status | frames | windows | J | F | ATE | RPE-t | RPE-r (deg) | '
             'acc | comp | dist |', '|' + '---|' * 12]
    for name, r in results.items():
        if r.get('status') != 'ok':
            lines.append(f'| {name} | FAILED | | | | | | | | | | |')
            continue
        masks, traj, rec = r.get(MASKS, {}), r.get(TRAJECTORY, {}), r.get(RECONSTRUCTION, {})
        cells = [masks.get('j_mean', ''), masks.get('f_mean', ''), traj.get('ate_rmse', ''),
                 traj.get('rpe_trans_rmse', ''), traj.get('rpe_rot_deg_rmse', ''),
                 rec.get('accuracy', ''), rec.get('completeness', ''), rec.get('distance', '')]
        lines.append(f'| {name} | ok | {r["frames"]} | {r["windows"]} | '
                     + ' | '.join(_fmt(c) for c in cells) + ' |')
    return lines


def _report(evaluation: 'Evaluation', metrics: dict[str, Any]) -> str:
    config = evaluation.config
    lines = [f'# vggt4d-eval: {config.dataset}', '']
    if config.backend_factory is not None:
        lines += ['> **STAND-IN BACKEND: these numbers test the evaluation plumbing and say '
                  'nothing about VGGT4D.**', '']
    lines += ['| | |', '|---|---|', f'| model | {metrics["model"]} |',
              f'| parameters | {metrics["params_file"] or "defaults"} |',
              f'| window | {metrics["window_size"]} frames, stride {metrics["stride"]} |',
              f'| dataset root | {config.root} |', '']
    lines += ['## Protocol', ''] + [f'- {note}' for note in metrics['protocol']] + [
        '- trajectories: Sim(3) Umeyama alignment with scale of all frames (evo); errors in '
        "the ground truth's units (the estimate itself is in VGGT's scale-free units)", '']
    lines += ['## Per sequence', ''] + _sequence_rows(metrics['sequences']) + ['']
    lines += ['## Mean', '', '```', _dump(metrics['mean']), '```', '']
    lines += ['## Published numbers', '']
    if metrics['published']:
        lines += ['| metric | method | published | ours | source |', '|---|---|---|---|---|']
        lines += [f'| {p["metric"]} | {p["method"]} | {p["value"]} | {_fmt(p["ours"])} | '
                  f'{p["source"]} |' for p in metrics['published']]
    else:
        lines.append('No published number for this dataset could be sourced (see '
                     'vggt4d_ros/replay/published.py).')
    if metrics['failed']:
        lines += ['', '## Failed sequences', '']
        lines += [f'- {name}: {metrics["sequences"][name]["error"]}'
                  for name in metrics['failed']]
    return '\n'.join(lines) + '\n'


def _dump(value: Any) -> str:
    import json
    return json.dumps(value, indent=2, default=str)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, content: dict[str, Any]) -> None:
    """Write atomically (a killed run never leaves a half-written result)."""
    tmp = path.with_suffix('.tmp')
    tmp.write_text(json.dumps(_json_safe(content), indent=2))
    tmp.replace(path)


def write_outputs(evaluation: 'Evaluation', results: dict[str, dict[str, Any]]
                  ) -> tuple[dict[str, Any], Path]:
    """Write metrics.json and report.md into the output folder; returns (metrics, report)."""
    config = evaluation.config
    mean = means(results)
    protocol = evaluation.protocol
    window = evaluation.settings
    metrics = {
        'dataset': config.dataset, 'davis_split': config.davis_split if config.dataset ==
        'davis' else None, 'root': str(config.root),
        'model': evaluation.description or next(
            (r['model'] for r in results.values() if r.get('model')), 'none (all failed)'),
        'stand_in': config.backend_factory is not None,
        'params_file': str(config.params) if config.params else None,
        'window_size': window.window_size, 'stride': window.stride,
        'protocol': list(protocol.notes) if protocol else [],
        'sequences': {name: {k: v for k, v in r.items() if k not in ('traceback',)}
                      for name, r in results.items()},
        'failed': [name for name, r in results.items() if r.get('status') != 'ok'],
        'mean': mean, 'published': _published(config.dataset, mean),
    }
    out = Path(config.out_dir)
    write_json(out / 'metrics.json', metrics)
    report = out / 'report.md'
    report.write_text(_report(evaluation, metrics))
    return metrics, report
