# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""PerceptionTracker: per processed frame, the planner outputs (cloud, tracks, grids).

Call :meth:`PerceptionTracker.update` once per window with the window's new frames (see
``observation.observations_from_window``). Frames are processed by time step in stamp order:
one camera's frame is a step; the views of a multi-camera rig step (``FrameObservation.view``,
same ``step_ns``) are ONE step: one dynamic cloud with every camera's points, each camera's
instances merged in 3D where cameras see the same object (``rig_merge``), one tracker update
and every view in the grids, all at the step's stamp. A step not newer than the last one (and
a second frame of one camera in a step) is skipped (counted per frame); a frame of a new map
segment resets tracks and grids first (the global frame moved). All outputs are in the output
frame (``PerceptionConfig.output_from_world``), in map units.

The pixel stages (points, instances, grid rasterising) run as torch ops on the device of the
frames, over all frames of a call at once (frames of one segment, shape and device); the
results come to the host in a few transfers per call; the tracker (a handful of objects:
Kalman filter, optimal assignment) runs on the host in numpy, frame by frame. On CUDA the
points + grid stages and the instances (labelling on a bucket-sized window, measurements and,
with the 'box_fit' centre model, the footprint fits of each frame's largest instances)
replay from CUDA graphs (``PerceptionConfig.cuda_graphs``; docs/perception.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import functools
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as nnf

from vggt4d_ros.geometry.sim3 import Sim3
from vggt4d_ros.motion.graphs import GraphedFunction
from vggt4d_ros.perception.batch import batch_from_tensors
from vggt4d_ros.perception.box_fit import Footprints
from vggt4d_ros.perception.batch import FrameBatch
from vggt4d_ros.perception.batch import stack_tensors
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.perception.dynamic_points import BatchPoints
from vggt4d_ros.perception.dynamic_points import dynamic_points
from vggt4d_ros.perception.dynamic_points import unproject
from vggt4d_ros.perception.instances import append_footprints
from vggt4d_ros.perception.instances import Bucket
from vggt4d_ros.perception.instances import bucket_constants
from vggt4d_ros.perception.instances import find_bucket
from vggt4d_ros.perception.instances import InstanceStats
from vggt4d_ros.perception.instances import label_bucket
from vggt4d_ros.perception.instances import label_image
from vggt4d_ros.perception.instances import Labels
from vggt4d_ros.perception.instances import measure_instances
from vggt4d_ros.perception.instances import pack
from vggt4d_ros.perception.instances import resume_bucket
from vggt4d_ros.perception.instances import unpack
from vggt4d_ros.perception.observation import FrameObservation
from vggt4d_ros.perception.occupancy import OccupancyGrids
from vggt4d_ros.perception.occupancy import OccupancyMapper
from vggt4d_ros.perception.rig_merge import merge_views
from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.perception.tracker import Tracker

STAGES = ('points', 'instances', 'grid', 'host', 'tracker')


@dataclass
class DynamicCloud:
    """Dynamic points of one frame (a rig step: every camera's, in view order).

    Attributes:
        stamp_ns: the frame's stamp (a rig step's stamp: its reference camera's).
        points: [N,3] float32, output frame (at most ``max_points_per_frame`` per camera).
        rgb: [N,3] uint8.
        object_ids: [N] int32 confirmed track id of each point's object, 0 = none.

    """

    stamp_ns: int
    points: np.ndarray
    rgb: np.ndarray
    object_ids: np.ndarray


@dataclass
class PerceptionOutput:
    """What one ``update`` produced.

    Attributes:
        clouds: one dynamic cloud per processed step (one camera: per frame; a rig: all views
            of the step in one cloud); empty list when the cloud is off.
        tracks: confirmed tracks after the last processed step (see ``Tracker.tracks``).
        stamp_ns: stamp of the last processed step (None when none was processed).
        grids: the grids after the last processed frame, or None (off or nothing processed).
        skipped: frames skipped as not newer than the previous step (or a camera's second
            frame in one step).
        timings: seconds per stage over the call (``STAGES``; device stages are launch
            times unless the tracker was built with ``sync_timings``).

    """

    clouds: list[DynamicCloud] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    stamp_ns: int | None = None
    grids: OccupancyGrids | None = None
    skipped: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class PerceptionStats:
    """Counters over the tracker's life (per-stage counters live in the parts' stats).

    ``frames`` counts camera frames, ``steps`` time steps (equal for one camera).
    """

    frames: int = 0
    steps: int = 0
    skipped: int = 0
    resets: int = 0
    rescales: int = 0
    empty_frames: int = 0
    small_parts: int = 0
    excess_parts: int = 0
    points: int = 0
    detections: int = 0
    unconverged: int = 0


class PerceptionTracker:
    """Dynamic cloud, object tracks and occupancy grids from processed frames.

    ``sync_timings``: wait for the device at every stage boundary so that the per-stage
    timings are real (profiling only: it adds host syncs). ``stage_listener``: called with the
    stage's name at the end of every stage (profiling: ``tools/op_count.py`` books its counts).
    """

    def __init__(self, config: PerceptionConfig | None = None,
                 sync_timings: bool = False) -> None:
        self.config = config or PerceptionConfig()
        self.tracker = Tracker(self.config.tracker)
        self.grid = OccupancyMapper(self.config.grid) if self.config.grid.enabled else None
        self.stats = PerceptionStats()
        self.sync_timings = sync_timings
        self.stage_listener: Callable[[str], None] | None = None
        self._segment: int | None = None
        self._stamp_ns: int | None = None
        # The grids after the last processed frames, copied out with their window's results.
        self._grids: OccupancyGrids | None = None
        # The pixel stages as one CUDA graph per (frame count, image size, device); the
        # tracker's configuration is fixed, the grid state is passed through (in place).
        self._graphed = GraphedFunction(self._pixel_stages, max_graphs=4, clone_outputs=False)
        # The instances: labelling on a window of a bucket size around the dynamic pixels
        # (its place and size: one host sync) and the measurements, one graph per (frame
        # count, image size, bucket, device): the bucket's constants are a static argument,
        # so the graph's key holds them while the graph lives.
        self._graphed_instances = GraphedFunction(self._instances, max_graphs=4,
                                                  clone_outputs=False)
        # Where the CUDA graphs replay (tools/op_count.py adds the CPU to count that path).
        self._graph_device_types: tuple[str, ...] = ('cuda',)

    @torch.inference_mode()
    def reset(self) -> None:
        """Forget tracks and grids (call on a map reset; ``update`` does it on a new segment)."""
        self.tracker.reset()
        if self.grid is not None:
            self.grid.reset()
        self._stamp_ns = None
        self._grids = None
        self.stats.resets += 1

    @torch.inference_mode()
    def rescale(self, change: Sim3, whole_segment: bool = False) -> None:
        """Follow a change of the map's scale (``mapping.MetricInfo.change``, global frame).

        ``change`` is a scaling about a fixed point (no rotation). The tracks move with it
        (``Tracker.rescale`` in the output frame), so the next detections, which come in the
        new scale, meet them where they are. ``whole_segment``: the mapper scaled everything
        it held (the outputs just became metric, ``MetricInfo.rescaled``): the grids restart,
        their cells hold evidence in the old units. Smaller corrections, which the mapper
        applies to new frames only, leave the grids as the mapper leaves its map.
        """
        factor = change.scale
        if not np.allclose(change.rotation, np.eye(3), atol=1e-9):
            raise ValueError('a change of scale has no rotation')
        if factor == 1.0:
            return
        pivot = change.translation / (1.0 - factor)  # its fixed point, global frame
        output_from_world = self.config.output_from_world
        self.tracker.rescale(factor, output_from_world[:3, :3] @ pivot + output_from_world[:3, 3])
        if whole_segment and self.grid is not None:
            self.grid.reset()
            self._grids = None
        self.stats.rescales += 1

    @torch.inference_mode()  # no autograd bookkeeping: a smaller cost per launched op
    def update(self, frames: list[FrameObservation]) -> PerceptionOutput:
        """Process frames (sorted by stamp here) and return the outputs."""
        out = PerceptionOutput()
        timings = dict.fromkeys(STAGES, 0.0)
        if not self.config.enabled:
            return out
        run: list[FrameObservation] = []
        for obs in sorted(frames, key=lambda f: (f.step_ns, f.view)):
            if self._segment is not None and obs.segment != self._segment:
                self._process(run, out, timings)
                run = []
                self.reset()
            self._segment = obs.segment
            joins = self._joins_open_step(obs, run)
            if not joins and self._stamp_ns is not None and obs.step_ns <= self._stamp_ns:
                out.skipped += 1
                self.stats.skipped += 1
                continue
            if run and (obs.depth.shape != run[0].depth.shape
                        or obs.depth.device != run[0].depth.device):
                if joins:
                    raise ValueError('the views of one rig step must share shape and device')
                self._process(run, out, timings)
                run = []
            self._stamp_ns = obs.step_ns
            run.append(obs)
        self._process(run, out, timings)
        if out.stamp_ns is not None:
            out.tracks = self.tracker.tracks() if self.config.tracker.enabled else []
            if self.grid is not None:
                # The grids came with the last run's one copy (``_pixel_stages``).
                clock = _Clock(timings, torch.device('cpu'), False, self.stage_listener)
                out.grids = self._grids if self._grids is not None else self.grid.grids()
                clock.lap('grid')
        out.timings = timings
        return out

    @staticmethod
    def _joins_open_step(obs: FrameObservation, run: list[FrameObservation]) -> bool:
        """Whether ``obs`` is another camera of the step being collected (not yet processed)."""
        if not run or run[-1].step_ns != obs.step_ns:
            return False
        return all(f.view != obs.view for f in run if f.step_ns == obs.step_ns)

    def _process(self, run: list[FrameObservation], out: PerceptionOutput,
                 timings: dict[str, float]) -> None:
        """Run the stages over frames of one segment, shape and device (in stamp order)."""
        if not run:
            return
        cfg = self.config
        clock = _Clock(timings, run[0].depth.device, self.sync_timings, self.stage_listener)
        tensors = stack_tensors(run, cfg.output_from_world)
        device = tensors[0].device
        if self.grid is not None:
            self.grid.begin_batch([obs.step_ns for obs in run], device)
        state = () if self.grid is None else self.grid.state
        graphs = cfg.cuda_graphs and device.type in self._graph_device_types
        if graphs:
            results = self._graphed(*tensors, *state)
            clock.lap('points')  # points and grid: one replay
        else:
            results = self._pixel_stages(*tensors, *state, lap=clock.lap)
        points = BatchPoints(*results[:_POINT_FIELDS])
        output_from_camera = results[_POINT_FIELDS]
        if self.grid is not None:
            grid_values = results[_POINT_FIELDS + 1]
            self.grid.state = results[_POINT_FIELDS + 2:]
        if cfg.tracker.enabled:
            if graphs:
                bucket = find_bucket(points.selected)
                labels, measured, converged, label_state = self._graphed_bucket(
                    points, tensors[0], output_from_camera, bucket)
            else:
                labels = label_image(points.selected, tensors[0], cfg.instances)
                measured = InstanceStats(*self._measure(
                    points.index, points.used, points.camera, points.output, labels.labels,
                    labels.pixels, output_from_camera))
            clock.lap('instances')
        counts = points.host_count
        used = int(counts.max())
        # One copy to the host: points (as the cloud's float32), colours, point labels and
        # the packed measurements (and the graphed labelling's convergence flag).
        parts = [points.output[:, :used].float(), points.rgb[:, :used]]
        if cfg.tracker.enabled:
            parts += [measured.point_labels[:, :used].int(), pack(measured, labels)]
            if graphs:
                parts.append(converged)
        if self.grid is not None:
            parts.append(grid_values)
        host = _download(parts)
        if self.grid is not None:
            # A copy: the buffer also holds the cloud, which the grids should not keep alive.
            self._grids = self.grid.wrap(host[-1].copy())
        xyz, rgb = host[0], host[1]
        found = None
        if cfg.tracker.enabled:
            if graphs and not host[4]:  # rare: more steps than the graph's (eager, syncs)
                labels, measured, again = self._resumed(
                    points, tensors[0], output_from_camera, bucket, label_state, labels,
                    measured, used)
                if again is not None:
                    host[2:4] = again
            found = unpack(host[3], host[2], counts, measured.fitted)
        if cfg.tracker.enabled and not labels.converged:
            self.stats.unconverged += 1
        clock.lap('host')
        steps = _steps(run)
        prepared = {} if found is None else self._prepared(
            found, xyz, [first for first, last in steps if last - first == 1])
        for first, last in steps:
            stamp_ns = run[first].step_ns
            self.stats.steps += 1
            for f in range(first, last):
                count = int(counts[f])
                self.stats.frames += 1
                self.stats.points += count
                self.stats.empty_frames += count == 0
            if last - first == 1:  # one camera: the frame is the step
                ids = [np.zeros(int(counts[first]), np.int32) if found is None
                       else self._track(stamp_ns, found[first], *prepared.get(first, ()))]
            else:
                ids = self._track_rig(stamp_ns, run[first:last],
                                      None if found is None else found[first:last],
                                      counts[first:last], xyz[first:last])
            if cfg.points.enabled:
                views = range(first, last)
                out.clouds.append(DynamicCloud(
                    stamp_ns, _joined([xyz[f, :int(counts[f])] for f in views]),
                    _joined([rgb[f, :int(counts[f])] for f in views]), _joined(ids)))
            out.stamp_ns = stamp_ns
        clock.lap('tracker')

    def _prepared(self, found, xyz: np.ndarray, frames: list[int]) -> dict[int, tuple]:
        """Return the tracker's inputs of one-camera frames: instances' points and fits.

        ``xyz`` [F,>=N_f,3]: each frame's points; ``frames``: the frames to prepare. Returns
        frame -> (points: one [n_i,3] array per instance, or None when the tracker needs
        none (no motion registration); footprint fits or None). The fits come from the
        instances stage (``FrameInstances.footprints``, fitted on the device: the host
        gathers no points for them).
        """
        cfg = self.config.tracker
        if not cfg.needs_points:
            return {}
        out = {}
        for f in frames:
            points = None
            if cfg.motion_registration:  # all of each instance's points
                labels = found[f].point_labels
                points = [xyz[f, :len(labels)][labels == inst.label]
                          for inst in found[f].instances]
            out[f] = (points, found[f].footprints)
        return out

    def _track(self, stamp_ns: int, found, points: list[np.ndarray] | None = None,
               fits: Footprints | None = None) -> np.ndarray:
        """Track one frame's instances (their points, fits: ``_prepared``); point ids [N] int32."""
        self.stats.small_parts += found.small_parts
        self.stats.excess_parts += found.excess_parts
        self.stats.detections += len(found.instances)
        ids = self.tracker.update(
            stamp_ns, found.instances if found.detections is None else found.detections,
            points, fits)
        labels = found.point_labels
        if ids is None or not len(found.instances):
            return np.zeros(len(labels), np.int32)
        # Track id by label, 0 for a label of no instance: up to one slot past the largest
        # instance label, onto which ``take`` clips any larger label (point labels are >= 0).
        # No scan of the labels for their maximum, and take is ~2x as fast as indexing
        # (~10 us less per frame of 10k points).
        instance_labels = (found.detections.label if found.detections is not None
                           else np.array([inst.label for inst in found.instances], np.int64))
        by_label = np.zeros(int(instance_labels.max()) + 2, np.int32)
        by_label[instance_labels] = ids
        return by_label.take(labels, mode='clip')

    def _track_rig(self, stamp_ns: int, step: list[FrameObservation], found, counts,
                   xyz: np.ndarray) -> list[np.ndarray]:
        """Track one rig step (its cameras' instances merged); each view's point ids [N_v].

        ``xyz`` [V,>=N_v,3]: each view's points (the merged objects' points for the
        tracker's motion registration).
        """
        if found is None:
            return [np.zeros(int(c), np.int32) for c in counts]
        for obs, frame in zip(step, found):
            self.stats.small_parts += frame.small_parts
            self.stats.excess_parts += frame.excess_parts
            self.stats.detections += len(frame.instances)
            for instance in frame.instances:
                instance.view = obs.view
            if frame.detections is not None:  # the arrays say what the instances say
                frame.detections.view[:] = obs.view
        merged, lookups = merge_views(found, self.config.tracker)
        merged_labels = []
        for frame, lookup in zip(found, lookups):
            labels = frame.point_labels
            merged_labels.append(np.where(labels < len(lookup),
                                          lookup[np.minimum(labels, len(lookup) - 1)], 0))
        points = None
        if self.config.tracker.needs_points:
            points = [np.concatenate([xyz[v, :len(labels)][labels == m]
                                      for v, labels in enumerate(merged_labels)])
                      for m in range(1, len(merged) + 1)]
        ids = self.tracker.update(stamp_ns, merged, points)
        by_merged = np.zeros(len(merged) + 1, np.int32)
        if ids is not None:
            by_merged[1:] = ids
        return [by_merged[labels].astype(np.int32) for labels in merged_labels]

    def _pixel_stages(self, *tensors: torch.Tensor,
                      lap: Callable[[str], None] | None = None) -> tuple[torch.Tensor, ...]:
        """Points and grid of a batch: what a CUDA graph records (fixed shapes, no sync).

        Args:
            tensors: ``FrameBatch.tensors()``, then the grid's state (none when it is off).
            lap: called with each stage's name when it is done (eager runs only).

        Returns:
            The ``BatchPoints`` fields in order (``_POINT_FIELDS``), the batch's
            output_from_camera [F,4,4], then (grid on) the grids after the batch
            ([3,height,width] int8, ``OccupancyMapper.values``: copied out with the results,
            no separate read-out and sync) and the grid's new state.
        """
        batch = batch_from_tensors(*tensors[:_BATCH_TENSORS])
        points = dynamic_points(batch, self.config.points)
        fields = (points.threshold, points.selected, points.index, points.count, points.used,
                  points.camera, points.output, points.rgb, points.trusted,
                  points.scaled_depth, batch.output_from_camera)
        if lap is not None:
            lap('points')
        if self.grid is None:
            return fields
        static, static_ok = self._static_points(batch, points)
        state = self.grid.advance(tensors[_BATCH_TENSORS:], batch.output_from_camera[:, :3, 3],
                                  static, static_ok, points.output, points.used,
                                  batch.steps_ns)
        values = self.grid.values(state, batch.steps_ns[-1])
        if lap is not None:
            lap('grid')
        return fields + (values,) + state

    def _graphed_bucket(self, points: BatchPoints, depth: torch.Tensor,
                        output_from_camera: torch.Tensor, bucket: Bucket
                        ) -> tuple[Labels, InstanceStats, torch.Tensor, torch.Tensor]:
        """Return the instances from the graph of ``bucket`` (``_instances``): no sync.

        Returns the labels (``converged`` still to be read from the flag), the measurements,
        the flag ([] bool: the fixed steps converged) and the labelling's state after them
        (``label_bucket``).
        """
        consts = bucket_constants(len(depth), bucket, depth.device)
        table, pixels, point_labels, labels, dropped, converged, state = (
            self._graphed_instances(points.selected, depth, points.index, points.used,
                                    points.camera, points.output, output_from_camera,
                                    consts=consts))
        return (Labels(labels, pixels, dropped, True),
                InstanceStats(table, pixels, point_labels), converged, state)

    def _resumed(self, points: BatchPoints, depth: torch.Tensor,
                 output_from_camera: torch.Tensor, bucket: Bucket, state: torch.Tensor,
                 labels: Labels, measured: InstanceStats, used: int
                 ) -> tuple[Labels, InstanceStats, list[np.ndarray] | None]:
        """Return the instances of a graphed labelling not converged in the fixed steps.

        Eager from the graph's state (``resume_bucket``: ``label_image``'s labels, cut off
        where it cuts off), measured again; returns the labels, the measurements and the
        host's point labels and packed measurements (one more copy), None when the graph's
        labels stand (cut off after the fixed steps: the first copy holds them).
        """
        resumed = resume_bucket(points.selected, depth, self.config.instances, bucket, state)
        if resumed is None:  # cut off by the bound after the fixed steps: the graph's labels
            return replace(labels, converged=False), measured, None
        measured = InstanceStats(*self._measure(
            points.index, points.used, points.camera, points.output, resumed.labels,
            resumed.pixels, output_from_camera))
        host = _download([measured.point_labels[:, :used].int(), pack(measured, resumed)])
        return resumed, measured, host

    def _instances(self, selected: torch.Tensor, depth: torch.Tensor, index: torch.Tensor,
                   used: torch.Tensor, camera: torch.Tensor, output: torch.Tensor,
                   output_from_camera: torch.Tensor, consts) -> tuple[torch.Tensor, ...]:
        """Labelling on a bucket and measurements: what a CUDA graph records (no sync).

        Arguments: the ``BatchPoints`` fields of those names (``selected`` [F,h,w]), the
        frames' depth [F,h,w] and output_from_camera [F,4,4]; ``consts``: the bucket's
        (``label_bucket``). Returns the ``InstanceStats`` fields (table, pixels,
        point_labels), then ``label_bucket``'s labels, dropped, converged flag and state.
        """
        labels, pixels, dropped, converged, state = label_bucket(
            selected, depth, self.config.instances, consts)
        stats = self._measure(index, used, camera, output, labels, pixels, output_from_camera)
        return (*stats, labels, dropped, converged, state)

    def _measure(self, index: torch.Tensor, used: torch.Tensor, camera: torch.Tensor,
                 output: torch.Tensor, labels: torch.Tensor, pixels: torch.Tensor,
                 output_from_camera: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``measure_instances`` on the tensors it reads (part of the instances' CUDA graph).

        Fixed shapes, no sync. Arguments: the ``BatchPoints`` and ``Labels`` fields of those
        names and the frames' output_from_camera [F,4,4]; returns the ``InstanceStats``
        fields (table, pixels, point_labels). With the 'box_fit' centre model the table holds
        the footprint fits of each frame's first ``box_fit_max_per_frame`` labels
        (``append_footprints``; labels beyond: not ok, counted by the tracker as
        ``box_skipped``); other centre models do not fit.
        """
        cfg = self.config.tracker
        # Only the fields measure_instances reads are set.
        points = BatchPoints(None, None, index, None, used, camera, output, None)
        stats = measure_instances(points, Labels(labels, pixels, None, True), output_from_camera,
                                  cfg.depth_completion)
        table = stats.table
        if cfg.centre_model == 'box_fit':
            table = append_footprints(stats, used, output, cfg.box_fit_max_per_frame)
        return table, stats.pixels, stats.point_labels

    def _static_points(self, batch: FrameBatch, points: BatchPoints
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Output-frame points [F,S,3] of the grid's pixel stride, and which are used [F,S].

        Used: confident static pixels; the dynamic mask is grown by one sample (3x3 on the
        strided grid) so object borders do not leak into the static grid.
        """
        cfg = self.config
        stride = cfg.grid.pixel_stride
        ok = (points.trusted & (points.scaled_depth <= cfg.grid.max_range))[:, ::stride, ::stride]
        mask = batch.mask[:, None, ::stride, ::stride].float()
        near_dynamic = nnf.max_pool2d(mask, 3, stride=1, padding=1)[:, 0] > 0
        index, pixel = _strided_pixels(tuple(batch.depth.shape[1:]), stride, batch.device)
        _, output = unproject(batch, index.expand(len(batch), -1), pixel)
        return output, (ok & ~near_dynamic).flatten(1)


_BATCH_TENSORS = 6  # FrameBatch.tensors()
_POINT_FIELDS = 10  # the BatchPoints fields the pixel stages return first


@functools.cache  # never evicted: a recorded CUDA graph reads these tensors' memory
def _strided_pixels(shape: tuple[int, int], stride: int, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``stride``-th pixel in y and x: flat index [P] int64 and (col, row) [1,P,2] float64.

    Fixed per configuration: made once.
    """
    rows = torch.arange(0, shape[0], stride, device=device)
    cols = torch.arange(0, shape[1], stride, device=device)
    index = (rows[:, None] * shape[1] + cols[None, :]).flatten()
    pixel = torch.stack([index % shape[1], index // shape[1]], dim=1).double()
    return index, pixel[None]


_NUMPY_DTYPES = {torch.float64: np.float64, torch.float32: np.float32, torch.int64: np.int64,
                 torch.int32: np.int32, torch.uint8: np.uint8, torch.int8: np.int8,
                 torch.bool: np.bool_}


def _download(tensors: list[torch.Tensor]) -> list[np.ndarray]:
    """Copy tensors of these dtypes (``_NUMPY_DTYPES``) to the host in one transfer.

    As bytes of one buffer, widest elements first so that every part starts aligned; the
    returned arrays (same shapes and dtypes) are views of that buffer. Each part moves at its
    own width (a float32 cloud is 12 bytes per point, not 24 as float64).
    """
    order = sorted(range(len(tensors)), key=lambda k: -tensors[k].element_size())
    buffer = torch.cat([tensors[k].reshape(-1).view(torch.uint8) for k in order]).cpu().numpy()
    out: list[np.ndarray] = [buffer] * len(tensors)
    offset = 0
    for k in order:
        size = tensors[k].numel() * tensors[k].element_size()
        out[k] = buffer[offset: offset + size].view(_NUMPY_DTYPES[tensors[k].dtype]).reshape(
            tensors[k].shape)
        offset += size
    return out


def _steps(run: list[FrameObservation]) -> list[tuple[int, int]]:
    """(first, end) index ranges of the run's steps (frames sorted by step)."""
    starts = [f for f in range(len(run)) if f == 0 or run[f].step_ns != run[f - 1].step_ns]
    return list(zip(starts, starts[1:] + [len(run)]))


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """One array from per-view parts (one part: itself, no copy)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class _Clock:
    """Adds the time since the last lap to a stage (waiting for the device if asked)."""

    def __init__(self, timings: dict[str, float], device: torch.device, sync: bool,
                 listener: Callable[[str], None] | None = None) -> None:
        self._timings = timings
        self._listener = listener
        self._sync = sync and device.type == 'cuda'
        self._device = device
        self._tic = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self._sync:
            torch.cuda.synchronize(self._device)
        now = time.perf_counter()
        self._timings[stage] += now - self._tic
        if self._listener is not None:
            self._listener(stage)
        self._tic = time.perf_counter()
