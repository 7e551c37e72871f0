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
import threading

import numpy as np

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

_ANGLES = np.arange(HEADINGS) * (0.5 * np.pi / HEADINGS)
_AXES = np.stack([np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1),
                  np.stack([-np.sin(_ANGLES), np.cos(_ANGLES)], axis=1)], axis=1)  # [K,2,2]


class _Scratch(threading.local):
    """Buffers of a fit's large temporaries, kept per thread and reused by every fit.

    A fresh temporary of the heading search ([M,K,2,P]: 1 MB for 8 detections) is memory
    the allocator maps anew, and its first touch page-faults: on the 2-core machine the fit of
    a window's 8 detections took 5.6 ms with fresh temporaries and 2.7 ms with the allocator
    keeping its memory (``MALLOC_MMAP_THRESHOLD_``), the elementwise passes 5x faster. The
    buffers only grow, up to ``_KEPT_DETECTIONS`` detections' worth (0.4 MB a detection;
    a larger batch gets fresh arrays); no fit returns a view of them.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Return an uninitialised float64 array of ``shape`` (C order; [0]: detections).

        It lives in the buffer ``name`` unless the batch is larger than the kept buffers.
        """
        if shape[0] > _KEPT_DETECTIONS:
            return np.empty(shape)
        need = int(np.prod(shape))
        buffer = self.buffers.get(name)
        if buffer is None or len(buffer) < need:
            buffer = self.buffers[name] = np.empty(need)
        return buffer[:need].reshape(shape)


