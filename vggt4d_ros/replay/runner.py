# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Offline, deterministic replay of a rosbag2 through the perception engine, plus evaluation.

The bag is read with ``rosbags`` (no DDS, no clock): every image goes through the engine in
replay mode (every frame is a keyframe, nothing is dropped), per-frame outputs are written as
they come out (see :mod:`vggt4d_ros.replay.outputs`), then metrics against whatever ground
truth the bag (or a TUM file / PNG folder) holds, ``metrics.json`` and the report.

On any error the outputs written so far stay (output bag closed properly, TUM and PNGs
flushed) and ``metrics.json`` records the error; the error is re-raised as a ReplayError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import replace
import json
from pathlib import Path
import sys
import time
from typing import Any, Callable, Iterator

import numpy as np

from vggt4d_ros.replay import messages as m
from vggt4d_ros.replay import planner_messages as pm
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay.bag import ImageFrame
from vggt4d_ros.replay.bag import Storage
from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.inputs import validate_bag_options
from vggt4d_ros.replay.inputs import validate_options
from vggt4d_ros.replay.metrics import mask_metrics
from vggt4d_ros.replay.metrics import MaskMetrics
from vggt4d_ros.replay.metrics import trajectory_metrics
from vggt4d_ros.replay.metrics import TrajectoryMetrics
from vggt4d_ros.replay.outputs import read_mask_dir
from vggt4d_ros.replay.outputs import read_tum
from vggt4d_ros.replay.outputs import ReplayOutputs
from vggt4d_ros.replay.parameters import RANDOM_WEIGHTS_WARNING
from vggt4d_ros.replay.parameters import replay_parameters
from vggt4d_ros.replay.parameters import WEIGHTS_ENV  # noqa: F401 (re-exported for the CLI)
from vggt4d_ros.replay.report import ReportInputs
from vggt4d_ros.replay.report import write_report
from vggt4d_ros.replay.scale_run import BagScaleFeed
from vggt4d_ros.replay.scale_run import scale_metrics
from vggt4d_ros.replay.scale_run import scale_overrides
from vggt4d_ros.replay.scale_run import ScaleTrack
from vggt4d_ros.replay.track_evaluation import evaluate_tracks
from vggt4d_ros.replay.track_evaluation import GT_OBJECT_TOPICS
from vggt4d_ros.replay.track_evaluation import read_truth_objects
from vggt4d_ros.replay.track_evaluation import TrackEvaluation
from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.runtime.backend import BackendError
from vggt4d_ros.runtime.backend import build_backend
from vggt4d_ros.runtime.backend import LoadedBackend
from vggt4d_ros.runtime.config import EngineConfig
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.parameters import engine_config_from_parameters
from vggt4d_ros.runtime.sink import EngineOutput
from vggt4d_ros.runtime.sink import MaskOutput
from vggt4d_ros.runtime.window import Window

GT_POSE_TOPICS = ('/ground_truth/pose', '/ground_truth/odometry', '/gt/pose', '/groundtruth')
GT_MASK_TOPICS = ('/ground_truth/dynamic_mask', '/ground_truth/mask', '/gt/dynamic_mask')


