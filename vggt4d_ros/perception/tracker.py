# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Multi-object tracker: frame instances -> tracks with stable ids and velocities.

A "frame" here is one time step: one camera image, or all cameras of a rig step with their
detections merged (``rig_merge``; image boxes are compared only within one camera). Per frame
(in stamp order): predict every track to the frame's stamp (constant velocity), associate
tracks and instances by a globally optimal assignment (``linear_sum_assignment``) on a cost
of centroid distance over the gate minus a bonus for image-box overlap with the track's
detection in the previous frame, update the matched tracks (Kalman filter), start a tentative
track for every unmatched instance. With ``motion_registration`` (off by default) a matched
track's measurement is its reference point moved by the registered motion of its points
(``registration``) instead of the detection's centre. With ``centre_model`` 'box_fit' (the
default) a box-like track's horizontal centre comes from an oriented rectangle fitted to each
detection's ground footprint (``box_fit``), completed with the track's remembered extents.

Life of a track: tentative until ``confirm_hits`` detections, then confirmed and given the
next public id (1, 2, ...; ids are never reused within a tracker's life, also not after
``reset``). A track missed for longer than ``max_miss_s`` (tentative: ``tentative_max_miss_s``)
is deleted. Re-entry: an object that comes back within ``max_miss_s`` near its predicted
position (the gate widens with the prediction's uncertainty) keeps its id; later it gets a new
one. Memory is bounded by ``max_tracks`` (instances beyond it start no track, counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from vggt4d_ros.perception import box_fit
from vggt4d_ros.perception import kalman
from vggt4d_ros.perception.config import TrackerConfig
from vggt4d_ros.perception.instances import Detections
from vggt4d_ros.perception.instances import Instance
from vggt4d_ros.perception import registration

_NO_MATCH = 1e6
#: Velocity standard deviation of a new track (units/s): it starts at rest, unsure.
_INITIAL_VELOCITY_SIGMA = 2.0
#: Acceleration standard deviation of a new track (units/s^2), constant-acceleration model.
_INITIAL_ACCEL_SIGMA = 2.0
#: Per-detection rate of a track's box-likeness average (its footprints hug a rectangle).
_BOXNESS_RATE = 0.3
#: A footprint extent below this fraction of the remembered one saw less than the body (a
#: face hidden or edge-on): it does not update the memory.
_SIDE_FLOOR = 0.8


@dataclass
class Track:
    """A confirmed track as output (output frame, map units).

    Attributes:
        track_id: public id (>= 1), stable over the track's life.
        position: [3] centre estimate at ``stamp_ns``.
        velocity: [3] units/s.
        size: [3] full extent along the output axes.
        stamp_ns: time the estimate refers to.
        age_s: time since the track's first detection.
        hits: detections so far.
        missed_s: time since its last detection (0 when detected in this frame).
        confidence: running detection rate in [0, 1].
        position_var: variance of each position coordinate.
        velocity_var: variance of each velocity coordinate.

    """

    track_id: int
    position: np.ndarray
    velocity: np.ndarray
    size: np.ndarray
    stamp_ns: int
    age_s: float
    hits: int
    missed_s: float
    confidence: float
    position_var: float
    velocity_var: float


@dataclass
class TrackerStats:
    """Counters over the tracker's life."""

    frames: int = 0
    out_of_order: int = 0
    births: int = 0
    confirmed: int = 0
    deaths: int = 0
    full: int = 0
    resets: int = 0
    assignments: int = 0
    registered: int = 0
    registration_fallbacks: int = 0
    box_fits: int = 0
    box_fallbacks: int = 0
    box_skipped: int = 0
    rescales: int = 0


@dataclass
class _Tracks:
    """Struct of arrays over live tracks (T of them)."""

    state: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 2)))
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 2)))
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # 0 = tentative
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    first_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    seen_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    size: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0))
    box: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    box_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    box_view: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    push: np.ndarray = field(default_factory=lambda: np.zeros(0))  # average push back
    below_top: np.ndarray = field(default_factory=lambda: np.zeros(0))  # average top - z
    shapes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # averaged
    # Motion registration: the last detection's points [T,P,3] (padded), their count, the
    # body-fixed reference point moved with the registered motions [T,3].
    cloud: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3)))
    cloud_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    anchor: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    centre: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # last measured
    # Box fit: the heading (output x-y, mod pi; NaN: none yet) of the first remembered side,
    # the remembered footprint extents [T,2] (0: none yet), how many detections averaged them,
    # and the running box-likeness of the track's footprints.
    heading: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sides: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    sides_n: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    boxness: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # The last box-fit centre minus the detection's own centre (0 without a box fit): the
    # assignment compares the detections' centres with the predictions moved back by it.
    offset: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def __len__(self) -> int:
        return len(self.ids)

    def keep(self, selected: np.ndarray) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name)[selected])

    def append(self, other: '_Tracks') -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))


