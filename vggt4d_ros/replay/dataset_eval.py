# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Benchmark evaluation: every sequence of a dataset through the engine, scored, resumable.

Per sequence the frames go through the same engine the node runs (parameters from the node's
file), then the sequence is scored on what its ground truth supports: DAVIS J/F on masks,
ATE/RPE after a Sim(3) Umeyama alignment with scale (the estimate is monocular and in VGGT's
scale-free units; aligned errors are in the ground truth's units), reconstruction accuracy /
completeness / distance on DyCheck.

Output directory::

    sequences/<name>/result.json   one per finished sequence (status ok or failed)
    sequences/<name>/trajectory.tum  the estimated trajectory (scale-free, engine frame)
    metrics.json, report.md          per-sequence results, means, published numbers

A rerun skips sequences whose result.json says ok for the same settings (resume after an
interruption); failed ones are run again. A failing sequence is recorded and the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
import json
from pathlib import Path
import sys
import time
import traceback
from typing import Any, Callable, Sequence

import numpy as np

from vggt4d_ros.replay import eval_runtime as rt
from vggt4d_ros.replay.dataset_report import write_json
from vggt4d_ros.replay.dataset_report import write_outputs
from vggt4d_ros.replay.datasets import plan_dataset
from vggt4d_ros.replay.datasets import PROTOCOLS
from vggt4d_ros.replay.datasets.base import MASKS
from vggt4d_ros.replay.datasets.base import RECONSTRUCTION
from vggt4d_ros.replay.datasets.base import SequenceData
from vggt4d_ros.replay.datasets.base import TRAJECTORY
from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.metrics import mask_metrics
from vggt4d_ros.replay.metrics import reconstruction_metrics
from vggt4d_ros.replay.metrics import trajectory_metrics
from vggt4d_ros.replay.outputs import tum_line

#: ``backend_factory(sequence) -> backend``: the test hook (a stand-in instead of VGGT4D).
BackendFactory = Callable[[SequenceData], Any]


@dataclass
class EvalConfig:
    """One evaluation run.

    Attributes:
        dataset: 'davis', 'vkitti', 'pointodyssey', 'dycheck', 'tum' or 'bonn'.
        root: dataset root folder.
        out_dir: output folder (results are kept there; reruns resume).
        weights: VGGT checkpoint (required unless ``backend_factory`` is given).
        params: the node's parameter file (window, mapper, pipeline, weights, device).
        sequences: sequence names (None: the protocol's list).
        davis_split: '2016', '2017' or 'all'.
        tum_source: 'auto', 'folder' or 'bag'.
        device: overrides the parameter file's device.
        window_size, stride: override the parameter file's window.
        force: rerun finished sequences too.
        backend_factory: test hook, see :data:`BackendFactory` (its numbers are not VGGT4D's).
        quiet: no progress lines.

    """

    dataset: str
    root: Path
    out_dir: Path
    weights: str | None = None
    params: Path | None = None
    sequences: Sequence[str] | None = None
    davis_split: str = '2017'
    tum_source: str = 'auto'
    device: str | None = None
    window_size: int | None = None
    stride: int | None = None
    force: bool = False
    backend_factory: BackendFactory | None = None
    quiet: bool = False


@dataclass
class EvalSummary:
    """What a run produced: metrics.json content, report path and failed sequence names."""

    metrics: dict[str, Any]
    report: Path
    failed: list[str] = field(default_factory=list)


def safe_name(name: str) -> str:
    """Folder name of a sequence ('Scene01/clone' -> 'Scene01__clone')."""
    return name.replace('/', '__').replace('\\', '__')


def _fingerprint(config: EvalConfig, params: dict[str, Any]) -> str:
    """Hash of everything that changes a sequence's numbers (resume only reuses equal ones)."""
    key = {'dataset': config.dataset, 'split': config.davis_split, 'weights': str(
        config.weights or params.get('weights', '')), 'params': params,
        'window': [config.window_size, config.stride],
        'stand_in': getattr(config.backend_factory, '__qualname__', None)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- scoring ----------------------------------------------------------------------------------


def score_masks(sequence: SequenceData, run: rt.SequenceRun) -> dict[str, Any]:
    """DAVIS J/F of every frame with a ground-truth mask."""
    predicted = {f.stamp_ns: f.mask for f in run.frames}
    truth = {frame.stamp_ns: load() for frame, load in zip(sequence.frames, sequence.load_mask)}
    scores = mask_metrics(predicted, truth)
    return {**scores.summary(), 'j': scores.j, 'f': scores.f}


def score_trajectory(sequence: SequenceData, run: rt.SequenceRun) -> dict[str, Any]:
    """ATE / RPE after Sim(3) Umeyama alignment with scale (evo), ground-truth units."""
    stamps = np.asarray([f.stamp_ns for f in run.frames], np.int64)
    metrics = trajectory_metrics(stamps, run.poses(), np.asarray(sequence.stamps_ns, np.int64),
                                 sequence.poses)
    return {**metrics.summary(), 'units': sequence.units}


def _points(depth: np.ndarray, k: np.ndarray, pose: np.ndarray, stride: int) -> np.ndarray:
    """World points [h,w,3] of a depth map sampled at every ``stride``-th camera pixel."""
    rows, cols = np.mgrid[0:depth.shape[0], 0:depth.shape[1]].astype(np.float64) * stride
    x = (cols - k[0, 2]) / k[0, 0] * depth
    y = (rows - k[1, 2]) / k[1, 1] * depth
    camera = np.stack([x, y, depth], axis=-1)
    return camera @ pose[:3, :3].T + pose[:3, 3]


def score_reconstruction(sequence: SequenceData, run: rt.SequenceRun) -> dict[str, Any]:
    """Accuracy / completeness / distance of the per-frame depth after the Sim(3) alignment.

    The Sim(3) is the Umeyama fit (with scale) of the estimated camera centres onto the
    ground-truth ones; predicted and ground-truth points are paired by pixel and kept where
    both depths are valid.
    """
    from vggt4d_ros.geometry.sim3 import umeyama

    estimate = run.poses()
    sim3 = umeyama(estimate[:, :3, 3], sequence.poses[:, :3, 3], with_scale=True)
    stride = rt.DEPTH_PIXEL_STRIDE
    predicted, truth = [], []
    for index, frame in enumerate(run.frames):
        if frame.depth is None or frame.intrinsics is None:
            raise ReplayError('the engine returned no depth for the reconstruction metrics')
        gt_depth = np.asarray(sequence.load_depth[index](), np.float64)[::stride, ::stride]
        pred_depth = frame.depth.astype(np.float64)
        if gt_depth.shape != pred_depth.shape:
            raise ReplayError(f'frame {index}: ground-truth depth {gt_depth.shape} and image '
                              f'sampling {pred_depth.shape} differ')
        valid = (gt_depth > 0) & (pred_depth > 0)
        pred = _points(pred_depth, frame.intrinsics, frame.pose, stride)[valid]
        predicted.append(sim3.apply(pred))
        truth.append(_points(gt_depth, sequence.intrinsics[index], sequence.poses[index],
                             stride)[valid])
    result = reconstruction_metrics(np.concatenate(predicted), np.concatenate(truth))
    return {**result, 'sim3_scale': float(sim3.scale), 'units': sequence.units}


SCORERS = {MASKS: score_masks, TRAJECTORY: score_trajectory,
           RECONSTRUCTION: score_reconstruction}


# -- running ----------------------------------------------------------------------------------


class Evaluation:
    """Runs one :class:`EvalConfig` (see the module docstring)."""

    def __init__(self, config: EvalConfig) -> None:
        self.config = config
        self.out = Path(config.out_dir)
        self.params = rt.read_params(config.params)
        self.settings = rt.engine_configs(self.params, config.window_size, config.stride)
        self.fingerprint = _fingerprint(config, self.params)
        self.protocol = PROTOCOLS.get(config.dataset)
        self._backend: Any = None
        self.description = ''
        if config.backend_factory is None:
            weights = config.weights or self.settings.weights
            if not weights:
                raise ReplayError(rt.NO_WEIGHTS)
            if not Path(weights).expanduser().is_file():  # fail before any sequence runs
                raise ReplayError(f'weights file {weights} does not exist')

    def log(self, text: str) -> None:
        if not self.config.quiet:
            print(f'[vggt4d-eval] {text}', file=sys.stderr, flush=True)

    def backend(self, sequence: SequenceData) -> Any:
        """Return the stand-in for this sequence, or the single VGGT4D model (built once)."""
        if self.config.backend_factory is not None:
            self.description = (f'STAND-IN backend {self.config.backend_factory.__module__}.'
                                f'{self.config.backend_factory.__qualname__} (not VGGT4D)')
            return self.config.backend_factory(sequence)
        if self._backend is None:
            self._backend, self.description = rt.build_backend(
                self.config.weights, self.settings, self.config.device)
            self.log(self.description)
        return self._backend

    def _settings_for(self, sequence: SequenceData) -> rt.EngineSettings:
        if self.protocol is not None and self.protocol.long_window \
                and self.config.window_size is None:
            return rt.long_window(self.settings, len(sequence.frames))
        return self.settings

    def run_sequence(self, name: str, load: Callable[[], SequenceData]) -> dict[str, Any]:
        """Load, run and score one sequence; the result record (status ok)."""
        started = time.perf_counter()
        sequence = load()
        settings = self._settings_for(sequence)
        backend = self.backend(sequence)
        frames = ((frame.stamp_ns, frame.load_rgb()) for frame in sequence.frames)
        run = rt.run_sequence(backend, frames, settings,
                              with_depth=RECONSTRUCTION in sequence.metrics,
                              progress=(lambda text: self.log(f'  {name}: {text}')))
        folder = self.out / 'sequences' / safe_name(name)
        (folder / 'trajectory.tum').write_text(''.join(
            tum_line(f.stamp_ns, f.pose) + '\n' for f in run.frames))
        record: dict[str, Any] = {
            'status': 'ok', 'sequence': name, 'frames': len(sequence.frames),
            'windows': run.windows, 'map_resets': run.map_resets,
            'window_size': settings.window_size, 'stride': settings.stride,
            'long_window': bool(self.protocol and self.protocol.long_window),
            'engine_seconds': run.seconds}
        for group in sequence.metrics:
            record[group] = SCORERS[group](sequence, run)
        record['seconds'] = time.perf_counter() - started
        record['model'] = self.description
        return record

    def run(self) -> EvalSummary:
        """Every planned sequence: skip finished ones, record failures, then aggregate."""
        plan = plan_dataset(self.config.dataset, self.config.root, self.config.sequences,
                            davis_split=self.config.davis_split,
                            tum_source=self.config.tum_source)
        results: dict[str, dict[str, Any]] = {}
        for number, (name, load) in enumerate(plan, start=1):
            folder = self.out / 'sequences' / safe_name(name)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / 'result.json'
            previous = _read_result(path)
            if previous.get('status') == 'ok' and previous.get('fingerprint') == \
                    self.fingerprint and not self.config.force:
                self.log(f'{number}/{len(plan)} {name}: done before, kept')
                results[name] = previous
                continue
            self.log(f'{number}/{len(plan)} {name}: running')
            try:
                record = self.run_sequence(name, load)
            except Exception as error:  # one sequence's failure must not lose the others
                record = {'status': 'failed', 'sequence': name,
                          'error': f'{type(error).__name__}: {error}',
                          'traceback': traceback.format_exc(limit=8)}
                self.log(f'{number}/{len(plan)} {name}: FAILED: {record["error"]}')
            else:
                self.log(f'{number}/{len(plan)} {name}: {headline(record)} '
                         f'({record["seconds"]:.1f} s)')
            record['fingerprint'] = self.fingerprint
            write_json(path, record)
            results[name] = record
        metrics, report = write_outputs(self, results)
        failed = [name for name, r in results.items() if r.get('status') != 'ok']
        return EvalSummary(metrics, report, failed)


def _read_result(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}  # a damaged result is simply redone


def headline(record: dict[str, Any]) -> str:
    """One line of a sequence's main numbers."""
    parts = []
    if MASKS in record:
        parts.append(f'J {record[MASKS]["j_mean"]:.3f} F {record[MASKS]["f_mean"]:.3f}')
    if TRAJECTORY in record:
        parts.append(f'ATE {record[TRAJECTORY]["ate_rmse"]:.4f}')
    if RECONSTRUCTION in record:
        rec = record[RECONSTRUCTION]
        parts.append(f'acc {rec["accuracy"]:.4f} comp {rec["completeness"]:.4f} '
                     f'dist {rec["distance"]:.4f}')
    return ', '.join(parts) or 'no metrics'


def run_evaluation(config: EvalConfig) -> EvalSummary:
    """Evaluate ``config.dataset`` (see :class:`Evaluation`)."""
    return Evaluation(config).run()