@dataclass
class ReplayConfig:
    """One replay run.

    Attributes:
        bag: input rosbag2 directory (mcap or sqlite3).
        out_dir: output directory.
        image_topic: camera topic (None: auto-detect).
        weights: VGGT checkpoint; None: the parameter file's, else ``$VGGT4D_WEIGHTS``;
            empty: none (without a parameter file: the tiny model with seeded random weights).
        params_file: node parameter file (see :mod:`vggt4d_ros.replay.parameters`); None:
            defaults with every frame a keyframe.
        every_frame: apply the replay window policy (every frame a keyframe) on top of the
            parameter file.
        device: 'auto', 'cpu', 'cuda', 'cuda:1', ... (None: the parameter file's).
        window_size, stride: sliding window (None: the parameter file's).
        max_frames: stop after this many images (None: all).
        refine: run the stage-3 mask refinement (off: faster, coarse masks).
        storage: output bag storage.
        gt_pose_topic / gt_tum: ground-truth trajectory (None: auto-detect in the bag).
        gt_mask_topic / gt_mask_dir: ground-truth masks (None: auto-detect in the bag).
        copy_images: store the input images in the output bag.
        network_width: None: the parameter file's (default VGGT's 518 px); a smaller
            multiple of 14 for fast CPU runs.
        samples: frames shown in the report's overlay figure.
        quiet: no progress lines.
        scale_source, camera_height: metric scale (``scale.source``,
            ``scale.camera_height.camera_height_m``; None: the parameter file's).
        depth_topic, odom_topic: the bag's depth and odometry (TF or nav_msgs/Odometry) topics
            for the scale source (None: the parameter file's, then the node's defaults).
        perception: planner outputs (dynamic cloud, grids, tracks) into the output bag and
            tracking metrics; None: the parameter file's ``perception.enabled``.
        gt_objects_topic: ground-truth objects (ObstacleArray; None: auto-detect).
        image_topics, camera_names, rig_slop: a multi-camera rig (the ``image_topics``,
            ``camera_names`` and ``rig_slop_s`` parameters; None: the parameter file's;
            :mod:`vggt4d_ros.replay.rig_runner` replays it).

    """

    bag: Path
    out_dir: Path
    image_topic: str | None = None
    weights: str | None = None
    params_file: Path | None = None
    every_frame: bool = False
    device: str | None = None
    window_size: int | None = None
    stride: int | None = None
    max_frames: int | None = None
    refine: bool = True
    storage: Storage = 'mcap'
    gt_pose_topic: str | None = None
    gt_tum: Path | None = None
    gt_mask_topic: str | None = None
    gt_mask_dir: Path | None = None
    copy_images: bool = True
    network_width: int | None = None
    samples: int = 4
    quiet: bool = False
    scale_source: str | None = None
    camera_height: float | None = None
    depth_topic: str | None = None
    odom_topic: str | None = None
    perception: bool | None = None
    gt_objects_topic: str | None = None
    image_topics: list[str] | None = None
    camera_names: list[str] | None = None
    rig_slop: float | None = None


@dataclass
class ReplaySummary:
    """What a run produced.

    Attributes:
        out_dir: output directory; report: report.md path; metrics: the metrics.json content.
        frames_in / frames_out: images read / frames output with a mask and a pose.

    """

    out_dir: Path
    report: Path
    metrics: dict[str, Any]
    frames_in: int
    frames_out: int


def _log(config: ReplayConfig, text: str) -> None:
    if not config.quiet:
        print(f'[vggt4d-replay] {text}', file=sys.stderr, flush=True)


def _limited(frames: Iterator[ImageFrame], limit: int | None) -> Iterator[ImageFrame]:
    for index, frame in enumerate(frames):
        if limit is not None and index >= limit:
            return
        yield frame


@dataclass
class _RunState:
    """Mutable bookkeeping of one run (for metrics.json, the report and partial results)."""

    frames_in: int = 0
    windows: int = 0
    stage_seconds: dict[str, list[float]] = field(default_factory=dict)
    sample_rgb: dict[int, np.ndarray] = field(default_factory=dict)
    image_topic: str = ''
    image_count: int = 0
    window: Any = None
    warnings: list[str] = field(default_factory=list)
    scale_track: ScaleTrack = field(default_factory=ScaleTrack)
    scale_feed: BagScaleFeed | None = None
    tracks: list[tuple[int, list[Track]]] = field(default_factory=list)
    perception_stats: dict[str, Any] = field(default_factory=dict)

    def add_timings(self, timings: dict[str, float], prefix: str = '') -> None:
        for name, seconds in timings.items():
            self.stage_seconds.setdefault(prefix + name, []).append(float(seconds))


def _sample_indices(count: int, samples: int) -> set[int]:
    if count <= 0 or samples <= 0:
        return set()
    return {int(round(i)) for i in np.linspace(0, count - 1, min(samples, count))}


def parameters(config: ReplayConfig) -> dict[str, Any]:
    """Return the flat node parameters of this run (parameter file plus options given)."""
    overrides: dict[str, Any] = {}
    if config.device is not None:
        overrides['device'] = config.device
    if config.window_size is not None:
        overrides['window.window_size'] = config.window_size
    if config.stride is not None:
        overrides['window.stride'] = config.stride
    if not config.refine:
        overrides['pipeline.refine_enabled'] = False
    if config.network_width is not None:
        overrides['network_width'] = config.network_width
    overrides.update(scale_overrides(config.scale_source, config.camera_height))
    for name, value in (('image_topics', config.image_topics),
                        ('camera_names', config.camera_names), ('rig_slop_s', config.rig_slop)):
        if value is not None:
            overrides[name] = list(value) if isinstance(value, (list, tuple)) else value
    return replay_parameters(config.params_file, config.weights, overrides, config.every_frame)


