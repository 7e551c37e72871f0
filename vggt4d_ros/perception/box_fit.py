# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Oriented rectangle fit of an object's ground footprint, and a box centre from it (numpy).

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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

_ANGLES = np.arange(HEADINGS) * (0.5 * np.pi / HEADINGS)
_AXES = np.stack([np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1),
                  np.stack([-np.sin(_ANGLES), np.cos(_ANGLES)], axis=1)], axis=1)  # [K,2,2]


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

    def axes(self) -> np.ndarray:
        """Return the unit axes of each rectangle as rows [M,2,2]."""
        return _axes(self.heading)

    @property
    def box_like(self) -> np.ndarray:
        """[M] bool: a fit whose points hug the camera-side edges (a box, not a disc)."""
        return self.ok & (self.closeness < BOX_CLOSENESS)


def fit_footprints(points: list[np.ndarray], rays: np.ndarray) -> Footprints:
    """Fit rectangles to the ground footprints of M point sets.

    Args:
        points: M arrays [n_i,3] (output frame, z up); only x and y are used.
        rays: [M,3] viewing ray of each detection (unit, output frame; NaN: none known, the
            fit is not ok).

    """
    count = len(points)
    lengths = np.array([min(len(p), POINTS) for p in points], np.int64)
    xyz = np.full((count, POINTS, 3), np.nan)
    for i, cloud in enumerate(points):
        xyz[i, :lengths[i]] = _subsample(cloud, POINTS)
    xy = xyz[:, :, :2]
    flat = np.linalg.norm(np.nan_to_num(rays[:, :2]), axis=1)
    ray = rays[:, :2] / np.maximum(flat, 1e-12)[:, None]  # [M,2]
    ok = (lengths >= MIN_POINTS) & np.isfinite(flat) & (flat > 1e-6)
    valid = np.arange(POINTS)[None, :] < lengths[:, None]  # [M,P]
    bottom, top = _percentiles(xyz[:, None, None, :, 2], lengths,
                               (EDGE_PERCENT, 100.0 - EDGE_PERCENT))  # [M,1,1]
    sides = valid & (xyz[:, :, 2] < (top - TOP_BAND * (top - bottom))[:, 0])
    sides |= valid & (sides.sum(axis=1) < MIN_POINTS)[:, None]  # seen from above: all
    # Projections on every heading's two axes: [M,K,2,P] (padding: NaN).
    along = np.matmul(_AXES[None], np.swapaxes(xy, 1, 2)[:, None])
    low, high = _percentiles(along, lengths, (EDGE_PERCENT, 100.0 - EDGE_PERCENT))  # [M,K,2]
    away = np.where(np.einsum('kad,md->mka', _AXES, np.nan_to_num(ray)) > 0, 1.0, -1.0)
    near = np.where(away > 0, low, high)  # the camera sees the side the ray comes from
    extent = high - low
    size = np.maximum(extent.max(axis=2), 1e-12)  # [M,K]
    distance = np.abs(along - near[..., None]).min(axis=2)  # [M,K,P]
    floor = MIN_DISTANCE * size[..., None]
    score = np.where(sides[:, None], 1.0 / np.maximum(distance, floor), 0.0).sum(axis=2)
    best = np.argmax(score, axis=1)  # [M]
    rows = np.arange(count)
    closeness = (np.where(sides, distance[rows, best], 0.0).sum(axis=1)
                 / np.maximum(sides.sum(axis=1), 1) / size[rows, best])
    # The faces of the best heading: each point near a camera-side edge belongs to the nearer.
    edge_distance = np.abs(along[rows, best] - near[rows, best][..., None])  # [M,2,P]
    face = np.argmin(np.nan_to_num(edge_distance, nan=np.inf), axis=1)  # [M,P]
    member = sides & (edge_distance.min(axis=1) < FACE_BAND * size[rows, best][:, None])
    faces = np.stack([member & (face == 0), member & (face == 1)], axis=1)  # [M,2,P]
    heading = _refined_heading(xy, faces, _ANGLES[best])
    axes = _axes(heading)  # [M,2,2]
    along = np.matmul(axes, np.swapaxes(xy, 1, 2))  # [M,2,P]
    low, high = _percentiles(along[:, None], lengths, (EDGE_PERCENT, 100.0 - EDGE_PERCENT))
    low, high = low[:, 0], high[:, 0]
    away = np.where(np.einsum('mad,md->ma', axes, np.nan_to_num(ray)) > 0, 1.0, -1.0)
    near = np.where(away > 0, low, high)
    return Footprints(heading=heading, near=near, away=away, extent=high - low,
                      closeness=closeness, ok=ok)


