# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Oriented rectangle fit of an object's ground footprint, and a box centre from it (torch).

The visible surface's centroid of a box sits off the box's centre by a part of its depth
along the viewing ray, and that part changes as the box turns. A lidar tracker's answer: fit
an oriented rectangle to the footprint of the object's points in the ground plane (output
x-y, z up) by a search over headings (the L-shape fit of Zhang et al. 2017, "Efficient
L-Shape Fitting for Vehicle Detection Using Laser Scanners"): for every candidate heading in
[0, pi/2) project the points on the two axes and score by the closeness criterion (the sum
over points of one over the distance to the nearer of the two camera-side edges, floored);
the best heading gives the axes, the two camera-side edges (the faces the camera sees, or the
end of a face seen alone: real edges either way) and the points' extents. The box centre is
the camera-side edges moved AWAY from the camera by half the box's extents: the track's
remembered extents (``Tracker``), because a detection that shows one face (or not the top)
measures less than the body along the ray.

The search and the box test use the points below the top face (``TOP_BAND``): a side's
footprint is a line on the rectangle's edge, the top's fills the rectangle. A sphere's or a
person's footprint is a disc or an arc: its points lie far from any rectangle's edges. The
mean distance to the nearer edge, as a fraction of the rectangle's larger extent
(``closeness``), tells them apart (synthetic scene, every detection seen whole on six seeds:
crate 0.012-0.035, ball 0.096-0.130; ``BOX_CLOSENESS``); the tracker keeps the surface
centre for those.

Headings are searched at ``HEADINGS`` steps (3 degrees; the refinement makes the step size
matter little: 2 degree steps measured the same), on at most ``POINTS`` evenly
subsampled points per detection, batched over the frame's detections.

One implementation, in torch on padded tensors (``fit_padded``: fixed shapes, no host sync,
so the instances stage records it into its CUDA graph, ``PerceptionTracker._measure``, with
the device's subsample of each label's points, ``label_subsample``). ``fit_footprints`` is
its numpy adapter on the CPU (the tracker's host path: rig steps, a standalone ``Tracker``).
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import math

import numpy as np
import torch

from vggt4d_ros.perception import registration

#: Points per detection (evenly subsampled).
POINTS = 256
#: Fewest points for a fit.
MIN_POINTS = 20
#: Candidate headings in [0, pi/2).
HEADINGS = 30
#: Percentiles of the projections taken as the rectangle's edges (outlier pixels).
EDGE_PERCENT = 2.0
#: Floor of a point's edge distance in the score, as a fraction of the rectangle's extent.
MIN_DISTANCE = 0.02
#: Points within this fraction of the rectangle's extent from a camera-side edge are that
#: face's (the heading is refined on them).
FACE_BAND = 0.05
#: Points higher than the top (98 % of z) minus this fraction of the height range (2-98 %)
#: are the top face's: the heading search and the box test use the other points (the sides'
#: footprint hugs the rectangle's edges, the top's fills it); the extents use all.
TOP_BAND = 0.15
#: Largest mean edge distance (fraction of the larger extent) of a box-like footprint.
BOX_CLOSENESS = 0.06
#: Columns of a fit in a float64 row (``fit_columns``): heading, near [2], away [2],
#: extent [2], closeness, ok (1.0 / 0.0).
COLUMNS = 9


@dataclass
class Footprints:
    """Rectangle fits of M footprints (output x-y).

    Attributes:
        heading: [M] angle of the first axis in [0, pi/2) (the second is 90 degrees on).
        near: [M,2] coordinate of the camera-side edge along each axis.
        away: [M,2] +1 or -1: the direction along each axis that points away from the camera.
        extent: [M,2] the points' extent along each axis (2-98 %).
        closeness: [M] mean distance of the points to the nearer camera-side edge, as a
            fraction of the larger extent (small: a box; a disc: large).
        ok: [M] the fit had enough points and a viewing ray.

    """

    heading: np.ndarray
    near: np.ndarray
    away: np.ndarray
    extent: np.ndarray
    closeness: np.ndarray
    ok: np.ndarray

    def take(self, index: np.ndarray | slice) -> Footprints:
        """Return the fits of the detections ``index`` (an index array or a slice)."""
        return Footprints(heading=self.heading[index], near=self.near[index],
                          away=self.away[index], extent=self.extent[index],
                          closeness=self.closeness[index], ok=self.ok[index])

    @classmethod
    def scattered(cls, fits: Footprints | None, index: np.ndarray, count: int) -> Footprints:
        """Return ``count`` fits: ``fits`` at rows ``index``, the others not ok (zeros)."""
        out = cls(heading=np.zeros(count), near=np.zeros((count, 2)),
                  away=np.ones((count, 2)), extent=np.zeros((count, 2)),
                  closeness=np.zeros(count), ok=np.zeros(count, bool))
        if fits is not None:
            for name in ('heading', 'near', 'away', 'extent', 'closeness', 'ok'):
                getattr(out, name)[index] = getattr(fits, name)
        return out

    @classmethod
    def from_columns(cls, rows: np.ndarray) -> Footprints:
        """Return the fits of ``fit_columns``' rows [M, ``COLUMNS``] (views of them).

        Views, not copies: ~2 us per frame less in ``unpack`` (2-core machine), whose rows
        are one frame's own gather; the tracker only reads the fits.
        """
        return cls(heading=rows[:, 0], near=rows[:, 1:3], away=rows[:, 3:5],
                   extent=rows[:, 5:7], closeness=rows[:, 7], ok=rows[:, 8] > 0.5)

    def axes(self) -> np.ndarray:
        """Return the unit axes of each rectangle as rows [M,2,2]."""
        return _axes_numpy(self.heading)

    @property
    def box_like(self) -> np.ndarray:
        """[M] bool: a fit whose points hug the camera-side edges (a box, not a disc)."""
        return self.ok & (self.closeness < BOX_CLOSENESS)


def fit_footprints(points: list[np.ndarray], rays: np.ndarray) -> Footprints:
    """Fit rectangles to the ground footprints of M point sets (numpy in and out).

    Args:
        points: M arrays [n_i,3] (output frame, z up); only x and y are used (and z for
            the top face).
        rays: [M,3] viewing ray of each detection (unit, output frame; NaN: none known, the
            fit is not ok).

    ``fit_padded`` on the CPU on each set's subsample (``registration.subsample``, at most
    ``POINTS``), NaN-padded.
    """
    count = len(points)
    xyz = np.full((count, POINTS, 3), np.nan)
    lengths = np.empty(count, np.int64)
    for i, cloud in enumerate(points):
        cloud = registration.subsample(cloud, POINTS)
        xyz[i, :len(cloud)] = cloud
        lengths[i] = len(cloud)
    fit = fit_padded(torch.from_numpy(xyz), torch.from_numpy(lengths),
                     torch.from_numpy(np.ascontiguousarray(rays, dtype=np.float64)))
    heading, near, away, extent, closeness, ok = (value.numpy() for value in fit)
    return Footprints(heading=heading, near=near, away=away, extent=extent,
                      closeness=closeness, ok=ok)


def fit_padded(xyz: torch.Tensor, lengths: torch.Tensor, rays: torch.Tensor
               ) -> tuple[torch.Tensor, ...]:
    """Fit rectangles to M padded point sets: fixed shapes, no host sync (CUDA-graph ready).

    Args:
        xyz: [M,P,3] float64 points (output frame, z up); each set's first ``lengths`` rows,
            the rest NaN.
        lengths: [M] int64 points of each set.
        rays: [M,3] float64 viewing ray of each set (unit, output frame; NaN: none known,
            the fit is not ok).

    Returns:
        The ``Footprints`` fields as tensors: heading [M], near [M,2], away [M,2], extent
        [M,2] (float64), closeness [M] float64, ok [M] bool.

    Every step runs on all M sets at once; the heading search's arrays are [M,K,2,P] (K =
    ``HEADINGS`` headings, their two axes). The edges are the values at the nearest ranks of
    ``EDGE_PERCENT`` and its complement among a set's sorted values (``_edge_ranks``,
    ``_edges``).
    """
    size = xyz.shape[1]
    ranks = _edge_ranks(lengths, size)
    x, y, z = xyz.unbind(dim=2)  # [M,P] each
    ray_xy = _nan_to_zero(rays[:, :2])
    flat = torch.sqrt((ray_xy * ray_xy).sum(dim=1))  # [M] np.linalg.norm's own sum
    ray = _nan_to_zero(rays[:, :2] / flat.clamp(min=1e-12)[:, None])  # [M,2]
    ok = (lengths >= MIN_POINTS) & torch.isfinite(flat) & (flat > 1e-6)
    valid = torch.arange(size, device=xyz.device) < lengths[:, None]  # [M,P]
    bottom, top = _edges(z, *ranks)  # [M]
    sides = valid & (z < (top - TOP_BAND * (top - bottom))[:, None])
    sides = sides | (valid & (sides.sum(dim=1) < MIN_POINTS)[:, None])  # seen from above: all
    # Projections on every heading's two axes: [M,K,2,P] (padding: NaN).
    angles, axes = _search_axes(xyz.device)
    along = _project(axes[None], x[:, None, None], y[:, None, None])
    low, high = _edges(along, *ranks)  # [M,K,2]
    away = _away(_dot(axes[None], ray[:, None, None]))  # [M,K,2]
    near = torch.where(away > 0, low, high)  # the camera sees the side the ray comes from
    extent = high - low
    scale = extent.amax(dim=2).clamp(min=1e-12)  # [M,K]
    edge_distance = torch.abs(along - near[..., None])  # [M,K,2,P]
    distance = torch.minimum(edge_distance[:, :, 0], edge_distance[:, :, 1])  # [M,K,P]
    score = 1.0 / torch.maximum(distance, MIN_DISTANCE * scale[..., None])
    score = torch.where(sides[:, None], score, 0.0)
    best = torch.argmax(score.sum(dim=2), dim=1)  # [M] ties: the first, as numpy
    nearest = _at_heading(distance, best)  # [M,P]
    best_scale = _at_heading(scale, best)  # [M]
    closeness = (torch.where(sides, nearest, 0.0).sum(dim=1)
                 / sides.sum(dim=1).clamp(min=1) / best_scale)
    # The faces of the best heading: each point near a camera-side edge belongs to the nearer
    # (the first on a tie).
    edges = _at_heading(edge_distance, best)  # [M,2,P]
    member = sides & (nearest < FACE_BAND * best_scale[:, None])
    second = member & (edges[:, 1] < edges[:, 0])
    faces = torch.stack([member & ~second, second], dim=1)  # [M,2,P]
    heading = _refined_heading(x, y, faces, angles[best])
    axes = _axes(heading)  # [M,2,2]
    low, high = _edges(_project(axes, x[:, None], y[:, None]), *ranks)  # [M,2]
    away = _away(_dot(axes, ray[:, None]))
    near = torch.where(away > 0, low, high)
    return heading, near, away, high - low, closeness, ok


def fit_columns(fit: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``fit_padded``'s fields as float64 rows [M, ``COLUMNS``] (``Footprints.from_columns``)."""
    heading, near, away, extent, closeness, ok = fit
    return torch.cat([heading[:, None], near, away, extent, closeness[:, None],
                      ok[:, None].double()], dim=1)


def unfitted_columns(count: int, like: torch.Tensor) -> torch.Tensor:
    """[count, ``COLUMNS``] rows of no fit, as ``fit_columns``' (``like``'s dtype and device).

    Not ok, zeros, away +1: ``Footprints.scattered``'s rows of the detections not fitted.
    """
    rows = like.new_zeros((count, COLUMNS))
    rows[:, 3:5] = 1.0  # away
    return rows


def label_subsample(point_labels: torch.Tensor, used: torch.Tensor, output: torch.Tensor,
                    count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each frame's labels 1..``count``: their points' fit subsample, padded (no host sync).

    Args:
        point_labels: [F,N] int64 label of each point slot (0: none; N >= 1).
        used: [F,N] bool slots holding a point.
        output: [F,N,3] float64 the points (output frame).
        count: labels per frame (R).

    Returns:
        xyz [F,R,P,3] float64 (P = ``POINTS``): the points of label k in frame f that
        ``registration.subsample(np.flatnonzero(labels == k), POINTS)`` picks, in slot
        order, NaN-padded; lengths [F,R] int64 (min(n, P) of a label's n points).

    A label's members are ranked by a running count over the slots ([F,R,N]); the j-th
    picked member's slot is where that count first reaches the pick's rank + 1 (a binary
    search per pick). The picks: ``np.linspace(0, n - 1, P).round()`` for n > P (numpy
    computes ``arange(P) * ((n - 1) / (P - 1))``, the last set to n - 1, which it rounds to
    anyway; ``torch.round`` rounds half to even, as numpy), every member otherwise.
    """
    frames, slots = point_labels.shape
    wanted = torch.arange(1, count + 1, device=point_labels.device)
    member = (point_labels[:, None, :] == wanted[:, None]) & used[:, None, :]  # [F,R,N]
    running = torch.cumsum(member, dim=2, dtype=torch.int32)
    members = running[:, :, -1].long()
    position = torch.arange(POINTS, device=point_labels.device, dtype=torch.float64)
    step = (members - 1).double() / (POINTS - 1)  # [F,R]
    pick = torch.where(members[..., None] > POINTS, torch.round(position * step[..., None]),
                       position).int()  # [F,R,P]
    slot = torch.searchsorted(running.view(frames * count, slots),
                              (pick + 1).view(frames * count, POINTS))
    slot = slot.clamp(max=slots - 1).view(frames, count * POINTS, 1)
    xyz = output.gather(1, slot.expand(-1, -1, 3)).view(frames, count, POINTS, 3)
    inside = position < members[..., None]  # [F,R,P]
    return torch.where(inside[..., None], xyz, float('nan')), members.clamp(max=POINTS)


def box_centres(fit: Footprints, extent: np.ndarray) -> np.ndarray:
    """Footprint centres [M,2]: the camera-side edges moved away by half of ``extent`` [M,2].

    ``extent`` is given along the fit's own axes (the caller matches the track's remembered
    long and short sides to them).
    """
    offset = fit.near + fit.away * 0.5 * extent
    return np.einsum('ma,mad->md', offset, fit.axes())


@functools.cache  # never evicted: a recorded CUDA graph of the instances reads them
def _search_axes(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the candidate headings [K] and their unit axes as rows [K,2,2] (float64)."""
    angles = torch.arange(HEADINGS, dtype=torch.float64, device=device) * (
        0.5 * math.pi / HEADINGS)
    return angles, _axes(angles)


def _axes(heading: torch.Tensor) -> torch.Tensor:
    """[...,2,2] unit axes (rows): the heading's direction and 90 degrees on."""
    cos, sin = torch.cos(heading), torch.sin(heading)
    return torch.stack([torch.stack([cos, sin], dim=-1), torch.stack([-sin, cos], dim=-1)],
                       dim=-2)


def _axes_numpy(heading: np.ndarray) -> np.ndarray:
    """[M,2,2] unit axes (rows) of headings [M] (numpy: the tracker's box centres)."""
    axes = np.empty((len(heading), 2, 2))
    axes[:, 0, 0] = axes[:, 1, 1] = np.cos(heading)
    axes[:, 0, 1] = np.sin(heading)
    axes[:, 1, 0] = -axes[:, 0, 1]
    return axes


def _project(axes: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Coordinates [...,2,P] of points (x, y [...,1,P] broadcast) along ``axes`` [...,2,2].

    Two products and a sum, elementwise (no matmul: its summation order and fused
    multiply-adds differ between backends and batch sizes).
    """
    return axes[..., 0, None] * x + axes[..., 1, None] * y


def _dot(axes: torch.Tensor, ray: torch.Tensor) -> torch.Tensor:
    """[...,2] dot products of ``axes`` [...,2,2] with 2D vectors ``ray`` [...,1,2]."""
    return axes[..., 0] * ray[..., 0] + axes[..., 1] * ray[..., 1]


def _away(dot: torch.Tensor) -> torch.Tensor:
    """+1.0 where an axis' dot product with the viewing ray ``dot`` is positive, else -1.0."""
    return 2.0 * (dot > 0).to(dot.dtype) - 1.0


def _edge_ranks(lengths: torch.Tensor, size: int
                ) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """Return the edges' ranks of sets of ``lengths`` [M] values (padded to ``size``).

    Returns the nearest rank [M] of ``EDGE_PERCENT`` among a set's values sorted up, that of
    its complement among them sorted DOWN, how many of the smallest (largest) values hold
    every set's rank (``_edges``) and which sets [M] have no points (their edges: NaN, as
    numpy's sort puts NaN padding at rank 0). The ranks up are Python's ``round`` of the same
    float64 products, half to even (``torch.round``).
    """
    last = (lengths - 1).clamp(min=0)
    low = torch.round(EDGE_PERCENT / 100.0 * last.double()).long()
    high = torch.round((100.0 - EDGE_PERCENT) / 100.0 * last.double()).long()
    # The complement's rank from the top: at most the low rank of the largest set, + 1 for
    # its rounding.
    depth = min(size, round(EDGE_PERCENT / 100.0 * max(size - 1, 0)) + 2)
    return low, last - high, depth, lengths < 1


def _edges(values: torch.Tensor, low_rank: torch.Tensor, top_rank: torch.Tensor,
           depth: int, empty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the edge values [M,...] of ``values`` [M,...,P] (NaN padded) at each set's ranks.

    ``low_rank`` [M] counts from the smallest, ``top_rank`` [M] from the largest, ``empty``
    [M] sets without points (``_edge_ranks``): the values numpy's sort puts at the nearest
    ranks of the percentiles (NaN padding last). The padding takes part as +-inf: ``topk``'s
    order of NaN has differed with the NaN's sign on CUDA (pytorch issue 117617), and a
    negated NaN is one. Only the ``depth`` smallest and largest values are ordered (two
    partial selections): a whole sort of the search's [M,K,2,P] projections cost 4.1 ms per
    8 sets on one core of the 2-core machine, these 1.3 ms.
    """
    padding = torch.isnan(values)
    low = _ranked(torch.topk(torch.where(padding, math.inf, values), depth, dim=-1,
                             largest=False, sorted=False).values, low_rank, False)
    high = _ranked(torch.topk(torch.where(padding, -math.inf, values), depth, dim=-1,
                              largest=True, sorted=False).values, top_rank, True)
    empty = empty.view(-1, *([1] * (low.dim() - 1)))
    return torch.where(empty, math.nan, low), torch.where(empty, math.nan, high)


def _ranked(selected: torch.Tensor, rank: torch.Tensor, descending: bool) -> torch.Tensor:
    """Values [M,...] at each set's ``rank`` [M] among ``selected`` [M,...,D] (unordered)."""
    ordered = torch.sort(selected, dim=-1, descending=descending).values
    index = rank.view(-1, *([1] * (ordered.dim() - 1))).expand(*ordered.shape[:-1], 1)
    return ordered.gather(-1, index)[..., 0]


def _at_heading(values: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """Rows [M,...] of ``values`` [M,K,...] at each set's heading ``best`` [M]."""
    index = best.view(-1, 1, *([1] * (values.dim() - 2))).expand(-1, 1, *values.shape[2:])
    return values.gather(1, index)[:, 0]


def _refined_heading(x: torch.Tensor, y: torch.Tensor, faces: torch.Tensor,
                     coarse: torch.Tensor) -> torch.Tensor:
    """Headings [M] of two perpendicular lines fitted to the faces' points (least squares).

    ``x``, ``y`` [M,P] points, ``faces`` [M,2,P] bool: the points of the face normal to the
    first axis (they run along the second) and of the face normal to the second (they run
    along the first). Turning the second face's offsets from its mean by 90 degrees lines
    them up with the first's; the major axis of the pooled scatter is then the second axis
    (its angle in closed form, 0.5 atan2(2 s_xy, s_xx - s_yy): no eigensolver). A heading off
    by half the search's step (1.5 degrees) would move a centre half a box diagonal away from
    the corner by 13 mm per metre of that distance; this is continuous. Without face points:
    ``coarse`` [M].
    """
    coords = torch.stack([x, y], dim=1)[:, None]  # [M,1,2,P]
    inside = faces[:, :, None]  # [M,2,1,P]
    members = faces.sum(dim=2).clamp(min=1)  # [M,2]
    mean = torch.where(inside, coords, 0.0).sum(dim=3) / members[..., None]  # [M,2,2]
    offsets = torch.where(inside, coords - mean[..., None], 0.0)  # [M,2,2,P]
    # The second face turned by 90 degrees: (x, y) -> (-y, x).
    along = torch.cat([offsets[:, :1, 0], -offsets[:, 1:, 1]], dim=1)  # [M,2,P]
    across = torch.cat([offsets[:, :1, 1], offsets[:, 1:, 0]], dim=1)
    xx = (along * along).sum(dim=(1, 2))
    xy = (along * across).sum(dim=(1, 2))
    yy = (across * across).sum(dim=(1, 2))
    major = 0.5 * torch.atan2(2.0 * xy, xx - yy)  # the second axis' direction (mod pi)
    # The same rectangle within +-45 degrees of the search's heading (the first axis is the
    # major's quarter turn: the same modulo pi/2).
    turn = 4.0 * (major - coarse)
    heading = coarse + torch.atan2(torch.sin(turn), torch.cos(turn)) / 4
    enough = faces.sum(dim=(1, 2)) >= MIN_POINTS
    return torch.where(enough, heading, coarse)


def _nan_to_zero(values: torch.Tensor) -> torch.Tensor:
    """``values`` with NaN replaced by 0."""
    return torch.where(torch.isnan(values), 0.0, values)