def engine_config(config: ReplayConfig) -> EngineConfig:
    """Build the EngineConfig the node would build from :func:`parameters` (same function).

    Raises:
        ReplayError: a parameter is invalid (the message names it).

    """
    try:
        engine = engine_config_from_parameters(parameters(config))
    except ValueError as error:
        raise ReplayError(str(error)) from error
    if config.perception is not None:
        engine = replace(engine, perception=replace(engine.perception,
                                                    enabled=config.perception))
    return engine


class _OutputSink:
    """Engine sink of a replay: writes every mapped frame, then the window's path and map."""

    def __init__(self, outputs: ReplayOutputs, engine: Callable[[], PerceptionEngine],
                 state: _RunState, rgb_by_stamp: dict[int, np.ndarray],
                 output_from_world: np.ndarray) -> None:
        self._outputs = outputs
        self._engine = engine
        self._state = state
        self._rgb_by_stamp = rgb_by_stamp
        self._output_from_world = output_from_world

    def masks_ready(self, window: Window, masks: list[MaskOutput]) -> None:
        """Masks are written with their poses (window_mapped)."""

    def window_mapped(self, output: EngineOutput) -> None:
        self._state.windows += 1
        self._state.add_timings(output.result.timings)
        self._state.add_timings(output.timings, prefix='engine.')
        self._state.scale_track.add(output)
        for frame in output.frames:
            self._outputs.write_frame(frame.stamp_ns, frame.frame_id, frame.mask, frame.pose,
                                      self._rgb_by_stamp.pop(frame.stamp_ns, None))
        # The map right after this window (the engine takes it on its worker: with the
        # output stage, the mapper may already hold later windows).
        points, colors = output.static_map
        self._outputs.write_window_end(points, colors)
        if output.perception is not None:
            self._state.add_timings(output.perception.timings, prefix='perception.')
            self._outputs.write_perception(output.perception, self._output_from_world)
            if output.perception.stamp_ns is not None:
                self._state.tracks.append((output.perception.stamp_ns,
                                           output.perception.tracks))

    def warning(self, warning: Any) -> None:
        self._state.warnings.append(warning.text)


def _process(config: ReplayConfig, engine_config: EngineConfig, reader: BagReader,
             outputs: ReplayOutputs, backend: Any, state: _RunState,
             progress: Callable[[str], None]) -> PerceptionEngine:
    """Feed every image into the engine; returns the engine (for the final map)."""
    rgb_by_stamp: dict[int, np.ndarray] = {}
    engine = PerceptionEngine.from_config(backend, stage_for_storage(engine_config,
                                                                     config.storage))
    engine.sink = _OutputSink(outputs, lambda: engine, state, rgb_by_stamp,
                              engine_config.perception.output_from_world)
    engine.static_map_due = lambda update: True  # every window's end writes the map
    try:
        _feed(config, engine, reader, outputs, state, rgb_by_stamp, progress)
    except BaseException as error:
        close_engine(engine, error)
        raise
    close_engine(engine)
    return engine


def stage_for_storage(cfg: EngineConfig, storage: Storage) -> EngineConfig:
    """Return the engine config with the output stage off for a sqlite3 output bag.

    The sink writes the bag from the stage's thread, and Python's sqlite3 connections refuse
    any thread but the one that opened them; mcap writes from any (one at a time).
    """
    if storage != 'sqlite3' or not cfg.output_stage.run_async:
        return cfg
    return replace(cfg, output_stage=replace(cfg.output_stage, run_async=False))


def close_engine(engine: PerceptionEngine, failure: BaseException | None = None) -> None:
    """End the engine's output stage: what it accepted is written before the outputs close.

    Its error is raised, unless ``failure`` is already on its way out: that one is raised,
    with the stage's error as its context.
    """
    try:
        engine.close()
    except Exception:  # noqa: B902 - chained to the failure being reported
        if failure is None:
            raise
        raise failure