def box_centres(fit: Footprints, extent: np.ndarray) -> np.ndarray:
    """Footprint centres [M,2]: the camera-side edges moved away by half of ``extent`` [M,2].

    ``extent`` is given along the fit's own axes (the caller matches the track's remembered
    long and short sides to them).
    """
    offset = fit.near + fit.away * 0.5 * extent
    return np.einsum('ma,mad->md', offset, fit.axes())


def _axes(heading: np.ndarray) -> np.ndarray:
    """[M,2,2] unit axes (rows): the heading's direction and 90 degrees on."""
    c, s = np.cos(heading), np.sin(heading)
    return np.stack([np.stack([c, s], axis=1), np.stack([-s, c], axis=1)], axis=1)


def _refined_heading(xy: np.ndarray, faces: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Headings [M] of two perpendicular lines fitted to the faces' points (least squares).

    ``xy`` [M,P,2] points, ``faces`` [M,2,P] bool: the points of the face normal to the
    first axis (they run along the second) and of the face normal to the second (they run
    along the first). Turning the second face's offsets from its mean by 90 degrees lines
    them up with the first's; the major axis of the pooled scatter is then the second axis.
    A heading off by half the search's step (1.5 degrees) would move a centre half a box
    diagonal away from the corner by 13 mm per metre of that distance; this is continuous.
    Without face points: ``coarse`` [M].
    """
    offsets = []
    for index, turn in ((0, np.eye(2)), (1, np.array([[0.0, -1.0], [1.0, 0.0]]))):
        inside = faces[:, index, :, None]
        mean = (np.where(inside, xy, 0.0).sum(axis=1)
                / np.maximum(inside.sum(axis=1), 1))  # [M,2]
        offsets.append(np.where(inside, (xy - mean[:, None]) @ turn.T, 0.0))
    pooled = np.concatenate(offsets, axis=1)  # [M,2P,2]
    scatter = np.einsum('mpi,mpj->mij', pooled, pooled)
    direction = np.linalg.eigh(scatter)[1][:, :, 1]  # [M,2] major axis: the second axis
    heading = np.arctan2(direction[:, 1], direction[:, 0]) - 0.5 * np.pi
    # The same rectangle within +-45 degrees of the search's heading.
    heading = coarse + np.angle(np.exp(4j * (heading - coarse))) / 4
    enough = faces.sum(axis=(1, 2)) >= MIN_POINTS
    return np.where(enough, heading, coarse)


def _subsample(points: np.ndarray, size: int) -> np.ndarray:
    if len(points) <= size:
        return points
    return points[np.linspace(0, len(points) - 1, size).round().astype(np.int64)]


def _percentiles(values: np.ndarray, lengths: np.ndarray, percents: tuple[float, float]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Two percentiles [M,K,2] of values [M,K,2,P] over the first ``lengths`` [M] of P.

    Nearest rank on the sorted values (NaN padding sorts last).
    """
    ordered = np.sort(values, axis=3)
    last = np.maximum(lengths - 1, 0)[:, None, None, None]
    out = []
    for percent in percents:
        rank = np.round(percent / 100.0 * last).astype(np.int64)
        out.append(np.take_along_axis(ordered, rank, axis=3)[..., 0])
    return out[0], out[1]
