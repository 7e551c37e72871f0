# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Offline replay of a multi-camera bag (``vggt4d-replay BAG --image-topics A B``).

The rig is the engine config's :class:`vggt4d_ros.runtime.rig.RigConfig`: the node's
``image_topics``, ``camera_names``, ``rig_extrinsics``, ``rig_slop_s`` and ``rig_queue_size``
from the ``--params`` file, ``--image-topics``, ``--camera-names`` and ``--rig-slop`` overriding
it (the node's ``rig_sync`` does not apply: the replay always groups with the built-in
grouping). The cameras' images are read in stamp order, grouped into rig steps by
:class:`vggt4d_ros.runtime.rig.RigGrouper` (frames without a complete group
are counted, never processed) and fed to the engine as T steps x N views per window
(docs/method.md section 7). Outputs: per camera ``<out>/<camera>/`` (masks, that camera's
``trajectory.tum`` and output bag, as a single-camera replay writes them), the rig trajectory
``<out>/rig_trajectory.tum`` (``base_link`` when the extrinsics are known, else the reference
camera), ``static_map.ply`` from all cameras, ``metrics.json`` with the per-camera mask and
trajectory scores, and the report. With perception on (``--perception``), the planner outputs
of the whole rig (one dynamic cloud per step with every camera's points, the grids and the
tracks, stamped with the step: the reference camera's stamp) go into the reference camera's
output bag on the single-camera replay's topics, and ``metrics.json`` gets the perception
counters (no track metrics yet: the synthetic rig bag has no ground-truth objects). Ground
truth per camera: ``/ground_truth/<camera>/pose`` and ``/ground_truth/<camera>/dynamic_mask``
when the bag has them (the synthetic rig bag does, :mod:`vggt4d_ros.replay.synthetic_rig`).
Extrinsics: ``rig_extrinsics`` when given, else ``base_frame -> <image frame_id>`` (latest) from
the bag's TF as the node looks them up: ``/tf_static`` and ``/tf`` up to the first image in the
node's TF tree (``replay/bag_tf.py``), so a chain ``base_link -> camera_link ->
camera_optical_frame`` resolves; used when every camera's resolves.
"""

from __future__ import annotations

from dataclasses import replace
import heapq
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay.bag import ImageFrame
from vggt4d_ros.replay.bag import IMAGE_TYPES
from vggt4d_ros.replay.bag_tf import BagTf
from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.inputs import validate_options
from vggt4d_ros.replay.outputs import ReplayOutputs
from vggt4d_ros.replay.outputs import tum_line
from vggt4d_ros.replay.report import ReportInputs
from vggt4d_ros.replay.report import write_report
from vggt4d_ros.replay.runner import close_engine
from vggt4d_ros.replay.runner import engine_config
from vggt4d_ros.replay.runner import evaluate
from vggt4d_ros.replay.runner import Evaluation
from vggt4d_ros.replay.runner import parameters
from vggt4d_ros.replay.runner import ReplayConfig
from vggt4d_ros.replay.runner import replay_backend
from vggt4d_ros.replay.runner import ReplaySummary
from vggt4d_ros.replay.runner import stage_for_storage
from vggt4d_ros.runtime.backend import LoadedBackend
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.rig import base_poses
from vggt4d_ros.runtime.rig import RigGrouper
from vggt4d_ros.runtime.rig import RigSetup
from vggt4d_ros.runtime.sink import EngineOutput


class _RigSink:
    """Writes each camera's frames into its outputs as windows are mapped."""

    def __init__(self, outputs: dict[str, ReplayOutputs], rgb: dict[tuple[int, int], Any],
                 wanted: set[int], output_from_world: np.ndarray) -> None:
        self.outputs = outputs
        self.output_from_world = output_from_world
        self.rgb = rgb
        self.wanted = wanted  # reference-camera frame numbers shown in the report
        self.samples: dict[int, np.ndarray] = {}
        self._reference_frames = 0
        self.windows = 0
        self.warnings: list[str] = []
        self.stage_seconds: dict[str, list[float]] = {}

    def masks_ready(self, window, masks) -> None:
        """Masks are written with their poses."""

    def window_mapped(self, output: EngineOutput) -> None:
        self.windows += 1
        for name, seconds in {**output.result.timings, **output.timings}.items():
            self.stage_seconds.setdefault(name, []).append(float(seconds))
        for frame in output.frames:
            rgb = self.rgb.pop((frame.view, frame.stamp_ns), None)
            if frame.view == 0:
                if self._reference_frames in self.wanted and rgb is not None:
                    self.samples[frame.stamp_ns] = rgb
                self._reference_frames += 1
            self.outputs[frame.camera].write_frame(frame.stamp_ns, frame.frame_id, frame.mask,
                                                   frame.pose, rgb)
        if output.perception is not None:  # the rig's planner outputs: reference camera's bag
            reference = next(iter(self.outputs.values()))
            reference.write_perception(output.perception, self.output_from_world)

    def warning(self, warning) -> None:
        self.warnings.append(warning.text)


def _merged(reader: BagReader, topics: list[str], limit: int | None
            ) -> Iterator[tuple[int, int, ImageFrame]]:
    """(stamp, view, frame) of every camera in stamp order (``limit`` steps' worth)."""
    def stream(view: int, topic: str) -> Iterator[tuple[int, int, ImageFrame]]:
        for frame in reader.images(topic):
            yield frame.stamp_ns, view, frame

    streams = [stream(view, topic) for view, topic in enumerate(topics)]
    for count, item in enumerate(heapq.merge(*streams, key=lambda entry: entry[:2])):
        if limit is not None and count >= limit * len(topics):
            return
        yield item


def _bag_extrinsics(reader: BagReader, base_frame: str, frame_ids: list[str],
                    stamp_ns: int) -> np.ndarray | None:
    """[N,4,4] ``base_frame`` -> camera frames from the bag's TF (None if any is missing).

    The node's lookup: latest, in one TF tree holding ``/tf_static`` and ``/tf`` up to
    ``stamp_ns`` (the first image), chains resolved.
    """
    if not all(frame_ids):
        return None
    tf = BagTf(reader)
    tf.advance(stamp_ns)
    poses = [tf.find(base_frame, frame_id, 0) for frame_id in frame_ids]
    return None if any(pose is None for pose in poses) else np.stack(poses)


def _camera_evaluation(config: ReplayConfig, reader: BagReader, name: str, reference: bool,
                       outputs: ReplayOutputs) -> Evaluation:
    """Scores of one camera against its ground truth (per-camera topics, else the bag's)."""
    topics = reader.topics()
    pose_topic, mask_topic = f'/ground_truth/{name}/pose', f'/ground_truth/{name}/dynamic_mask'
    per_camera = replace(config, gt_pose_topic=pose_topic if pose_topic in topics else None,
                         gt_mask_topic=mask_topic if mask_topic in topics else None)
    if not reference and (per_camera.gt_pose_topic is None or per_camera.gt_mask_topic is None):
        return Evaluation(trajectory_note='no per-camera ground truth',
                          mask_note='no per-camera ground truth')
    return evaluate(per_camera, reader, outputs.stamps, outputs.poses, outputs.masks)


def run_rig_replay(config: ReplayConfig,
                   backend: LoadedBackend | None = None) -> ReplaySummary:
    """Replay a multi-camera bag (see the module docstring).

    Raises:
        ReplayError: bad options, parameters (no rig: ``image_topics`` empty), bag or topics;
            the outputs written before stay.

    """
    validate_options(config)
    cfg = engine_config(config)
    rig = cfg.rig
    if not rig.enabled:
        raise ReplayError('no rig: give --image-topics (or image_topics in the --params file)')
    setup = rig.setup()
    names = list(setup.camera_names)
    out = Path(config.out_dir)
    with BagReader(config.bag) as reader:
        for topic in rig.image_topics:
            reader.require_topic(topic, IMAGE_TYPES)
        if setup.base_from_camera is None:  # no rig_extrinsics: the bag's TF
            firsts = [next(iter(reader.images(topic))) for topic in rig.image_topics]
            base_frame = str(parameters(config).get('base_frame', 'base_link'))
            setup = RigSetup(tuple(names), _bag_extrinsics(
                reader, base_frame, [first.frame_id for first in firsts],
                max(first.stamp_ns for first in firsts)))
        out.mkdir(parents=True, exist_ok=True)
        backend = replay_backend(cfg, backend)
        outputs = {name: ReplayOutputs(out / name, config.storage, config.copy_images)
                   for name in names}
        rgb: dict[tuple[int, int], Any] = {}
        count = reader.message_count(rig.image_topics[0])
        wanted = {int(round(i)) for i in np.linspace(0, max(count - 1, 0),
                                                     max(1, min(config.samples, count)))}
        sink = _RigSink(outputs, rgb, wanted, cfg.perception.output_from_world)
        engine = PerceptionEngine.from_config(
            backend.backend, stage_for_storage(cfg, config.storage), sink, rig=setup)
        grouper: RigGrouper[ImageFrame] = RigGrouper(len(names), rig.rig_queue_size,
                                                     rig.rig_slop_s)
        frames_in = 0
        try:
            for stamp, view, frame in _merged(reader, rig.image_topics, config.max_frames):
                frames_in += 1
                group = grouper.add(view, stamp, frame)
                if group is None:
                    continue
                for index, item in enumerate(group):
                    rgb[(index, item.stamp_ns)] = item.rgb
                engine.push_step([f.rgb for f in group], [f.stamp_ns for f in group],
                                 [f.frame_id for f in group])
            engine.flush()
        except BaseException as error:
            close_engine(engine, error)  # the output stage writes what it holds first
            raise
        else:
            close_engine(engine)
        finally:
            for camera_outputs in outputs.values():
                points, colors = engine.mapper.map.points()
                camera_outputs.write_window_end(points, colors)
                camera_outputs.close()
        points, colors = engine.mapper.map.points()
        map_points = outputs[names[0]].write_ply(points, colors)
        (out / 'static_map.ply').write_bytes(outputs[names[0]].ply_path.read_bytes())
        trajectory = engine.mapper.trajectory
        rig_poses = base_poses(trajectory.matrices(), setup) if len(trajectory) else []
        (out / 'rig_trajectory.tum').write_text(''.join(
            tum_line(int(s), p) + '\n' for s, p in zip(trajectory.stamps_ns, rig_poses)))
        scores = {name: _camera_evaluation(config, reader, name, view == 0, outputs[name])
                  for view, name in enumerate(names)}
    stats = grouper.stats
    metrics = {
        'bag': str(config.bag), 'image_topics': rig.image_topics, 'cameras': names,
        'extrinsics_known': setup.base_from_camera is not None,
        'model': backend.description, 'random_weights': backend.random_weights,
        'frames_in': frames_in, 'windows': sink.windows,
        'rig': {'groups': stats.groups, 'incomplete': stats.incomplete,
                'unmatched': dict(zip(names, stats.unmatched))},
        'cameras_out': {name: {
            'frames_out': len(outputs[name].stamps),
            'trajectory': (score.trajectory.summary() if score.trajectory
                           else {'note': score.trajectory_note}),
            'masks': score.masks.summary() if score.masks else {'note': score.mask_note},
        } for name, score in scores.items()},
        'engine': engine.stats.__dict__, 'map_points': map_points,
        'scale': engine.metric.diagnostics() if engine.metric is not None else None,
        'input_resets': sink.warnings,
        'perception': ({**engine.perception.stats.__dict__,
                        'tracker': engine.perception.tracker.stats.__dict__}
                       if engine.perception is not None else None),
    }
    (out / 'metrics.json').write_text(json.dumps(metrics, indent=2, default=str))
    report = _report(config, names, outputs, scores, backend, sink, metrics,
                     np.asarray([p[:3, 3] for p in rig_poses]) if len(rig_poses) else None)
    frames_out = sum(len(o.stamps) for o in outputs.values())
    return ReplaySummary(out, report, metrics, frames_in, frames_out)


def _report(config: ReplayConfig, names: list[str], outputs: dict[str, ReplayOutputs],
            scores: dict[str, Evaluation], backend: LoadedBackend, sink: _RigSink,
            metrics: dict[str, Any], rig_xyz: np.ndarray | None) -> Path:
    """Write the report: the reference camera's scores and samples, all cameras' in the facts."""
    facts = [('bag', f'`{config.bag}`'), ('cameras', ', '.join(names) + ' (reference first)'),
             ('model', backend.description),
             ('steps grouped / incomplete frames',
              f"{metrics['rig']['groups']} / {metrics['rig']['incomplete']}"),
             ('windows', str(sink.windows))]
    for name in names:
        score = scores[name]
        masks = f'J {score.masks.j_mean:.3f}, F {score.masks.f_mean:.3f}' if score.masks \
            else score.mask_note
        ate = f'ATE {score.trajectory.ate_rmse:.4f}' if score.trajectory \
            else score.trajectory_note
        facts.append((f'camera {name}', f'{len(outputs[name].stamps)} frames; masks {masks}; '
                                        f'{ate}'))
    facts.append(('outputs', '`<camera>/` (masks, trajectory.tum, output_bag), '
                             '`rig_trajectory.tum`, `static_map.ply`, `metrics.json`'))
    reference = scores[names[0]]
    masks = outputs[names[0]].masks
    samples = [(stamp, rgb, masks[stamp], reference.truth_masks.get(stamp))
               for stamp, rgb in sorted(sink.samples.items()) if stamp in masks]
    inputs = ReportInputs(title='VGGT4D rig replay report', facts=facts,
                          random_weights=backend.random_weights,
                          trajectory=reference.trajectory,
                          trajectory_note=reference.trajectory_note, masks=reference.masks,
                          mask_note=reference.mask_note, estimate_xyz=rig_xyz,
                          stage_seconds=sink.stage_seconds, samples=samples)
    return write_report(config.out_dir, inputs)