def _feed(config: ReplayConfig, engine: PerceptionEngine, reader: BagReader,
          outputs: ReplayOutputs, state: _RunState, rgb_by_stamp: dict[int, np.ndarray],
          progress: Callable[[str], None]) -> None:
    """Push every image of the bag through the engine, then flush it."""
    state.scale_feed = feed = BagScaleFeed(reader, engine.metric, parameters(config),
                                           config.depth_topic, config.odom_topic)
    wanted = _sample_indices(min(state.image_count, config.max_frames or state.image_count),
                             config.samples)
    started = time.perf_counter()
    for index, frame in enumerate(_limited(reader.images(state.image_topic),
                                           config.max_frames)):
        state.frames_in += 1
        rgb_by_stamp[frame.stamp_ns] = frame.rgb
        if index in wanted:
            state.sample_rgb[frame.stamp_ns] = frame.rgb
        feed.before_image(frame.stamp_ns, frame.frame_id)
        if engine.push(frame.rgb, frame.stamp_ns, frame.frame_id):
            progress(f'frame {index + 1}/{state.image_count}: {state.windows} windows, '
                     f'{len(outputs.stamps)} frames out, '
                     f'{time.perf_counter() - started:.1f} s')
    if state.frames_in == 0:
        raise ReplayError(f'bag {reader.path}: topic {state.image_topic} has no images')
    engine.flush()
    if engine.perception is not None:
        state.perception_stats = {**engine.perception.stats.__dict__,
                                  'tracker': engine.perception.tracker.stats.__dict__}
    progress(f'done: {state.frames_in} frames in, {len(outputs.stamps)} out, '
             f'{state.windows} windows, {time.perf_counter() - started:.1f} s')
    return engine


def replay_backend(cfg: EngineConfig, backend: LoadedBackend | None) -> LoadedBackend:
    """Return the injected backend, else build the one ``cfg`` describes.

    Raises:
        ReplayError: the backend cannot be built (bad weights, device, ...).

    """
    if backend is not None:
        return backend
    try:
        return build_backend(cfg.backend, cfg.pipeline)
    except BackendError as error:
        raise ReplayError(str(error)) from error


def run_replay(config: ReplayConfig, backend: LoadedBackend | None = None) -> ReplaySummary:
    """Replay ``config.bag`` and write every output into ``config.out_dir``.

    Args:
        config: the run.
        backend: a ready backend (tests inject one); default: the one the parameters
            describe (:func:`vggt4d_ros.runtime.backend.build_backend`).

    Raises:
        ReplayError: bad bag (corrupt, truncated, empty), missing topic, bad weights. The
            outputs written before the failure are kept.

    """
    validate_options(config)
    out_dir = Path(config.out_dir)
    engine_cfg = engine_config(config)
    state = _RunState(window=engine_cfg.window)
    progress = (lambda text: _log(config, text))
    with BagReader(config.bag) as reader:
        validate_bag_options(config, reader)
        state.image_topic = reader.pick_image_topic(config.image_topic)
        state.image_count = reader.message_count(state.image_topic)
        if state.image_count == 0:
            raise ReplayError(f'bag {reader.path} is empty: topic {state.image_topic} has '
                              f'no messages')
        out_dir.mkdir(parents=True, exist_ok=True)
        backend = replay_backend(engine_cfg, backend)
        progress(f'{reader.path}: {state.image_count} images on {state.image_topic}; '
                 f'{backend.description}')
        if backend.random_weights:
            progress(RANDOM_WEIGHTS_WARNING)
        outputs = ReplayOutputs(out_dir, config.storage, config.copy_images)
        try:
            engine = _process(config, engine_cfg, reader, outputs, backend.backend, state,
                              progress)
            points, colors = engine.mapper.map.points()
            map_points = outputs.write_ply(points, colors)
            stats = engine.stats
        except Exception as error:
            outputs.close()
            _write_failure(out_dir, config, state, outputs, error)
            if isinstance(error, ReplayError):
                raise
            raise ReplayError(f'replay of {config.bag} failed after {state.frames_in} frames '
                              f'({len(outputs.stamps)} written to {out_dir}): {error}'
                              ) from error
        outputs.close()
        evaluation = evaluate(config, reader, outputs.stamps, outputs.poses, outputs.masks)
        evaluation.scale = scale_metrics(
            engine.metric, state.scale_track, evaluation.trajectory,
            (np.asarray(outputs.stamps), np.asarray(outputs.poses)),
            _truth_poses(config, reader), state.scale_feed)
        if engine_cfg.perception.enabled:
            evaluate_perception(config, reader, evaluation, state.tracks,
                                engine_cfg.perception.output_from_world)
        else:
            evaluation.tracks_note = 'perception off'
    metrics = _metrics_json(config, state, outputs, backend, evaluation,
                            {'engine': stats.__dict__, 'map_points': map_points,
                             'input_resets': state.warnings, 'scale': evaluation.scale,
                             'perception': (state.perception_stats
                                            if engine_cfg.perception.enabled else None)})
    (out_dir / 'metrics.json').write_text(json.dumps(metrics, indent=2))
    report = _report(config, state, outputs, backend, evaluation)
    progress(f'report: {report}')
    return ReplaySummary(out_dir, report, metrics, state.frames_in, len(outputs.stamps))