class Tracker:
    """Tracks objects over frames; call :meth:`update` once per frame in stamp order."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.stats = TrackerStats()
        self._tracks = _empty_tracks(self.config)
        self._stamp_ns: int | None = None
        self._frame = 0
        self._next_id = 1

    def reset(self) -> None:
        """Drop every track (a map reset: positions of the old segment mean nothing now)."""
        self._tracks = _empty_tracks(self.config)
        self._stamp_ns = None
        self.stats.resets += 1

    def rescale(self, factor: float, pivot: np.ndarray) -> None:
        """Re-express the tracks after the map's scale changed: ``x -> pivot + f (x - pivot)``.

        The map's scale changes when it first becomes metric (everything scaled by the fused
        metres per unit) and when the fusion corrects it (``mapping.MetricInfo.change``). The
        next detections come in the new scale, so the tracks must too: unmoved, the first
        change leaves them coasting in the old units beside new tracks of the same objects,
        and a correction of 1 % reads as a jump of 1 % of the distance from the pivot, which
        the filter takes for motion. Positions (state, remembered points, anchors, centres)
        move about ``pivot`` [3] (output frame); velocities, accelerations, sizes and the
        remembered lengths scale by ``factor`` (f); variances by its square. Image boxes, ids,
        ages and counts stay.
        """
        if not factor > 0.0:
            raise ValueError(f'scale factor must be positive, got {factor}')
        tracks = self._tracks
        pivot = np.asarray(pivot, dtype=np.float64).reshape(3)

        def moved(points: np.ndarray) -> np.ndarray:
            return pivot + factor * (points - pivot)

        tracks.state[:, :, 0] = moved(tracks.state[:, :, 0])
        tracks.state[:, :, 1:] *= factor
        tracks.cov *= factor * factor
        tracks.cloud = moved(tracks.cloud)  # padding moves too: never read past the count
        tracks.anchor = moved(tracks.anchor)
        tracks.centre = moved(tracks.centre)
        for lengths in (tracks.size, tracks.push, tracks.below_top, tracks.sides,
                        tracks.offset):
            lengths *= factor
        self.stats.rescales += 1

    @property
    def live_tracks(self) -> int:
        """Tracks held (tentative and confirmed): bounded by ``max_tracks``."""
        return len(self._tracks)

    def update(self, stamp_ns: int, instances: list[Instance] | Detections,
               points: list[np.ndarray] | None = None,
               fits: box_fit.Footprints | None = None) -> np.ndarray | None:
        """Process one frame's instances (and their points [n_i,3], output frame, if known).

        ``instances``: the Instance objects or their fields as arrays (``Detections``, e.g.
        ``FrameInstances.detections``: nothing to gather here).
        ``points`` are needed by ``motion_registration`` and the 'box_fit' centre model
        (without them: each detection's surface centre). ``fits``: the instances' footprint
        fits (``footprints``) when the caller made them already (one batched fit for several
        frames costs less per detection); None: fitted here from ``points``.

        Returns:
            [M] int64 public track id per instance (0: not a confirmed track), or None when
            the frame was not newer than the last one (skipped, counted).

        """
        if self._stamp_ns is not None and stamp_ns <= self._stamp_ns:
            self.stats.out_of_order += 1
            return None
        cfg = self.config
        tracks = self._tracks
        self.stats.frames += 1
        self._frame += 1
        if len(tracks):
            tracks.state, tracks.cov = kalman.predict(
                tracks.state, tracks.cov, (stamp_ns - self._stamp_ns) * 1e-9, cfg.process_noise)
        self._stamp_ns = stamp_ns
        found = _gathered(instances)
        count = 0 if found is None else len(found)
        rows, cols = self._associate(found)
        if fits is None and points is not None and cfg.centre_model == 'box_fit' and count:
            fits = footprints(found, points, cfg.box_fit_max_per_frame)
        if fits is not None and count:  # the same bound where the caller fitted
            self.stats.box_skipped += int(np.count_nonzero(  # a Python int for the JSON stats
                found.label > cfg.box_fit_max_per_frame))
        # Every instance matched (the usual frame; ``cols`` ascending): the detections need
        # no reordering and none starts a track.
        in_order = len(cols) == count
        self._update_matched(rows, cols, found, stamp_ns, points, fits, in_order)
        if cfg.planar_motion:  # objects on the ground: no vertical motion by model
            tracks.state[:, 2, 1:] = 0.0
        every_seen = len(rows) == len(tracks)
        # Every track seen: the detection mask's 1.0 (its bools' cast) without the mask.
        detected = 1.0 if every_seen else _mask(rows, len(tracks))
        tracks.confidence += cfg.confidence_rate * (detected - tracks.confidence)
        if in_order:  # ~3 us per frame less than _start_tracks' bookkeeping (2-core machine)
            self._confirm()
            ids = tracks.ids[rows]
        else:
            ids = self._start_tracks(found, rows, cols, stamp_ns, points, fits)
        self._expire(stamp_ns, every_seen)
        return ids

    def tracks(self) -> list[Track]:
        """Return the confirmed tracks missed for at most ``publish_coasting_s``, by id."""
        tracks = self._tracks
        if self._stamp_ns is None:
            return []
        out = []
        for index in np.argsort(tracks.ids):
            missed = (self._stamp_ns - tracks.seen_ns[index]) * 1e-9
            if tracks.ids[index] == 0 or missed > self.config.publish_coasting_s:
                continue
            out.append(Track(
                track_id=int(tracks.ids[index]),
                position=tracks.state[index, :, 0].copy(),
                velocity=tracks.state[index, :, 1].copy(),
                size=tracks.size[index].copy(),
                stamp_ns=int(self._stamp_ns),
                age_s=(self._stamp_ns - tracks.first_ns[index]) * 1e-9,
                hits=int(tracks.hits[index]),
                missed_s=missed,
                confidence=float(tracks.confidence[index]),
                position_var=float(tracks.cov[index, 0, 0]),
                velocity_var=float(tracks.cov[index, 1, 1]),
            ))
        return out

    # -- steps ------------------------------------------------------------------------------

    def _associate(self, found: Detections | None) -> tuple[np.ndarray, np.ndarray]:
        """Globally optimal gated assignment: (track rows, instance columns), by column."""
        tracks = self._tracks
        if not len(tracks) or found is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        cfg = self.config
        predicted = tracks.state[:, :, 0] - tracks.offset
        difference = predicted[:, None, :] - found.centre[None, :, :]
        # np.linalg.norm's own sum for a vector norm along an axis, without its checks.
        distance = np.sqrt(np.add.reduce(difference * difference, axis=2))
        gate = (cfg.gate_distance + 3.0 * np.sqrt(np.maximum(tracks.cov[:, 0, 0], 0.0)))[:, None]
        overlap = _box_iou(tracks.box, found.box)
        # Only last frame's boxes compare, and image boxes of different cameras of a rig not.
        overlap[(tracks.box_frame != self._frame - 1)[:, None]
                | (tracks.box_view[:, None] != found.view[None, :])] = 0.0
        cost = distance / gate - cfg.mask_overlap_weight * overlap
        allowed = distance <= gate
        cost = np.where(allowed, cost, _NO_MATCH)
        rows, cols = linear_sum_assignment(cost)
        ok = allowed[rows, cols]
        if np.count_nonzero(ok) < len(ok):  # a pair beyond the gate (the optimum had to)
            rows, cols = rows[ok], cols[ok]
        self.stats.assignments += len(rows)
        # The pairs in detection order: a frame whose every detection matched takes them
        # as they are, whichever track each matched (a third of the benchmark scene's frames
        # swap two: ~4 us per frame less than reordering the detections and fits).
        matched = cols.tolist()
        if matched != sorted(matched):
            order = np.argsort(cols)
            rows, cols = rows[order], cols[order]
        return rows, cols

    def _update_matched(self, rows: np.ndarray, cols: np.ndarray, found: Detections | None,
                        stamp_ns: int, points: list[np.ndarray] | None,
                        fits: box_fit.Footprints | None, in_order: bool) -> None:
        """Update the tracks ``rows`` [K] with their detections ``cols`` [K] (``update``'s).

        ``in_order``: ``cols`` is every detection in order.
        """
        if not len(rows):
            return
        cfg = self.config
        tracks = self._tracks
        # Every instance matched in order (the usual frame): the detections as they are, not
        # copies (~15 numpy calls fewer with the fits); the steps only read them.
        matched = found if in_order else found.take(cols)
        if fits is not None and not in_order:
            fits = fits.take(cols)
        # Every track matched, in row order: the tracks' fields as views, written back in
        # place, not fancy-indexed copies (~25 gathers and scatters: ~8 us per frame less on
        # the 2-core machine).
        every_track = len(rows) == len(tracks) and rows.tolist() == list(range(len(rows)))
        at = slice(None) if every_track else rows
        sizes = matched.size
        known = tracks.size[at]
        # A detection whose extent differs from the track's (part of the object hidden, or
        # two objects merged) has a displaced centre: trust it less.
        change = np.abs(sizes - known) / np.maximum(known, 1e-9)
        # np.maximum.reduce: .max(axis=1) without its Python wrapper (~1 us).
        growth = 1.0 + cfg.size_change_noise * np.maximum.reduce(change, axis=1)
        weight = 1.0 / growth ** 2
        measured = self._average_shape(at, matched, weight)
        sigma = self._sigma(matched.range) * growth
        if cfg.centre_model == 'box_fit' and fits is not None:
            measured, boxed = self._box_centres(at, matched.centre, fits, measured, weight)
            if np.count_nonzero(boxed):  # the masked update costs ~1.5 us also when empty
                sigma[boxed] *= cfg.box_fit_noise_factor
        if cfg.motion_registration and points is not None:
            measured, registered = self._register(rows, [points[c] for c in cols], measured)
            sigma[registered] *= cfg.registration_noise_factor
        tracks.state[at], tracks.cov[at] = kalman.update(
            tracks.state[at], tracks.cov[at], measured, sigma)
        tracks.size[at] = known + cfg.size_rate * (sizes - known)
        tracks.hits[at] += 1
        tracks.seen_ns[at] = stamp_ns
        tracks.box[at] = matched.box
        tracks.box_frame[at] = self._frame
        tracks.box_view[at] = matched.view

    def _average_shape(self, rows: np.ndarray | slice, found: Detections, weight: np.ndarray
                       ) -> np.ndarray:
        """Centres [M,3] of matched detections with their shape terms replaced by averages.

        Two terms of a detection's centre depend on which faces of the object the camera
        sees: the push back along the viewing ray (the hidden depth) and the height (the
        visible points' mean: a turning box's side faces pull it down, its top up). A rigid
        object keeps both, so each track averages them (``shape_average_hits``): the centre
        is the visible mean pushed back by the track's push, at the track's depth below the
        top of the visible points (the top stays put while the faces change). ``weight`` [M]
        in (0, 1]: a detection whose size differs from the track's (partly hidden, or merged
        with a neighbour) shows another shape and moves the averages less (the inverse of its
        noise growth squared, as its weight in the filter). ``rows``: the tracks' rows [M]
        int64, or slice(None): every track, in order.
        """
        tracks = self._tracks
        has = found.shaped
        count = np.count_nonzero(has)  # .any() and .all() cost ~4x as much on a few elements
        if not count:
            return found.centre.copy()
        centre, push, top, direction = found.centre, found.push, found.top, found.direction
        if count < len(has):  # only the detections with a ray and a top average (rare)
            rows, weight = _subset(rows, has), weight[has]
            centre, push, top, direction = centre[has], push[has], top[has], direction[has]
        # Each average gathered once and written back once (~10 numpy calls fewer than
        # updating in place at ``rows``).
        shapes = tracks.shapes[rows] + 1
        tracks.shapes[rows] = shapes
        # Weighted running mean (the track's earlier detections weigh 1 each, at most
        # shape_average_hits - 1 of them): 1 = each frame's own values.
        earlier = np.minimum(shapes, self.config.shape_average_hits) - 1
        rate = weight / (earlier + weight)
        average_push = tracks.push[rows]
        average_push += rate * (push - average_push)
        tracks.push[rows] = average_push
        pushed = centre + direction * (average_push - push)[:, None]
        below_top = tracks.below_top[rows]
        below_top += rate * (top - pushed[:, 2] - below_top)
        tracks.below_top[rows] = below_top
        pushed[:, 2] = top - below_top
        if count == len(has):
            return pushed
        centres = found.centre.copy()
        centres[has] = pushed
        return centres

    def _box_centres(self, rows: np.ndarray | slice, own: np.ndarray,
                     fit: box_fit.Footprints, measured: np.ndarray, weight: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Centres [M,3]: ``measured`` with x-y from the footprint rectangles of box-like tracks.

        Each detection's footprint has a rectangle (``fit``, M of them: ``box_fit``); the
        track's box-likeness averages whether they hug one. The fit's two axes are matched
        to the track's remembered sides by heading continuity (the first
        fit: the longer extent first); each side's memory is a weighted running mean over
        ``shape_average_hits`` detections of the extents that are not below
        ``_SIDE_FLOOR`` of it (a detection shows less of the body, never more, but for a
        merge: ``weight`` [M] as in ``_average_shape``). Box-like tracks take the camera-side
        edges moved away by half the remembered sides; the others, and fits without enough
        points or a viewing ray, keep ``measured`` [M,3] (counted). ``own`` [M,3]: the
        detections' own centres; ``rows`` as in ``_average_shape``. Also returns which
        detections [M] bool got the box centre.
        """
        tracks = self._tracks
        ok = fit.ok
        learn = fit.box_like
        boxness = tracks.boxness[rows]
        if np.count_nonzero(ok):
            boxness = np.where(ok, boxness + _BOXNESS_RATE * (learn - boxness), boxness)
            tracks.boxness[rows] = boxness
        # No box-like footprint (most of the benchmark scene's frames): the sides and headings
        # stay as they are, ~25 numpy calls (~8 us per frame, 2-core machine) fewer.
        if np.count_nonzero(learn):
            same, sides = self._learn_sides(rows, fit, learn, weight)
        else:
            same, sides = None, tracks.sides[rows]
        use = ok & (boxness >= 0.5) & np.logical_and.reduce(sides > 0, axis=1)  # .all: ~1 us more
        boxed = int(np.count_nonzero(use))
        self.stats.box_fits += boxed
        self.stats.box_fallbacks += len(use) - boxed
        if not boxed:  # most detections (not box-like, or no fit): ~15 numpy calls fewer
            tracks.offset[rows] = 0.0
            return measured.copy(), use
        if same is None:  # the headings did not change
            same = self._same_axes(tracks.heading[rows], fit)
        centres = box_fit.box_centres(fit, np.where(same[:, None], sides, sides[:, ::-1]))
        out = measured.copy()
        out[use, :2] = centres[use]
        tracks.offset[rows] = np.where(use[:, None], out - own, 0.0)
        return out, use

    def _learn_sides(self, rows: np.ndarray | slice, fit: box_fit.Footprints,
                     learn: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Average the box-like (``learn`` [M] bool) fits' extents into their tracks' sides.

        ``_box_centres``' side memory; ``rows`` as there. Returns whether each fit's first
        axis is its track's first side [M] bool (before this fit's heading is remembered) and
        the tracks' sides [M,2] after the update.
        """
        tracks = self._tracks
        same = self._same_axes(tracks.heading[rows], fit)
        seen = np.where(same[:, None], fit.extent, fit.extent[:, ::-1])  # the track's order
        sides = tracks.sides[rows]
        counted = (seen >= _SIDE_FLOOR * sides) & learn[:, None]
        sides_n = tracks.sides_n[rows] + learn
        tracks.sides_n[rows] = sides_n
        earlier = np.minimum(np.maximum(sides_n, 1), self.config.shape_average_hits) - 1
        rate = np.where(sides > 0, (weight / (earlier + weight))[:, None], 1.0) * counted
        # Only counted extents move a side: a rate of 0 times a NaN extent (a fit that is not
        # ok may have one) would wipe the memory out for good.
        sides = np.where(counted, sides + rate * (seen - sides), sides)
        tracks.sides[rows] = sides
        tracks.heading[_subset(rows, learn)] = np.mod(
            fit.heading + np.where(same, 0.0, 0.5 * np.pi), np.pi)[learn]
        return same, sides

    @staticmethod
    def _same_axes(heading: np.ndarray, fit: box_fit.Footprints) -> np.ndarray:
        """Whether each fit's first axis is its track's first side (``heading`` [M], mod pi).

        A track without a heading yet (NaN) takes the fit's longer extent first. Tracks all
        with or all without a heading (the usual frame) skip the other case's numpy calls.
        """
        known = np.isfinite(heading)
        count = np.count_nonzero(known)
        if not count:
            return fit.extent[:, 0] >= fit.extent[:, 1]
        if count < len(known):
            heading = np.where(known, heading, 0.0)
        # np.angle(np.exp(...)) / 2, without np.angle's wrapper and np.nan_to_num's (heading:
        # NaN or finite).
        turned = np.exp(2j * (fit.heading - heading))
        turn = np.arctan2(turned.imag, turned.real) / 2
        same = np.abs(turn) <= 0.25 * np.pi
        if count < len(known):
            same = np.where(known, same, fit.extent[:, 0] >= fit.extent[:, 1])
        return same

    def _register(self, rows: np.ndarray, points: list[np.ndarray], measured: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Centres [M,3]: the tracks' reference points moved by their registered motions.

        Each matched track's previous points are registered onto its new detection's points
        (``registration``); the track's reference point moves with that motion and is pulled
        toward the detection's (shape-averaged) centre ``measured`` [M,3] at
        ``registration_anchor_rate`` (chained registrations drift). Where the registration
        is not possible (too few points) or poor (large residual), the reference point
        restarts at the detection's centre (counted). The new points replace the old.
        """
        cfg = self.config
        tracks = self._tracks
        cloud, count = registration.padded(
            [registration.subsample(p, registration.POINTS) for p in points],
            registration.POINTS)
        out = measured.copy()
        fresh = np.ones(len(rows), bool)
        can = np.nonzero((tracks.cloud_count[rows] >= registration.MIN_POINTS)
                         & (count >= registration.MIN_POINTS))[0]
        if len(can):
            # The previous points, half as many, onto the new ones (whose normals are fitted).
            source, source_count = registration.padded(
                [registration.subsample(tracks.cloud[r, :tracks.cloud_count[r]],
                                        registration.POINTS // 2) for r in rows[can]],
                registration.POINTS // 2)
            found = registration.register(
                source, source_count, cloud[can], count[can], cfg.registration_yaw_only,
                shift=measured[can] - tracks.centre[rows[can]])
            extent = np.linalg.norm(tracks.size[rows[can]], axis=1)
            good = found.residual <= registration.MAX_RESIDUAL * extent
            moved = (np.einsum('mij,mj->mi', found.rotation, tracks.anchor[rows[can]])
                     + found.translation)
            moved += cfg.registration_anchor_rate * (measured[can] - moved)
            out[can[good]] = moved[good]
            fresh[can[good]] = False
        self.stats.registered += int((~fresh).sum())
        self.stats.registration_fallbacks += int(fresh.sum())
        tracks.anchor[rows] = out
        tracks.centre[rows] = measured
        tracks.cloud[rows], tracks.cloud_count[rows] = cloud, count
        return out, ~fresh

    def _sigma(self, ranges: np.ndarray) -> np.ndarray:
        """Measurement standard deviations [M] of detections at camera distances [M]."""
        cfg = self.config
        return np.maximum(cfg.measurement_noise * ranges, cfg.min_measurement_noise)

    def _birth(self, found: Detections, stamp_ns: int,
               points: list[np.ndarray] | None, fits: box_fit.Footprints | None) -> int:
        """Start tentative tracks (largest instances first: they come sorted); return count.

        ``found``: the new tracks' detections; ``fits``: their footprint fits (the 'box_fit'
        centre model), or None.
        """
        room = self.config.max_tracks - len(self._tracks)
        count = len(found.centre)
        if count > room:
            self.stats.full += count - max(room, 0)
            count = max(room, 0)
            found = found.take(slice(0, count))
        if not count:
            return 0
        centres = found.centre.copy()
        size = self._tracks.cloud.shape[1]
        keep = points is not None and self.config.motion_registration
        cloud, cloud_count = registration.padded(
            [registration.subsample(p, size) for p in points[:count]] if keep
            else [np.zeros((0, 3))] * count, size)
        priors = (_INITIAL_VELOCITY_SIGMA, _INITIAL_ACCEL_SIGMA)[:self.config.order - 1]
        state, cov = kalman.initial(centres, self._sigma(found.range), priors)
        self._tracks.append(_Tracks(
            state=state, cov=cov, ids=np.zeros(count, np.int64), hits=np.ones(count, np.int64),
            first_ns=np.full(count, stamp_ns, np.int64),
            seen_ns=np.full(count, stamp_ns, np.int64),
            size=found.size, confidence=np.full(count, self.config.confidence_rate),
            box=found.box, box_frame=np.full(count, self._frame, np.int64),
            box_view=found.view, push=found.push,
            below_top=np.where(np.isfinite(found.top), found.top - found.centre[:, 2], 0.0),
            shapes=found.shaped.astype(np.int64),
            cloud=cloud, cloud_count=cloud_count, anchor=centres.copy(), centre=centres.copy(),
            heading=np.full(count, np.nan), sides=np.zeros((count, 2)),
            sides_n=np.zeros(count, np.int64), boxness=np.full(count, 0.5),
            offset=np.zeros((count, 3)),
        ))
        if self.config.centre_model == 'box_fit' and fits is not None:
            new = np.arange(len(self._tracks) - count, len(self._tracks))
            centres = self._box_centres(new, found.centre, fits.take(slice(0, count)), centres,
                                        np.ones(count))[0]
            self._tracks.state[new, :, 0] = centres
            self._tracks.anchor[new] = centres
        self.stats.births += count
        return count

    def _start_tracks(self, found: Detections | None, rows: np.ndarray, cols: np.ndarray,
                      stamp_ns: int, points: list[np.ndarray] | None,
                      fits: box_fit.Footprints | None) -> np.ndarray:
        """Start tracks for the detections not matched; return ``update``'s ids [M].

        ``rows`` [K], ``cols`` [K]: the matched tracks and detections (``_associate``).
        """
        track_of = np.full(0 if found is None else len(found), -1, np.int64)
        track_of[cols] = rows
        new_tracks = (track_of < 0).nonzero()[0]  # the unmatched (np.flatnonzero: ~1 us more)
        born = 0 if not len(new_tracks) else self._birth(
            found.take(new_tracks), stamp_ns,
            None if points is None else [points[i] for i in new_tracks],
            None if fits is None else fits.take(new_tracks))
        if born:
            track_of[new_tracks[:born]] = np.arange(len(self._tracks) - born, len(self._tracks))
        self._confirm()
        if born == len(new_tracks):  # every instance has a track (3 numpy calls fewer)
            return self._tracks.ids[track_of]
        return np.where(track_of >= 0, self._tracks.ids[np.maximum(track_of, 0)], 0)

    def _confirm(self) -> None:
        tracks = self._tracks
        if np.count_nonzero(tracks.ids) == len(tracks):  # none tentative: ~2 us less
            return
        ready = np.nonzero((tracks.ids == 0) & (tracks.hits >= self.config.confirm_hits))[0]
        for index in ready:  # in birth order: older tracks get the smaller ids
            tracks.ids[index] = self._next_id
            self._next_id += 1
        self.stats.confirmed += len(ready)

    def _expire(self, stamp_ns: int, every_seen: bool = False) -> None:
        """Delete the tracks missed for longer than their limit.

        ``every_seen``: every track was detected at ``stamp_ns`` (missed 0), so none outlives
        a limit >= 0 and there is nothing to check (~4 us a frame).
        """
        cfg = self.config
        if every_seen and cfg.max_miss_s >= 0 and cfg.tentative_max_miss_s >= 0:
            return
        tracks = self._tracks
        missed = (stamp_ns - tracks.seen_ns) * 1e-9
        limit = np.where(tracks.ids > 0, cfg.max_miss_s, cfg.tentative_max_miss_s)
        alive = missed <= limit
        deaths = len(alive) - int(np.count_nonzero(alive))  # a Python int for the JSON stats
        if deaths:
            self.stats.deaths += deaths
            tracks.keep(alive)


def _mask(rows: np.ndarray, count: int) -> np.ndarray:
    """Return a [count] bool mask set at ``rows``."""
    mask = np.zeros(count, bool)
    mask[rows] = True
    return mask


def _subset(rows: np.ndarray | slice, mask: np.ndarray) -> np.ndarray:
    """Return the track rows where ``mask`` [M] bool is set, as an index.

    ``rows``: the tracks' rows [M] int64, or slice(None) for every track in order (then the
    mask itself indexes them).
    """
    return mask if isinstance(rows, slice) else rows[mask]


def _empty_tracks(config: TrackerConfig) -> _Tracks:
    order, points = config.order, registration.POINTS if config.motion_registration else 0
    return _Tracks(state=np.zeros((0, 3, order)), cov=np.zeros((0, order, order)),
                   cloud=np.zeros((0, points, 3)))


#: Up to this many box pairs the IoU is computed on Python floats (``_box_iou_pairs``).
_FEW_PAIRS = 9


def _box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Compute the IoU [A,B] of inclusive pixel boxes (row0, col0, row1, col1) [A,4] and [B,4]."""
    if len(first) * len(second) <= _FEW_PAIRS:
        return _box_iou_pairs(first, second)
    return _box_iou_arrays(first, second)


def _box_iou_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``_box_iou`` pair by pair on Python floats: the same operations in the same order.

    Each is one IEEE operation on a float64 either way (the boxes are never NaN), so the bits
    are ``_box_iou_arrays``'; on a few pairs (the usual frame: 2 x 2 in 5 us, not 13) the
    array calls' overhead is larger than the work.
    """
    boxes = second.tolist()
    areas = [(b2 - b0 + 1) * (b3 - b1 + 1) for b0, b1, b2, b3 in boxes]
    out = []
    for t0, t1, t2, t3 in first.tolist():
        area = (t2 - t0 + 1) * (t3 - t1 + 1)
        for (s0, s1, s2, s3), other in zip(boxes, areas):
            inter = (max(min(t2, s2) - max(t0, s0) + 1, 0.0)
                     * max(min(t3, s3) - max(t1, s1) + 1, 0.0))
            out.append(inter / max(area + other - inter, 1.0))
    return np.array(out, np.float64).reshape(len(first), len(second))


def _box_iou_arrays(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``_box_iou`` on arrays (many pairs)."""
    low = np.maximum(first[:, None, :2], second[None, :, :2])  # [A,B,2] (top, left)
    high = np.minimum(first[:, None, 2:], second[None, :, 2:])  # (bottom, right)
    overlap = np.maximum(high - low + 1, 0)
    inter = overlap[..., 0] * overlap[..., 1]

    def area(box: np.ndarray) -> np.ndarray:
        sides = box[:, 2:] - box[:, :2] + 1
        return sides[:, 0] * sides[:, 1]

    union = area(first)[:, None] + area(second)[None, :] - inter
    return inter / np.maximum(union, 1.0)


def footprints(instances: list[Instance] | Detections, points: list[np.ndarray],
               max_per_frame: int | None = None) -> box_fit.Footprints:
    """Footprint rectangles of M >= 1 detections: their points [n_i,3] and viewing rays.

    The fits of detections are independent of each other: a caller may fit several frames'
    detections in one call (cheaper per detection) and hand each frame its part. With
    ``max_per_frame`` only detections of label (a frame's size rank, 1 = largest) at most
    that are fitted; the others' fits are not ok (the surface centre is used).
    """
    found = _gathered(instances)
    rays = found.direction
    if max_per_frame is None:
        return box_fit.fit_footprints(points, rays)
    chosen = found.label <= max_per_frame
    if chosen.all():
        return box_fit.fit_footprints(points, rays)
    index = np.flatnonzero(chosen)
    fits = (box_fit.fit_footprints([points[i] for i in index], rays[index])
            if len(index) else None)
    return box_fit.Footprints.scattered(fits, index, len(found))


def _gathered(instances: list[Instance] | Detections) -> Detections | None:
    """Return a frame's instances as arrays (gathered from Instance objects), None for none."""
    if isinstance(instances, Detections):
        return instances if len(instances) else None
    return Detections.of(instances) if instances else None
