# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Tracks of a replay against ground-truth objects (``replay/track_metrics.py`` protocol).

Ground truth: an ``nav2_dynamic_msgs/ObstacleArray`` topic (``/ground_truth/objects`` in the
synthetic bag; see ``planner_messages``: the UUID holds the object id, the score its visible
fraction, only visible objects are listed), in the ground-truth pose topic's world frame.
An object is *seen whole* where its visible fraction is at least ``WHOLE_FRACTION``; position
errors count where it is seen whole, velocity errors where it has been seen whole without a
break for ``SETTLE_S`` (the filter's start-up and partly hidden views are not scored; recall,
precision and id switches count every visible object). The issue's done-when protocol.

The tracks are in the output frame of the planner outputs (``PerceptionConfig.
output_from_world`` applied to the estimate's world, map units). They are taken to the
ground truth's frame and units with the trajectory evaluation's Sim(3) alignment
(``TrajectoryMetrics.alignment``: ``p_truth = s R p_estimate + t``), velocities with ``s R``,
so positions and velocities are scored in ground-truth units (metres) and the relative errors
are free of the monocular scale. Scored per window (the tracks are output once per window, at
its newest frame), truth at the same stamp.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.replay import planner_messages as pm
from vggt4d_ros.replay.bag import BagReader
from vggt4d_ros.replay.track_metrics import track_metrics
from vggt4d_ros.replay.track_metrics import TrackFrame
from vggt4d_ros.replay.track_metrics import TrackMetrics

GT_OBJECT_TOPICS = ('/ground_truth/objects',)
#: A track farther than this from an object (ground-truth units) is not its match.
MATCH_DISTANCE = 0.5
#: Visible fraction from which an object counts as seen whole.
WHOLE_FRACTION = 0.9
#: Seen whole this long (s) before its velocity error counts.
SETTLE_S = 0.5
#: Largest stamp difference between a window and its ground truth (as the trajectory's).
MAX_STAMP_DIFF_NS = 10_000_000


@dataclass
class TruthObjects:
    """Ground-truth objects of one stamp.

    Attributes:
        ids: [G] object ids; positions, velocities: [G,3]; visible: [G] visible fractions.

    """

    ids: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    visible: np.ndarray


@dataclass
class TrackEvaluation:
    """Scores and the time series the report plots, in ground-truth frame and units.

    Attributes:
        metrics: the track metrics (``track_metrics``).
        tracks: track id -> (stamps [N] ns, positions [N,3], velocities [N,3]).
        truth: object id -> (stamps [N] ns, positions [N,3], velocities [N,3]).
        match_distance: the matching gate used (ground-truth units).

    """

    metrics: TrackMetrics
    tracks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    truth: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    match_distance: float = MATCH_DISTANCE


def read_truth_objects(reader: BagReader, topic: str) -> dict[int, TruthObjects]:
    """Ground-truth objects by header stamp from an ObstacleArray topic."""
    out = {}
    for _, message in reader.messages(topic):
        arrays = pm.obstacle_arrays(message)
        stamp = int(message.header.stamp.sec) * 1_000_000_000 + int(message.header.stamp.nanosec)
        out[stamp] = TruthObjects(np.array(arrays['ids'], np.int64), arrays['positions'],
                                  arrays['velocities'], arrays['scores'])
    return out


def evaluate_tracks(windows: list[tuple[int, list[Track]]], truth: dict[int, TruthObjects],
                    alignment: np.ndarray, output_from_world: np.ndarray,
                    camera_positions: dict[int, np.ndarray],
                    match_distance: float = MATCH_DISTANCE) -> TrackEvaluation:
    """Score the tracks of each window against the truth at the window's stamp.

    Args:
        windows: (stamp ns, confirmed tracks) per window, output frame, map units.
        truth: ground-truth objects by stamp (stamps without truth are skipped).
        alignment: [4,4] Sim(3) ``truth_from_estimate`` (``s R | t``).
        output_from_world: [4,4] rigid, the planner output frame from the estimate's world.
        camera_positions: stamp -> [3] true camera position (for the relative position error).
        match_distance: matching gate in ground-truth units.

    Truth and camera are taken at the nearest stamp within ``MAX_STAMP_DIFF_NS``; windows
    without both are skipped.

    """
    linear = alignment[:3, :3] @ output_from_world[:3, :3].T  # s R O^T: output -> truth
    offset = alignment[:3, 3] - linear @ output_from_world[:3, 3]
    frames: list[TrackFrame] = []
    evaluation = TrackEvaluation(TrackMetrics(), match_distance=match_distance)
    whole_since = _whole_since(truth)
    series: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for stamp, tracks in windows:
        truth_stamp = _nearest(truth, stamp)
        camera_stamp = _nearest(camera_positions, stamp)
        if truth_stamp is None or camera_stamp is None:
            continue
        objects = truth[truth_stamp]
        positions = np.array([linear @ t.position + offset for t in tracks]).reshape(-1, 3)
        velocities = np.array([linear @ t.velocity for t in tracks]).reshape(-1, 3)
        ids = np.array([t.track_id for t in tracks], np.int64)
        for k, track_id in enumerate(ids):
            series.setdefault(int(track_id), []).append((stamp, positions[k], velocities[k]))
        whole = objects.visible >= WHOLE_FRACTION
        since = whole_since[truth_stamp]
        settled = np.array([(truth_stamp - since.get(int(i), truth_stamp)) * 1e-9 >= SETTLE_S
                            for i in objects.ids], bool) & whole
        frames.append(TrackFrame(stamp_ns=stamp, camera=camera_positions[camera_stamp],
                                 truth_ids=objects.ids, truth_positions=objects.positions,
                                 truth_velocities=objects.velocities, track_ids=ids,
                                 track_positions=positions, track_velocities=velocities,
                                 truth_settled=settled, truth_whole=whole))
    evaluation.metrics = track_metrics(frames, max_distance=match_distance)
    evaluation.tracks = {key: _stack(rows) for key, rows in series.items()}
    by_object: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for stamp in sorted(truth):
        objects = truth[stamp]
        for k, object_id in enumerate(objects.ids):
            by_object.setdefault(int(object_id), []).append(
                (stamp, objects.positions[k], objects.velocities[k]))
    evaluation.truth = {key: _stack(rows) for key, rows in by_object.items()}
    return evaluation


def _nearest(by_stamp: dict[int, object], stamp: int) -> int | None:
    """Return the key of ``by_stamp`` nearest to ``stamp`` within ``MAX_STAMP_DIFF_NS``."""
    if stamp in by_stamp:
        return stamp
    if not by_stamp:
        return None
    nearest = min(by_stamp, key=lambda key: abs(key - stamp))
    return nearest if abs(nearest - stamp) <= MAX_STAMP_DIFF_NS else None


def _whole_since(truth: dict[int, TruthObjects]) -> dict[int, dict[int, int]]:
    """Per stamp: object id -> stamp since which it is seen whole without a break."""
    out: dict[int, dict[int, int]] = {}
    since: dict[int, int] = {}
    for stamp in sorted(truth):
        objects = truth[stamp]
        whole = {int(i) for i, f in zip(objects.ids, objects.visible) if f >= WHOLE_FRACTION}
        since = {i: since.get(i, stamp) for i in whole}
        out[stamp] = dict(since)
    return out


def _stack(rows: list[tuple[int, np.ndarray, np.ndarray]]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([r[0] for r in rows], np.int64), np.stack([r[1] for r in rows]),
            np.stack([r[2] for r in rows]))