@dataclass
class Evaluation:
    """Metrics against ground truth (None with a note when unavailable)."""

    trajectory: TrajectoryMetrics | None = None
    trajectory_note: str = ''
    masks: MaskMetrics | None = None
    mask_note: str = ''
    truth_masks: dict[int, np.ndarray] = field(default_factory=dict)
    scale: dict[str, Any] | None = None  # metrics.json['scale'] (replay/scale_run.py)
    tracks: TrackEvaluation | None = None
    tracks_note: str = ''
    truth_poses: tuple[np.ndarray, np.ndarray] | None = None


def _auto_topic(reader: BagReader, names: tuple[str, ...], types: tuple[str, ...]
                ) -> str | None:
    topics = reader.topics()
    return next((t for t in names if topics.get(t) in types), None)


def _truth_poses(config: ReplayConfig, reader: BagReader) -> tuple[np.ndarray, np.ndarray]:
    if config.gt_tum is not None:
        return read_tum(config.gt_tum)
    topic = config.gt_pose_topic or _auto_topic(
        reader, GT_POSE_TOPICS, (m.POSE_STAMPED, m.ODOMETRY, m.TF_MESSAGE, m.PATH))
    if topic is None:
        return np.zeros(0, np.int64), np.zeros((0, 4, 4))
    return reader.poses(topic)


def _truth_masks(config: ReplayConfig, reader: BagReader, stamps: list[int]
                 ) -> dict[int, np.ndarray]:
    """Ground-truth masks by stamp; PNGs named ``<stamp_ns>.png`` or numbered in frame order."""
    if config.gt_mask_dir is not None:
        named = read_mask_dir(Path(config.gt_mask_dir))
        if set(named) & set(stamps):
            return named
        # Not named by stamp: take them in file-name order, one per output frame.
        return dict(zip(stamps, (named[key] for key in sorted(named))))
    topic = config.gt_mask_topic or _auto_topic(reader, GT_MASK_TOPICS, (m.IMAGE,))
    if topic is None:
        return {}
    wanted = set(stamps)
    return {s: mask for s, mask in reader.mono_images(topic) if s in wanted}


def evaluate(config: ReplayConfig, reader: BagReader, stamps: list[int],
             poses: list[np.ndarray], masks: dict[int, np.ndarray]) -> Evaluation:
    """Trajectory and mask metrics for the frames that were output."""
    result = Evaluation()
    try:
        ref_stamps, ref_poses = _truth_poses(config, reader)
        result.truth_poses = (ref_stamps, ref_poses)
        if len(ref_stamps) == 0:
            result.trajectory_note = 'no ground-truth pose topic or TUM file'
        elif len(stamps) < 3:
            result.trajectory_note = f'only {len(stamps)} estimated poses'
        else:
            result.trajectory = trajectory_metrics(np.asarray(stamps), np.stack(poses),
                                                   ref_stamps, ref_poses)
    except (ValueError, ReplayError) as error:
        result.trajectory_note = str(error)
    try:
        result.truth_masks = _truth_masks(config, reader, stamps)
        if result.truth_masks:
            result.masks = mask_metrics(masks, result.truth_masks)
        else:
            result.mask_note = 'no ground-truth mask topic or PNG folder'
    except (ValueError, OSError, ReplayError) as error:
        result.mask_note = str(error)
    return result


