# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The tracker stage's host code after its speed-up (session 10) gives the same bits as before.

The footprint fit (reused buffers) and the tracker's steps (fields gathered once per frame,
fewer numpy calls) were rewritten for host time only. The code before that change is kept
here as the reference (``_reference_fit``, ``_ReferenceTracker``: the old methods verbatim,
docstrings dropped); random scenes with births, misses, deaths, a full tracker, rig views,
detections without a viewing ray and each motion and centre model must give the same
results to the bit (both trackers take the fits of ``tracker.footprints``). A later intended
change of the tracker's behaviour retires this file.

The fit itself has since moved to torch (``box_fit.fit_padded``: one implementation for the
device's instances stage and the host): it is compared with the numpy reference within
float rounding (atol 1e-9 m and rad, 1e-12 for the closeness fraction; the differences seen
are below 1e-14), ``ok`` and ``away`` identical. A footprint whose heading scores tie
mathematically (a mirror-symmetric set) may take either heading of the tie: the sums' order
differs between numpy and torch (``test_a_mirror_symmetric_footprint_may_fit_either_way``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vggt4d_ros.perception import box_fit
from vggt4d_ros.perception import kalman
from vggt4d_ros.perception.config import TrackerConfig
from vggt4d_ros.perception.instances import Detections
from vggt4d_ros.perception.instances import Instance
from vggt4d_ros.perception.instances import InstanceStats
from vggt4d_ros.perception.instances import Labels
from vggt4d_ros.perception.instances import to_host
from vggt4d_ros.perception.tracker import _BOXNESS_RATE
from vggt4d_ros.perception.tracker import _INITIAL_ACCEL_SIGMA
from vggt4d_ros.perception.tracker import _INITIAL_VELOCITY_SIGMA
from vggt4d_ros.perception.tracker import _NO_MATCH
from vggt4d_ros.perception.tracker import _SIDE_FLOOR
from vggt4d_ros.perception.tracker import _Tracks
from vggt4d_ros.perception.tracker import footprints
from vggt4d_ros.perception.tracker import Tracker
from vggt4d_ros.perception import registration
from vggt4d_ros.perception import tracker
from scipy.optimize import linear_sum_assignment


def _same(first, second) -> bool:
    """Equal to the bit (dtype, shape and bytes; NaN payloads included)."""
    first, second = np.asarray(first), np.asarray(second)
    return (first.dtype == second.dtype and first.shape == second.shape
            and first.tobytes() == second.tobytes())


# -- the reference: the code before the change -------------------------------------------------

def _reference_box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    top = np.maximum(first[:, None, 0], second[None, :, 0])
    left = np.maximum(first[:, None, 1], second[None, :, 1])
    bottom = np.minimum(first[:, None, 2], second[None, :, 2])
    right = np.minimum(first[:, None, 3], second[None, :, 3])
    inter = np.clip(bottom - top + 1, 0, None) * np.clip(right - left + 1, 0, None)

    def area(box: np.ndarray) -> np.ndarray:
        return (box[:, 2] - box[:, 0] + 1) * (box[:, 3] - box[:, 1] + 1)

    union = area(first)[:, None] + area(second)[None, :] - inter
    return inter / np.maximum(union, 1.0)


def _reference_predict(state: np.ndarray, cov: np.ndarray, dt: np.ndarray, noise: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    dt = np.maximum(np.asarray(dt, dtype=np.float64), 0.0)
    order = state.shape[2]
    if len(dt) and (dt == dt[0]).all():  # one step for all tracks (the tracker's case)
        one, spread = kalman._step_matrices(float(dt[0]), order, noise)
        transition = np.broadcast_to(one, (len(dt), order, order))
    else:
        transition, spread = kalman._matrices(dt, order, noise)
    out = np.einsum('tij,taj->tai', transition, state)
    new = transition @ cov @ np.transpose(transition, (0, 2, 1))
    new += spread
    return out, new


_REFERENCE_ANGLES = np.arange(box_fit.HEADINGS) * (0.5 * np.pi / box_fit.HEADINGS)
_REFERENCE_AXES = np.stack([
    np.stack([np.cos(_REFERENCE_ANGLES), np.sin(_REFERENCE_ANGLES)], axis=1),
    np.stack([-np.sin(_REFERENCE_ANGLES), np.cos(_REFERENCE_ANGLES)], axis=1)], axis=1)


def _reference_axes(heading: np.ndarray) -> np.ndarray:
    axes = np.empty((len(heading), 2, 2))
    axes[:, 0, 0] = axes[:, 1, 1] = np.cos(heading)
    axes[:, 0, 1] = np.sin(heading)
    axes[:, 1, 0] = -axes[:, 0, 1]
    return axes


def _reference_padded(points: list[np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    count = len(points)
    xyz = np.full((count, box_fit.POINTS, 3), np.nan)
    lengths = np.empty(count, np.int64)
    low_rank = np.empty(count, np.int64)
    high_rank = np.empty(count, np.int64)
    for i, cloud in enumerate(points):
        cloud = registration.subsample(cloud, box_fit.POINTS)
        n = len(cloud)
        xyz[i, :n] = cloud
        lengths[i] = n
        last = max(n - 1, 0)  # Python's round: half to even, as numpy's
        low_rank[i] = round(box_fit.EDGE_PERCENT / 100.0 * last)
        high_rank[i] = round((100.0 - box_fit.EDGE_PERCENT) / 100.0 * last)
    return xyz, lengths, low_rank, high_rank


def _reference_nan_to_zero(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), 0.0, values)


def _reference_fit(points: list[np.ndarray], rays: np.ndarray) -> box_fit.Footprints:
    count = len(points)
    rows = np.arange(count)
    xyz, lengths, low_rank, high_rank = _reference_padded(points)
    xy = xyz[:, :, :2]
    ray_xy = _reference_nan_to_zero(rays[:, :2])
    flat = np.linalg.norm(ray_xy, axis=1)
    ray = _reference_nan_to_zero(rays[:, :2] / np.maximum(flat, 1e-12)[:, None])  # [M,2]
    ok = (lengths >= box_fit.MIN_POINTS) & np.isfinite(flat) & (flat > 1e-6)
    valid = np.arange(box_fit.POINTS)[None, :] < lengths[:, None]  # [M,P]
    heights = np.sort(xyz[:, :, 2], axis=1)  # [M,P]
    bottom, top = heights[rows, low_rank], heights[rows, high_rank]
    sides = valid & (xyz[:, :, 2] < (top - box_fit.TOP_BAND * (top - bottom))[:, None])
    sides |= valid & (sides.sum(axis=1) < box_fit.MIN_POINTS)[:, None]  # seen from above: all
    # Projections on every heading's two axes: [M,K,2,P] (padding: NaN).
    along = np.matmul(_REFERENCE_AXES[None], np.swapaxes(xy, 1, 2)[:, None])
    ordered = np.sort(along, axis=3)
    low, high = ordered[rows, :, :, low_rank], ordered[rows, :, :, high_rank]  # [M,K,2]
    away = np.where(np.einsum('kad,md->mka', _REFERENCE_AXES, ray) > 0, 1.0, -1.0)
    near = np.where(away > 0, low, high)  # the camera sees the side the ray comes from
    extent = high - low
    size = np.maximum(extent.max(axis=2), 1e-12)  # [M,K]
    # Distances to the camera-side edges, in place of the projections: [M,K,2,P].
    edge_distance = np.abs(np.subtract(along, near[..., None], out=along), out=along)
    distance = np.minimum(edge_distance[:, :, 0], edge_distance[:, :, 1])  # [M,K,P]
    score = np.maximum(distance, box_fit.MIN_DISTANCE * size[..., None])
    score = np.divide(1.0, score, out=score)
    np.copyto(score, 0.0, where=~sides[:, None])
    best = np.argmax(score.sum(axis=2), axis=1)  # [M]
    nearest = distance[rows, best]  # [M,P]
    best_size = size[rows, best]
    closeness = (np.where(sides, nearest, 0.0).sum(axis=1)
                 / np.maximum(sides.sum(axis=1), 1) / best_size)
    # The faces of the best heading: each point near a camera-side edge belongs to the nearer
    # (the first on a tie).
    edge_distance = edge_distance[rows, best]  # [M,2,P]
    member = sides & (nearest < box_fit.FACE_BAND * best_size[:, None])
    second = member & (edge_distance[:, 1] < edge_distance[:, 0])
    faces = np.stack([member & ~second, second], axis=1)  # [M,2,P]
    heading = _reference_refined_heading(xy, faces, _REFERENCE_ANGLES[best])
    axes = _reference_axes(heading)  # [M,2,2]
    ordered = np.sort(np.matmul(axes, np.swapaxes(xy, 1, 2)), axis=2)  # [M,2,P]
    low, high = ordered[rows, :, low_rank], ordered[rows, :, high_rank]  # [M,2]
    away = np.where(np.einsum('mad,md->ma', axes, ray) > 0, 1.0, -1.0)
    near = np.where(away > 0, low, high)
    return box_fit.Footprints(heading=heading, near=near, away=away, extent=high - low,
                              closeness=closeness, ok=ok)


def _reference_refined_heading(xy: np.ndarray, faces: np.ndarray, coarse: np.ndarray
                               ) -> np.ndarray:
    # Point-last layouts (contiguous points: numpy's fast loops). The sums over points run
    # in point order, as running sums (numpy's strided sums and einsum's add one point at a
    # time too; a plain sum along the points would add them pairwise).
    count = len(faces)
    inside = faces[:, :, None, :]  # [M,2,1,P]
    coords = np.ascontiguousarray(np.swapaxes(xy, 1, 2))[:, None]  # [M,1,2,P]
    mean = (np.cumsum(np.where(inside, coords, 0.0), axis=3)[..., -1]
            / np.maximum(np.count_nonzero(faces, axis=2), 1)[..., None])  # [M,2,2]
    offsets = np.where(inside, coords - mean[..., None], 0.0)  # [M,2,2,P]
    x_turned = np.subtract(0.0, offsets[:, 1, 1])
    offsets[:, 1, 1] = offsets[:, 1, 0]
    offsets[:, 1, 0] = x_turned
    x, y = offsets[:, :, 0].reshape(count, -1), offsets[:, :, 1].reshape(count, -1)  # [M,2P]
    xx, xy_, yy = np.cumsum(np.stack([x * x, x * y, y * y], axis=1), axis=2)[..., -1].T
    scatter = np.stack([np.stack([xx, xy_], axis=1), np.stack([xy_, yy], axis=1)], axis=1)
    direction = np.linalg.eigh(scatter)[1][:, :, 1]  # [M,2] major axis: the second axis
    heading = np.arctan2(direction[:, 1], direction[:, 0]) - 0.5 * np.pi
    # The same rectangle within +-45 degrees of the search's heading.
    heading = coarse + np.angle(np.exp(4j * (heading - coarse))) / 4
    enough = faces.sum(axis=(1, 2)) >= box_fit.MIN_POINTS
    return np.where(enough, heading, coarse)


class _ReferenceTracker(Tracker):
    """The tracker's steps as they were before the change."""

    def update(self, stamp_ns: int, instances: list[Instance],
               points: list[np.ndarray] | None = None,
               fits: box_fit.Footprints | None = None) -> np.ndarray | None:
        if self._stamp_ns is not None and stamp_ns <= self._stamp_ns:
            self.stats.out_of_order += 1
            return None
        cfg = self.config
        tracks = self._tracks
        self.stats.frames += 1
        self._frame += 1
        if len(tracks):
            dt = np.full(len(tracks), (stamp_ns - self._stamp_ns) * 1e-9)
            tracks.state, tracks.cov = _reference_predict(tracks.state, tracks.cov, dt,
                                                          cfg.process_noise)
        self._stamp_ns = stamp_ns
        rows, cols = self._associate(instances)
        if (fits is None and points is not None and cfg.centre_model == 'box_fit'
                and len(instances)):
            fits = footprints(instances, points)
        self._update_matched(rows, cols, instances, stamp_ns, points, fits)
        if cfg.planar_motion:  # objects on the ground: no vertical motion by model
            tracks.state[:, 2, 1:] = 0.0
        detected = np.zeros(len(tracks), bool)
        detected[rows] = True
        tracks.confidence += cfg.confidence_rate * (detected - tracks.confidence)
        unmatched = np.ones(len(instances), bool)  # setdiff1d's result, without its sort
        unmatched[cols] = False
        new_tracks = np.flatnonzero(unmatched)
        track_of = np.full(len(instances), -1, np.int64)
        track_of[cols] = rows
        born = self._birth([instances[i] for i in new_tracks], stamp_ns,
                           None if points is None else [points[i] for i in new_tracks],
                           None if fits is None else fits.take(new_tracks))
        track_of[new_tracks[:born]] = np.arange(len(self._tracks) - born, len(self._tracks))
        self._confirm()
        ids = np.where(track_of >= 0, self._tracks.ids[np.maximum(track_of, 0)], 0)
        self._expire(stamp_ns)
        return ids

    def _associate(self, instances: list[Instance]) -> tuple[np.ndarray, np.ndarray]:
        tracks = self._tracks
        if not len(tracks) or not instances:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        cfg = self.config
        centres = np.stack([inst.centre for inst in instances])
        predicted = tracks.state[:, :, 0] - tracks.offset
        distance = np.linalg.norm(predicted[:, None, :] - centres[None, :, :], axis=2)
        gate = cfg.gate_distance + 3.0 * np.sqrt(np.maximum(tracks.cov[:, 0, 0], 0.0))
        boxes = np.array([inst.box for inst in instances], dtype=np.float64)
        overlap = _reference_box_iou(tracks.box, boxes)
        overlap[tracks.box_frame != self._frame - 1] = 0.0
        # Image boxes of different cameras of a rig do not compare.
        views = np.array([inst.view for inst in instances], dtype=np.int64)
        overlap[tracks.box_view[:, None] != views[None, :]] = 0.0
        cost = distance / gate[:, None] - cfg.mask_overlap_weight * overlap
        allowed = distance <= gate[:, None]
        cost = np.where(allowed, cost, _NO_MATCH)
        rows, cols = linear_sum_assignment(cost)
        ok = allowed[rows, cols]
        self.stats.assignments += int(ok.sum())
        return rows[ok], cols[ok]

    def _update_matched(self, rows: np.ndarray, cols: np.ndarray, instances: list[Instance],
                        stamp_ns: int, points: list[np.ndarray] | None,
                        fits: box_fit.Footprints | None) -> None:
        if not len(rows):
            return
        cfg = self.config
        tracks = self._tracks
        sizes = np.stack([instances[c].size for c in cols])
        # A detection whose extent differs from the track's (part of the object hidden, or
        # two objects merged) has a displaced centre: trust it less.
        change = np.abs(sizes - tracks.size[rows]) / np.maximum(tracks.size[rows], 1e-9)
        growth = 1.0 + cfg.size_change_noise * change.max(axis=1)
        measured = self._average_shape(rows, [instances[c] for c in cols], 1.0 / growth ** 2)
        sigma = self._sigma([instances[c] for c in cols]) * growth
        if cfg.centre_model == 'box_fit' and fits is not None:
            measured, boxed = self._box_centres(rows, [instances[c] for c in cols],
                                                fits.take(cols), measured, 1.0 / growth ** 2)
            sigma[boxed] *= cfg.box_fit_noise_factor
        if cfg.motion_registration and points is not None:
            measured, registered = self._register(rows, [points[c] for c in cols], measured)
            sigma[registered] *= cfg.registration_noise_factor
        tracks.state[rows], tracks.cov[rows] = kalman.update(
            tracks.state[rows], tracks.cov[rows], measured, sigma)
        tracks.size[rows] += cfg.size_rate * (sizes - tracks.size[rows])
        tracks.hits[rows] += 1
        tracks.seen_ns[rows] = stamp_ns
        tracks.box[rows] = np.array([instances[c].box for c in cols], dtype=np.float64)
        tracks.box_frame[rows] = self._frame
        tracks.box_view[rows] = [instances[c].view for c in cols]

    def _average_shape(self, rows: np.ndarray, instances: list[Instance], weight: np.ndarray
                       ) -> np.ndarray:
        tracks = self._tracks
        centres = np.stack([inst.centre for inst in instances])
        has = np.array([inst.push_direction is not None and np.isfinite(inst.top)
                        for inst in instances], bool)
        if not has.any():
            return centres
        rows = rows[has]
        push = np.array([inst.push for inst in instances])[has]
        top = np.array([inst.top for inst in instances])[has]
        direction = np.stack([instances[i].push_direction for i in np.nonzero(has)[0]])
        tracks.shapes[rows] += 1
        # Weighted running mean (the track's earlier detections weigh 1 each, at most
        # shape_average_hits - 1 of them): 1 = each frame's own values.
        earlier = np.minimum(tracks.shapes[rows], self.config.shape_average_hits) - 1
        rate = weight[has] / (earlier + weight[has])
        tracks.push[rows] += rate * (push - tracks.push[rows])
        pushed = centres[has] + direction * (tracks.push[rows] - push)[:, None]
        tracks.below_top[rows] += rate * (top - pushed[:, 2] - tracks.below_top[rows])
        pushed[:, 2] = top - tracks.below_top[rows]
        centres[has] = pushed
        return centres

    def _box_centres(self, rows: np.ndarray, instances: list[Instance],
                     fit: box_fit.Footprints, measured: np.ndarray, weight: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        tracks = self._tracks
        ok = fit.ok
        tracks.boxness[rows[ok]] += _BOXNESS_RATE * (fit.box_like[ok]
                                                     - tracks.boxness[rows[ok]])
        # Whether the fit's first axis is the track's first side (headings mod pi).
        known = np.isfinite(tracks.heading[rows])
        turn = np.angle(np.exp(2j * (fit.heading - np.nan_to_num(tracks.heading[rows])))) / 2
        same = np.where(known, np.abs(turn) <= 0.25 * np.pi, fit.extent[:, 0] >= fit.extent[:, 1])
        seen = np.where(same[:, None], fit.extent, fit.extent[:, ::-1])  # the track's order
        learn = fit.box_like
        sides = tracks.sides[rows]
        counted = (seen >= _SIDE_FLOOR * sides) & learn[:, None]
        tracks.sides_n[rows[learn]] += 1
        earlier = np.clip(tracks.sides_n[rows], 1, self.config.shape_average_hits) - 1
        rate = np.where(sides > 0, (weight / (earlier + weight))[:, None], 1.0) * counted
        tracks.sides[rows] = sides + rate * (seen - sides)
        tracks.heading[rows[learn]] = np.mod(
            fit.heading + np.where(same, 0.0, 0.5 * np.pi), np.pi)[learn]
        use = ok & (tracks.boxness[rows] >= 0.5) & (tracks.sides[rows] > 0).all(axis=1)
        sides = tracks.sides[rows]
        centres = box_fit.box_centres(fit, np.where(same[:, None], sides, sides[:, ::-1]))
        out = measured.copy()
        out[use, :2] = centres[use]
        own = np.stack([inst.centre for inst in instances])
        tracks.offset[rows] = np.where(use[:, None], out - own, 0.0)
        self.stats.box_fits += int(use.sum())
        self.stats.box_fallbacks += int((~use).sum())
        return out, use

    def _sigma(self, instances: list[Instance]) -> np.ndarray:
        cfg = self.config
        ranges = np.array([inst.range for inst in instances])
        return np.maximum(cfg.measurement_noise * ranges, cfg.min_measurement_noise)

    def _birth(self, instances: list[Instance], stamp_ns: int,
               points: list[np.ndarray] | None, fits: box_fit.Footprints | None) -> int:
        room = self.config.max_tracks - len(self._tracks)
        if len(instances) > room:
            self.stats.full += len(instances) - max(room, 0)
            instances = instances[: max(room, 0)]
        if not instances:
            return 0
        count = len(instances)
        centres = np.stack([inst.centre for inst in instances])
        size = self._tracks.cloud.shape[1]
        keep = points is not None and self.config.motion_registration
        cloud, cloud_count = registration.padded(
            [registration.subsample(p, size) for p in points[:count]] if keep
            else [np.zeros((0, 3))] * count, size)
        priors = (_INITIAL_VELOCITY_SIGMA, _INITIAL_ACCEL_SIGMA)[:self.config.order - 1]
        state, cov = kalman.initial(centres, self._sigma(instances), priors)
        self._tracks.append(_Tracks(
            state=state, cov=cov, ids=np.zeros(count, np.int64), hits=np.ones(count, np.int64),
            first_ns=np.full(count, stamp_ns, np.int64),
            seen_ns=np.full(count, stamp_ns, np.int64),
            size=np.stack([inst.size for inst in instances]),
            confidence=np.full(count, self.config.confidence_rate),
            box=np.array([inst.box for inst in instances], dtype=np.float64),
            box_frame=np.full(count, self._frame, np.int64),
            box_view=np.array([inst.view for inst in instances], dtype=np.int64),
            push=np.array([inst.push for inst in instances], dtype=np.float64),
            below_top=np.array([inst.top - inst.centre[2] if np.isfinite(inst.top) else 0.0
                                for inst in instances], dtype=np.float64),
            shapes=np.array([inst.push_direction is not None and np.isfinite(inst.top)
                             for inst in instances], dtype=np.int64),
            cloud=cloud, cloud_count=cloud_count, anchor=centres.copy(), centre=centres.copy(),
            heading=np.full(count, np.nan), sides=np.zeros((count, 2)),
            sides_n=np.zeros(count, np.int64), boxness=np.full(count, 0.5),
            offset=np.zeros((count, 3)),
        ))
        if self.config.centre_model == 'box_fit' and fits is not None:
            new = np.arange(len(self._tracks) - count, len(self._tracks))
            centres = self._box_centres(new, instances, fits.take(slice(0, count)), centres,
                                        np.ones(count))[0]
            self._tracks.state[new, :, 0] = centres
            self._tracks.anchor[new] = centres
        self.stats.births += count
        return count


# -- scenes -----------------------------------------------------------------------------------

CAMERA = np.array([-3.0, -1.0, 1.2])


def _box_points(centre: np.ndarray, half: np.ndarray, angle: float,
                rng: np.random.Generator) -> np.ndarray:
    """[N,3] noisy points on the faces of a yawed box that face CAMERA (a random count each)."""
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    points = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            normal = rotation[:, axis] * sign
            if normal @ (CAMERA - (centre + normal * half[axis])) <= 0:
                continue
            local = rng.uniform(-half, half, size=(int(rng.integers(30, 300)), 3))
            local[:, axis] = sign * half[axis]
            points.append(local @ rotation.T + centre)
    cloud = np.concatenate(points)
    return cloud + 0.005 * rng.standard_normal(cloud.shape)


def _sphere_points(centre: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """[N,3] noisy points on the half of a sphere that faces CAMERA."""
    normal = rng.standard_normal((int(rng.integers(200, 900)), 3))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    points = centre + radius * normal
    seen = np.einsum('nd,nd->n', normal, CAMERA - points) > 0
    return points[seen] + 0.005 * rng.standard_normal((int(seen.sum()), 3))


def _detection(points: np.ndarray, label: int, view: int, rng: np.random.Generator,
               ray: bool = True) -> Instance:
    """A detection of ``points`` as ``measure_instances`` gives it (``ray``: a viewing ray and
    a top; else a rig merge's: neither)."""
    mean = points.mean(axis=0)
    direction = (mean - CAMERA) / np.linalg.norm(mean - CAMERA)
    push = float(0.1 + 0.05 * rng.random())
    row, col = (int(v) for v in rng.integers(0, 200, size=2))
    box = (row, col, row + int(rng.integers(5, 60)), col + int(rng.integers(5, 60)))
    return Instance(label, len(points), box, mean + push * direction if ray else mean,
                    np.ptp(points, axis=0), float(np.linalg.norm(mean - CAMERA)), view=view,
                    push=push if ray else 0.0, push_direction=direction if ray else None,
                    top=float(np.percentile(points[:, 2], 98)) if ray else float('nan'))


def _frames(seed: int, count: int = 36) -> list[tuple[int, list[Instance], list[np.ndarray]]]:
    """Frames of two turning boxes, a ball and a flicker, with misses, gaps and rig views."""
    rng = np.random.default_rng(seed)
    frames, stamp = [], 0
    for k in range(count):
        stamp += int(rng.choice([66_666_667, 66_666_667, 133_333_333, 400_000_000]))
        clouds = [
            _box_points(np.array([0.2 + 0.02 * k, 0.4, 0.3]), np.array([0.35, 0.22, 0.3]),
                        0.1 + 0.05 * k, rng),
            _box_points(np.array([1.4, -0.5 + 0.015 * k, 0.25]), np.array([0.2, 0.2, 0.25]),
                        1.0 - 0.03 * k, rng),
            _sphere_points(np.array([-0.6, 1.2 - 0.02 * k, 0.35]), 0.3, rng)]
        if rng.random() < 0.3:  # a flicker somewhere else: tentative tracks that die
            clouds.append(rng.uniform(-2.0, 2.0, size=3) + 0.05 * rng.standard_normal(
                (int(rng.integers(5, 80)), 3)))
        keep = [i for i in range(len(clouds)) if rng.random() > 0.15]  # misses
        instances = [_detection(clouds[i], label, int(rng.integers(0, 2)), rng,
                                ray=rng.random() > 0.1) for label, i in enumerate(keep, 1)]
        frames.append((stamp, instances, [clouds[i] for i in keep]))
    return frames


CONFIGS = {
    'box_fit': TrackerConfig(),
    'surface': TrackerConfig(centre_model='surface'),
    'constant_velocity_planar': TrackerConfig(motion_model='constant_velocity',
                                              planar_motion=True),
    'full': TrackerConfig(max_tracks=3),
    'registration': TrackerConfig(motion_registration=True),
}


def _assert_same_state(new: Tracker, old: Tracker) -> None:
    for name in _Tracks.__dataclass_fields__:
        assert _same(getattr(new._tracks, name), getattr(old._tracks, name)), name
    assert new.stats == old.stats
    for first, second in zip(new.tracks(), old.tracks(), strict=True):
        for name in first.__dataclass_fields__:
            assert _same(getattr(first, name), getattr(second, name)), name


# -- tests ------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_tracker_gives_the_reference_bits(name):
    config = CONFIGS[name]
    for seed in (0, 1, 2):
        new, old = Tracker(config), _ReferenceTracker(config)
        for stamp, instances, points in _frames(seed, 20 if config.motion_registration else 36):
            # Half the frames with their fits made by the caller (PerceptionTracker batches).
            fits = (footprints(instances, points)
                    if instances and stamp % 2 and config.centre_model == 'box_fit' else None)
            ids = new.update(stamp, instances, points, fits)
            assert _same(ids, old.update(stamp, instances, points, fits))
            _assert_same_state(new, old)
        # The scene reaches every branch: births, confirmations, deaths (but for a full
        # tracker: the flickers start no track), a full tracker, box and surface centres.
        assert new.stats.confirmed > 0
        assert new.stats.full > 0 if name == 'full' else new.stats.deaths > 0
        if config.centre_model == 'box_fit':
            assert new.stats.box_fits > 0 and new.stats.box_fallbacks > 0
    assert _same(new.update(stamp, [], [], None), old.update(stamp, [], [], None))  # old stamp


def test_frames_without_a_box_like_fit_give_the_reference_bits():
    # Every third frame's fits hug no rectangle (boxes seen badly): box-like tracks keep their
    # box centres without learning sides that frame (Tracker._box_centres' shortcut).
    config = CONFIGS['box_fit']
    shortcut_boxes = 0
    for seed in (0, 1, 2):
        new, old = Tracker(config), _ReferenceTracker(config)
        for k, (stamp, instances, points) in enumerate(_frames(seed)):
            fits = footprints(instances, points) if instances else None
            if fits is not None and k % 3 == 2:
                fits.closeness = np.maximum(fits.closeness, 2.0 * box_fit.BOX_CLOSENESS)
            boxed = new.stats.box_fits
            ids = new.update(stamp, instances, points, fits)
            assert _same(ids, old.update(stamp, instances, points, fits))
            _assert_same_state(new, old)
            if fits is not None and not fits.box_like.any():
                shortcut_boxes += new.stats.box_fits - boxed
    assert shortcut_boxes > 0


#: Largest difference of the torch fit from the numpy reference (m, rad; the closeness is a
#: fraction: ``_CLOSENESS_TOLERANCE``): float rounding (sums in another order).
_TOLERANCE = 1e-9
_CLOSENESS_TOLERANCE = 1e-12


def _random_batch(rng: np.random.Generator, size: int
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """Boxes, spheres and random clouds (0-400 points: empty, too few, padded, subsampled)."""
    clouds = []
    for _ in range(size):
        kind = rng.integers(0, 4)
        if kind == 0:
            clouds.append(_box_points(rng.uniform(-1, 1, 3) + [0, 0, 0.3],
                                      rng.uniform(0.1, 0.5, 3), rng.uniform(0, 3), rng))
        elif kind == 1:
            clouds.append(_sphere_points(rng.uniform(-1, 1, 3), 0.3, rng))
        else:
            clouds.append(rng.standard_normal((int(rng.integers(0, 400)), 3))
                          * 10.0 ** rng.uniform(-2, 1))
    rays = rng.standard_normal((size, 3))
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    rays[rng.random(size) < 0.2] = np.nan
    return clouds, rays


def _assert_close_fits(new: box_fit.Footprints, old: box_fit.Footprints, where) -> None:
    """Equal ``ok`` and ``away``, the rest within ``_TOLERANCE`` (NaN where the other is)."""
    assert _same(new.ok, old.ok) and _same(new.away, old.away), where
    for name in ('heading', 'near', 'extent', 'closeness'):
        a, b = getattr(new, name), getattr(old, name)
        assert a.dtype == b.dtype and a.shape == b.shape, (where, name)
        atol = _CLOSENESS_TOLERANCE if name == 'closeness' else _TOLERANCE
        np.testing.assert_allclose(a, b, rtol=0, atol=atol, equal_nan=True,
                                   err_msg=f'{where} {name}')


def test_footprint_fits_match_the_reference():
    # Batches that grow and shrink, padded sets, sets without points or too few, and
    # detections without a viewing ray.
    rng = np.random.default_rng(5)
    # (No empty batch: the fit is not called then.)
    for size in (8, 1, 12, 3, 8, 40, 20, 2) + tuple(int(n) for n in rng.integers(1, 16, 24)):
        clouds, rays = _random_batch(rng, size)
        _assert_close_fits(box_fit.fit_footprints(clouds, rays), _reference_fit(clouds, rays),
                           size)


def test_a_mirror_symmetric_footprint_may_fit_either_way():
    # Points mirrored about the output x axis, seen along it: headings h and pi/2 - h score
    # the same mathematically, so which of them the search takes depends on the rounding of
    # the sums (numpy adds pairwise, torch in its own order): the torch fit takes the
    # reference's heading or its mirror image, the same rectangle mirrored (the extents
    # swapped, the same closeness). These sets show it: some take the other heading.
    rng = np.random.default_rng(0)
    ray = np.array([[1.0, 0.0, 0.0]])
    mirrored = 0
    for trial in range(60):
        count = int(rng.integers(60, 128))
        half = rng.uniform(-0.3, 0.3, (count, 3))
        if trial % 2:  # a disc's edge, else a filled square
            half /= np.linalg.norm(half, axis=1, keepdims=True) / 0.3
        half[:, 2] = rng.uniform(0.0, 0.6, count)
        cloud = np.concatenate([half, half * [1.0, -1.0, 1.0]]) + [2.0, 0.0, 0.0]
        new, old = box_fit.fit_footprints([cloud], ray), _reference_fit([cloud], ray)
        if abs(new.heading[0] - old.heading[0]) <= _TOLERANCE:
            _assert_close_fits(new, old, trial)
            continue
        mirrored += 1
        assert new.heading[0] == pytest.approx(0.5 * np.pi - old.heading[0], abs=1e-9), trial
        np.testing.assert_allclose(new.extent, old.extent[:, ::-1], rtol=0, atol=1e-9)
        np.testing.assert_allclose(new.closeness, old.closeness, rtol=0, atol=1e-12)
        assert _same(new.ok, old.ok)
    assert 0 < mirrored < 60, mirrored


def test_one_step_for_every_track_predicts_as_the_array_of_steps():
    rng = np.random.default_rng(6)
    for order in (2, 3):
        state, cov = rng.standard_normal((4, 3, order)), rng.standard_normal((4, order, order))
        for dt in (0.0, 1 / 15, 0.4):
            new = kalman.predict(state, cov, dt, 2.0)
            old = _reference_predict(state, cov, np.full(4, dt), 2.0)
            assert _same(new[0], old[0]) and _same(new[1], old[1])


def test_box_iou_on_python_floats_gives_the_array_bits():
    rng = np.random.default_rng(7)
    for tracks, found in ((1, 1), (2, 2), (3, 3), (1, 9), (4, 4), (0, 3)):
        first = rng.integers(0, 200, (tracks, 4)).astype(np.float64)
        second = rng.integers(0, 200, (found, 4)).astype(np.float64)
        first[:, 2:] += rng.integers(0, 60, (tracks, 2))
        second[:, 2:] += rng.integers(0, 60, (found, 2))
        second[:1] = first[:1] if tracks and found else second[:1]  # an IoU of 1
        expected = _reference_box_iou(first, second)
        assert _same(tracker._box_iou_pairs(first, second), expected)
        assert _same(tracker._box_iou_arrays(first, second), expected)
        assert _same(tracker._box_iou(first, second), expected)


def test_unpacked_detections_are_the_instances_gathered():
    # unpack hands the tracker column slices of its rows (Detections.from_rows); they must be
    # the arrays Detections.of gathers from the frame's instances, to the bit.
    rng = np.random.default_rng(9)
    frames, labels = 3, 6
    table = torch.from_numpy(rng.standard_normal((frames, labels, 17)))
    table[:, :, 0] = torch.from_numpy((rng.random((frames, labels)) < 0.6).astype(np.float64))
    table[:, :, 1:5] = torch.from_numpy(rng.integers(0, 500, (frames, labels, 4)).astype(float))
    table[0, 1, 16] = float('nan')  # no top: not shaped
    stats = InstanceStats(table, torch.arange(frames * labels).view(frames, labels),
                          torch.zeros(frames, 4, dtype=torch.int64))
    found = to_host(stats, Labels(None, stats.pixels, torch.zeros(frames, 2), True),
                    np.array([4, 4, 4]))
    for frame in found:
        if not frame.instances:
            assert frame.detections is None
            continue
        want = Detections.of(frame.instances)
        for name in Detections.__dataclass_fields__:
            assert _same(getattr(frame.detections, name), getattr(want, name)), name
    assert any(frame.detections is not None and not frame.detections.shaped.all()
               for frame in found)


def test_unpacked_instances_are_made_once_when_first_read():
    rng = np.random.default_rng(4)
    table = torch.from_numpy(rng.standard_normal((1, 3, 17)))
    table[:, :, 0] = 1.0  # every label measured
    table[:, :, 1:5] = torch.from_numpy(rng.integers(0, 500, (1, 3, 4)).astype(float))
    stats = InstanceStats(table, torch.arange(3).view(1, 3), torch.zeros(1, 4, dtype=torch.int64))
    (frame,) = to_host(stats, Labels(None, stats.pixels, torch.zeros(1, 2), True), np.array([4]))
    assert len(frame.instances) == 3 and frame.instances._made is None  # the count: no objects
    first = list(frame.instances)
    first[0].view = 2  # a rig merge sets each instance's camera: it must stay set
    assert [inst.label for inst in frame.instances] == [1, 2, 3]
    assert frame.instances[0] is first[0] and frame.instances[0].view == 2
    assert _same(frame.instances[1].centre, frame.detections.centre[1])
    assert frame.instances[2].box == tuple(int(v) for v in frame.detections.box[2])


def test_one_camera_tracking_makes_no_instance_objects(monkeypatch):
    # The one-camera tracker reads unpack's columns (Detections) and counts: a frame of ~27
    # parts made 27 Instance objects before (a random-weight network's masks).
    from vggt4d_ros.perception import perception_tracker
    from vggt4d_ros.perception.observation import observations_from_window
    from vggt4d_ros.tools import bench_perception
    args = bench_perception._parse(['--windows', '3', '--height', '120', '--width', '160'])
    outputs, scale = bench_perception._windows(args)
    unpacked, unpack = [], perception_tracker.unpack

    def kept(*unpack_args, **kwargs):
        frames = unpack(*unpack_args, **kwargs)
        unpacked.extend(frames)
        return frames

    monkeypatch.setattr(perception_tracker, 'unpack', kept)
    config = bench_perception._settings(scale)['all outputs (grid stride 8)']
    tracked = perception_tracker.PerceptionTracker(config)
    for out in outputs:
        tracked.update(observations_from_window(out.result, out.update))
    assert sum(len(frame.instances) for frame in unpacked) >= 2 * len(unpacked)  # objects seen
    assert tracked.tracker.tracks()  # and tracked
    assert all(frame.instances._made is None for frame in unpacked)