#: Largest batch whose temporaries are kept (13 MB; a window of 4 frames with 2-8 objects:
#: 8-32 detections).
_KEPT_DETECTIONS = 32
_SCRATCH = _Scratch()


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

    Every step runs on all M detections at once on the padded points [M,P,3] (P =
    ``POINTS``, NaN padding); the heading search's arrays are [M,K,2,P] (K = ``HEADINGS``
    headings, their two axes).
    """
    count = len(points)
    rows = np.arange(count)
    xyz, lengths, low_rank, high_rank = _padded(points)
    xy = xyz[:, :, :2]
    ray_xy = _nan_to_zero(rays[:, :2])
    flat = np.linalg.norm(ray_xy, axis=1)
    ray = _nan_to_zero(rays[:, :2] / np.maximum(flat, 1e-12)[:, None])  # [M,2]
    ok = (lengths >= MIN_POINTS) & np.isfinite(flat) & (flat > 1e-6)
    valid = np.arange(POINTS)[None, :] < lengths[:, None]  # [M,P]
    heights = np.sort(xyz[:, :, 2], axis=1)  # [M,P]
    bottom, top = heights[rows, low_rank], heights[rows, high_rank]
    sides = valid & (xyz[:, :, 2] < (top - TOP_BAND * (top - bottom))[:, None])
    sides |= valid & (sides.sum(axis=1) < MIN_POINTS)[:, None]  # seen from above: all
    # Projections on every heading's two axes: [M,K,2,P] (padding: NaN). The large
    # temporaries live in reused buffers (``_Scratch``); the same operations as into fresh ones.
    along = np.matmul(_AXES[None], np.swapaxes(xy, 1, 2)[:, None],
                      out=_SCRATCH.take('along', (count, HEADINGS, 2, POINTS)))
    ordered = _SCRATCH.take('ordered', along.shape)
    np.copyto(ordered, along)
    ordered.sort(axis=3)  # np.sort's algorithm, in place
    low, high = ordered[rows, :, :, low_rank], ordered[rows, :, :, high_rank]  # [M,K,2]
    away = np.where(np.einsum('kad,md->mka', _AXES, ray) > 0, 1.0, -1.0)
    near = np.where(away > 0, low, high)  # the camera sees the side the ray comes from
    extent = high - low
    size = np.maximum(extent.max(axis=2), 1e-12)  # [M,K]
    # Distances to the camera-side edges, in place of the projections: [M,K,2,P].
    edge_distance = np.abs(np.subtract(along, near[..., None], out=along), out=along)
    distance = np.minimum(edge_distance[:, :, 0], edge_distance[:, :, 1],
                          out=_SCRATCH.take('distance', (count, HEADINGS, POINTS)))  # [M,K,P]
    score = np.maximum(distance, MIN_DISTANCE * size[..., None],
                       out=_SCRATCH.take('score', distance.shape))
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
    member = sides & (nearest < FACE_BAND * best_size[:, None])
    second = member & (edge_distance[:, 1] < edge_distance[:, 0])
    faces = np.stack([member & ~second, second], axis=1)  # [M,2,P]
    heading = _refined_heading(xy, faces, _ANGLES[best])
    axes = _axes(heading)  # [M,2,2]
    ordered = np.sort(np.matmul(axes, np.swapaxes(xy, 1, 2)), axis=2)  # [M,2,P]
    low, high = ordered[rows, :, low_rank], ordered[rows, :, high_rank]  # [M,2]
    away = np.where(np.einsum('mad,md->ma', axes, ray) > 0, 1.0, -1.0)
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
    axes = np.empty((len(heading), 2, 2))
    axes[:, 0, 0] = axes[:, 1, 1] = np.cos(heading)
    axes[:, 0, 1] = np.sin(heading)
    axes[:, 1, 0] = -axes[:, 0, 1]
    return axes


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
    # Point-last layouts (contiguous points: numpy's fast loops). The sums over points run
    # in point order, as running sums (numpy's strided sums and einsum's add one point at a
    # time too; a plain sum along the points would add them pairwise).
    # The temporaries are written into reused buffers (``_Scratch``): np.where(inside, a,
    # 0.0) as a copy of ``a`` zeroed outside, the same values.
    count = len(faces)
    outside = ~faces[:, :, None, :]  # [M,2,1,P]
    coords = np.ascontiguousarray(np.swapaxes(xy, 1, 2))[:, None]  # [M,1,2,P]
    shape = (count, 2, 2, POINTS)
    masked = _SCRATCH.take('masked', shape)
    np.copyto(masked, coords)
    np.copyto(masked, 0.0, where=outside)
    mean = (np.cumsum(masked, axis=3, out=_SCRATCH.take('running', shape))[..., -1]
            / np.maximum(np.count_nonzero(faces, axis=2), 1)[..., None])  # [M,2,2]
    offsets = np.subtract(coords, mean[..., None], out=masked)  # [M,2,2,P]
    np.copyto(offsets, 0.0, where=outside)
    x_turned = np.subtract(0.0, offsets[:, 1, 1])
    offsets[:, 1, 1] = offsets[:, 1, 0]
    offsets[:, 1, 0] = x_turned
    x, y = offsets[:, :, 0], offsets[:, :, 1]  # [M,2,P]
    products = _SCRATCH.take('products', (count, 3, 2, POINTS))
    np.multiply(x, x, out=products[:, 0])
    np.multiply(x, y, out=products[:, 1])
    np.multiply(y, y, out=products[:, 2])
    products = products.reshape(count, 3, 2 * POINTS)  # [M,3,2P]: the faces one after another
    xx, xy_, yy = np.cumsum(products, axis=2,
                            out=_SCRATCH.take('sums', products.shape))[..., -1].T
    scatter = np.stack([np.stack([xx, xy_], axis=1), np.stack([xy_, yy], axis=1)], axis=1)
    direction = np.linalg.eigh(scatter)[1][:, :, 1]  # [M,2] major axis: the second axis
    heading = np.arctan2(direction[:, 1], direction[:, 0]) - 0.5 * np.pi
    # The same rectangle within +-45 degrees of the search's heading.
    heading = coarse + np.angle(np.exp(4j * (heading - coarse))) / 4
    enough = faces.sum(axis=(1, 2)) >= MIN_POINTS
    return np.where(enough, heading, coarse)


def _padded(points: list[np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points [M,P,3] float64 (P = ``POINTS``), their counts [M], the edge percentiles' ranks.

    Each set's first ``lengths`` [M] rows are its points (``registration.subsample``), the
    rest NaN.
    The ranks [M] (low, high) are the nearest ranks of ``EDGE_PERCENT`` and its complement
    among a set's sorted values (NaN padding sorts last; a set without points: rank 0, a
    NaN).
    """
    count = len(points)
    xyz = np.full((count, POINTS, 3), np.nan)
    lengths = np.empty(count, np.int64)
    low_rank = np.empty(count, np.int64)
    high_rank = np.empty(count, np.int64)
    for i, cloud in enumerate(points):
        cloud = registration.subsample(cloud, POINTS)
        n = len(cloud)
        xyz[i, :n] = cloud
        lengths[i] = n
        last = max(n - 1, 0)  # Python's round: half to even, as numpy's
        low_rank[i] = round(EDGE_PERCENT / 100.0 * last)
        high_rank[i] = round((100.0 - EDGE_PERCENT) / 100.0 * last)
    return xyz, lengths, low_rank, high_rank


def _nan_to_zero(values: np.ndarray) -> np.ndarray:
    """``values`` with NaN replaced by 0 (cheaper than ``np.nan_to_num`` on small arrays)."""
    return np.where(np.isnan(values), 0.0, values)