def evaluate_perception(config: ReplayConfig, reader: BagReader, evaluation: Evaluation,
                        tracks: list[tuple[int, list[Track]]],
                        output_from_world: np.ndarray) -> None:
    """Track metrics against the ground-truth objects topic (into ``evaluation``)."""
    topic = config.gt_objects_topic or _auto_topic(reader, GT_OBJECT_TOPICS,
                                                   (pm.OBSTACLE_ARRAY,))
    if topic is None:
        evaluation.tracks_note = 'no ground-truth objects topic'
        return
    if evaluation.trajectory is None or evaluation.truth_poses is None:
        evaluation.tracks_note = ('no trajectory alignment to take the tracks to the frame '
                                  f'of the ground truth ({evaluation.trajectory_note})')
        return
    try:
        truth = read_truth_objects(reader, topic)
    except (ValueError, ReplayError) as error:
        evaluation.tracks_note = str(error)
        return
    ref_stamps, ref_poses = evaluation.truth_poses
    cameras = {int(s): pose[:3, 3] for s, pose in zip(ref_stamps, ref_poses)}
    evaluation.tracks = evaluate_tracks(tracks, truth, evaluation.trajectory.alignment,
                                        output_from_world, cameras)
    evaluation.tracks_note = ''


def _metrics_json(config: ReplayConfig, state: _RunState, outputs: ReplayOutputs,
                  backend: LoadedBackend | RecordedModel, evaluation: Evaluation,
                  extra: dict[str, Any]) -> dict[str, Any]:
    timings = {name: {'mean_s': float(np.mean(v)), 'total_s': float(np.sum(v)),
                      'count': len(v)} for name, v in state.stage_seconds.items()}
    return {
        'bag': str(config.bag), 'image_topic': state.image_topic,
        'model': backend.description, 'random_weights': backend.random_weights,
        'warning': RANDOM_WEIGHTS_WARNING if backend.random_weights else None,
        'window_size': state.window.window_size if state.window else None,
        'stride': state.window.stride if state.window else None,
        'frames_in': state.frames_in, 'frames_out': len(outputs.stamps),
        'windows': state.windows, 'bag_messages': dict(outputs.bag.counts),
        'trajectory': (evaluation.trajectory.summary() if evaluation.trajectory
                       else {'note': evaluation.trajectory_note}),
        'masks': (evaluation.masks.summary() if evaluation.masks
                  else {'note': evaluation.mask_note}),
        'tracks': ({**evaluation.tracks.metrics.to_dict(),
                    'match_distance': evaluation.tracks.match_distance,
                    'units': 'ground truth (after the trajectory Sim(3) alignment)'}
                   if evaluation.tracks else {'note': evaluation.tracks_note}),
        'timings': timings, **extra,
    }


def _write_failure(out_dir: Path, config: ReplayConfig, state: _RunState,
                   outputs: ReplayOutputs, error: Exception) -> None:
    """metrics.json of a failed run: what was done before the error."""
    record = {'bag': str(config.bag), 'image_topic': state.image_topic,
              'error': f'{type(error).__name__}: {error}', 'frames_in': state.frames_in,
              'frames_out': len(outputs.stamps), 'windows': state.windows,
              'bag_messages': dict(outputs.bag.counts)}
    (out_dir / 'metrics.json').write_text(json.dumps(record, indent=2))


def _report(config: ReplayConfig, state: _RunState, outputs: ReplayOutputs,
            backend: LoadedBackend | RecordedModel, evaluation: Evaluation) -> Path:
    samples = []
    for stamp, rgb in sorted(state.sample_rgb.items()):
        if stamp in outputs.masks:
            samples.append((stamp, rgb, outputs.masks[stamp], evaluation.truth_masks.get(stamp)))
    facts = [('bag', f'`{config.bag}`'), ('image topic', f'`{state.image_topic}`'),
             ('model', backend.description),
             ('window / stride', (f'{state.window.window_size} / {state.window.stride}'
                                  if state.window else 'node parameters')),
             ('frames in / out', f'{state.frames_in} / {len(outputs.stamps)}'),
             ('windows', str(state.windows)),
             ('outputs', '`output_bag/`, `trajectory.tum`, `masks/`, `static_map.ply`, '
                         '`metrics.json`')]
    estimate = np.stack([p[:3, 3] for p in outputs.poses]) if outputs.poses else None
    inputs = ReportInputs(title='VGGT4D replay report', facts=facts,
                          random_weights=backend.random_weights,
                          trajectory=evaluation.trajectory,
                          trajectory_note=evaluation.trajectory_note, masks=evaluation.masks,
                          mask_note=evaluation.mask_note, estimate_xyz=estimate,
                          stage_seconds=state.stage_seconds, samples=samples,
                          scale=evaluation.scale,
                          tracks=evaluation.tracks, tracks_note=evaluation.tracks_note)
    return write_report(config.out_dir, inputs)


# -- DDS mode: the node did the work, these write the same outputs from what it published ---


@dataclass
class RecordedModel:
    """What ran in the node, for metrics.json and the report of a DDS run."""

    description: str
    random_weights: bool


def dds_model(flat: dict[str, Any]) -> RecordedModel:
    """Describe the node's model from the parameters it was given."""
    weights = flat.get('weights') or ''
    model = flat.get('model_config', 'full')
    if weights:
        return RecordedModel(f'VGGT {model}, weights {weights} (node over DDS)', False)
    return RecordedModel(f'VGGT {model}, RANDOM weights (node over DDS)', True)


def finish_recorded_run(config: ReplayConfig, masks: dict[int, np.ndarray],
                        poses: dict[int, np.ndarray],
                        static_map: tuple[np.ndarray, np.ndarray] | None, frames_sent: int,
                        model: RecordedModel) -> ReplaySummary:
    """Write outputs, metrics and report from masks/poses recorded off the node.

    Frames the node's keyframe gate skipped get no mask and no pose by design: with the gate
    on (``window.min_parallax_px`` or ``window.max_keyframe_interval_s`` above 0) missing
    frames are only counted in metrics.json.

    Raises:
        ReplayError: with the gate off, some sent frame got no mask or no pose (listing how
            many are missing); the outputs of the frames that did arrive are written first.

    """
    out_dir = Path(config.out_dir)
    window = engine_config(config).window
    gate_on = window.min_parallax_px > 0 or window.max_keyframe_interval_s > 0
    state = _RunState(frames_in=frames_sent, window=window)
    backend = model
    outputs = ReplayOutputs(out_dir, config.storage, config.copy_images)
    with BagReader(config.bag) as reader:
        state.image_topic = reader.pick_image_topic(config.image_topic)
        state.image_count = reader.message_count(state.image_topic)
        wanted = _sample_indices(frames_sent, config.samples)
        sent: list[int] = []
        try:
            for index, frame in enumerate(_limited(reader.images(state.image_topic),
                                                   frames_sent)):
                sent.append(frame.stamp_ns)
                if index in wanted:
                    state.sample_rgb[frame.stamp_ns] = frame.rgb
                if frame.stamp_ns in masks and frame.stamp_ns in poses:
                    outputs.write_frame(frame.stamp_ns, frame.frame_id, masks[frame.stamp_ns],
                                        poses[frame.stamp_ns], frame.rgb)
            points, colors = static_map if static_map is not None else (np.zeros((0, 3)),
                                                                        np.zeros((0, 3)))
            outputs.write_window_end(points, colors)
            map_points = outputs.write_ply(points, colors)
        finally:
            outputs.close()
        missing = [s for s in sent if s not in masks or s not in poses]
        evaluation = evaluate(config, reader, outputs.stamps, outputs.poses, outputs.masks)
    metrics = _metrics_json(config, state, outputs, backend, evaluation,
                            {'mode': 'dds', 'map_points': map_points,
                             'frames_missing': len(missing)})
    (out_dir / 'metrics.json').write_text(json.dumps(metrics, indent=2))
    report = _report(config, state, outputs, backend, evaluation)
    if missing and not gate_on:
        raise ReplayError(f'DDS replay of {config.bag}: {len(missing)} of {len(sent)} frames '
                          f'got no mask or pose from the node (see {out_dir / "node.log"})')
    return ReplaySummary(out_dir, report, metrics, frames_sent, len(outputs.stamps))
