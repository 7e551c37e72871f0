# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Frame-to-frame motion of tracked objects from their points (trimmed ICP, host, numpy).

The centroid of an object's visible points slides over the body as a turning object shows
other faces; the motion of the points themselves does not. Per track the tracker keeps the
previous detection's points (at most ``POINTS``, output frame) and registers them onto the
new detection's points: a few iterations of point-to-plane ICP (nearest neighbours by brute
force on the small sets, batched over tracks), each dropping the worst pairs (``KEEP``: the
faces seen in one frame only), solving either the rigid motion or a yaw about the output z
axis plus a translation (``yaw_only``: better conditioned; for objects turning about the
vertical). The tracker moves the track's reference point with that motion.

Point-to-point ICP was tried first: with the depth noise of single points (0.3 % of the range,
about 9 mm at 3 m) its optimum is not at the true motion (per-frame errors of 10-15 mm on the
synthetic crate, no better than the centroid); the normals fitted over 16 neighbours average
that noise out (3-8 mm).

Runs on the host: the points come there with the dynamic cloud anyway, and a handful of tracks
of a few hundred points cost less in numpy than launches on a device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vggt4d_ros.geometry.rotation import rotation_from_axis_angle

#: Points kept per detection (evenly subsampled); half of them are registered onto the next.
POINTS = 256
#: Fewest points of both detections for a registration.
MIN_POINTS = 20
#: ICP iterations.
ITERATIONS = 5
#: Fraction of nearest pairs an iteration keeps (the rest: faces seen in one frame only).
KEEP = 0.9
#: Weight per kept pair of the prior shift (0.01: a direction along which fewer than about 1 %
#: of the pairs' normals point takes the prior).
PRIOR = 0.01
#: Largest RMS distance of the kept pairs along the normals, as a fraction of the object's size.
MAX_RESIDUAL = 0.15
#: Points whose covariance gives a normal.
NEIGHBOURS = 16


@dataclass
class Registration:
    """Motions of M point sets: ``target ~ rotation @ source + translation``.

    Attributes:
        rotation: [M,3,3].
        translation: [M,3].
        residual: [M] RMS distance of the kept pairs after the last iteration (map units).
        pairs: [M] pairs kept in the last iteration.

    """

    rotation: np.ndarray
    translation: np.ndarray
    residual: np.ndarray
    pairs: np.ndarray


def subsample(points: np.ndarray, max_points: int) -> np.ndarray:
    """At most ``max_points`` rows of ``points`` [N,...], evenly spaced over their order.

    Deterministic: the rounded positions of ``linspace(0, N - 1, max_points)``. Also what the
    box fit takes of a detection (``box_fit.POINTS``); a caller may subsample an index array
    and gather with it.
    """
    if len(points) <= max_points:
        return points
    return points[np.linspace(0, len(points) - 1, max_points).round().astype(np.int64)]


def padded(clouds: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack point sets [n_i,3] (n_i <= size) into [M,size,3] float64 and their counts [M]."""
    out = np.zeros((len(clouds), size, 3))
    counts = np.array([len(c) for c in clouds], np.int64)
    for i, cloud in enumerate(clouds):
        out[i, :len(cloud)] = cloud
    return out, counts


def register(source: np.ndarray, source_count: np.ndarray, target: np.ndarray,
             target_count: np.ndarray, yaw_only: bool, shift: np.ndarray | None = None,
             prior: float = PRIOR, iterations: int = ITERATIONS, keep: float = KEEP,
             neighbours: int = NEIGHBOURS) -> Registration:
    """Register point sets source [M,S,3] onto target [M,T,3] (padded, counts [M] each >= 3).

    Point-to-plane ICP: the target's normals come from its ``neighbours`` nearest points
    (their covariance's smallest axis: the depth noise of single points averages out). It
    starts from a translation by ``shift`` [M,3] (default: the centroids' difference); each
    of ``iterations`` pairs every source point with its nearest target point (moved by the
    current motion), keeps the ``keep`` fraction of nearest pairs and solves one linearised
    step of the motion on them (small rotation about the pairs' centroid, translation) by
    least squares on the distances along the normals, plus the prior that the source's
    centroid moves by ``shift`` with weight ``prior`` per kept pair (it decides what the
    surfaces leave free: a lone face slides along itself).
    """
    count = len(source)
    source_ok = np.arange(source.shape[1])[None, :] < source_count[:, None]  # [M,S]
    target_ok = np.arange(target.shape[1])[None, :] < target_count[:, None]  # [M,T]
    normals = _normals(target, target_ok, neighbours)
    rotation = np.tile(np.eye(3), (count, 1, 1))
    source_mean = _weighted_mean(source, source_ok)
    if shift is None:
        shift = _weighted_mean(target, target_ok) - source_mean
    translation = shift.copy()
    target_sq = np.where(target_ok, np.einsum('mtc,mtc->mt', target, target), np.inf)
    kept = np.maximum(np.ceil(keep * source_count).astype(np.int64), 3)
    residual = np.zeros(count)
    weight = source_ok.astype(np.float64)
    unknowns = 4 if yaw_only else 6
    for _ in range(max(iterations, 1)):
        moved = source @ np.transpose(rotation, (0, 2, 1)) + translation[:, None, :]
        nearest, best = _nearest(moved, target, target_sq)
        best = np.where(source_ok, best, np.inf)
        limit = np.take_along_axis(np.sort(best, axis=1), (kept - 1)[:, None], axis=1)
        weight = (source_ok & (best <= limit)).astype(np.float64)
        matched = np.take_along_axis(target, nearest[:, :, None], axis=1)
        normal = np.take_along_axis(normals, nearest[:, :, None], axis=1)
        centre = _weighted_mean(moved, weight)
        arm = moved - centre[:, None, :]
        distance = np.einsum('msc,msc->ms', matched - moved, normal)  # [M,S]
        # Rows of the Jacobian of the distance along the normal: rotation (arm x normal, or
        # its z part for a yaw), translation (normal).
        spin = np.cross(arm, normal)
        jacobian = np.concatenate([spin[:, :, 2:] if yaw_only else spin, normal], axis=2)
        weighted = jacobian * weight[:, :, None]
        lhs = np.transpose(weighted, (0, 2, 1)) @ jacobian + 1e-9 * np.eye(unknowns)
        rhs = (np.transpose(weighted, (0, 2, 1)) @ distance[:, :, None])[:, :, 0]
        # The prior on the source centroid's shift (the rotation's coupling left out).
        strength = prior * weight.sum(axis=1)[:, None]
        lhs[:, -3:, -3:] += strength[:, :, None] * np.eye(3)
        now = np.einsum('mij,mj->mi', rotation, source_mean) + translation
        rhs[:, -3:] += strength * (source_mean + shift - now)
        step = np.linalg.solve(lhs, rhs[:, :, None])
        step = step[:, :, 0]
        spin_vector = (np.concatenate([np.zeros((count, 2)), step[:, :1]], axis=1)
                       if yaw_only else step[:, :3])
        turn = rotation_from_axis_angle(spin_vector)
        # New motion: rotate by ``turn`` about ``centre`` after the current one, then shift.
        rotation = turn @ rotation
        translation = (np.einsum('mij,mj->mi', turn, translation - centre) + centre
                       + step[:, -3:])
        residual = np.sqrt(np.sum(weight * distance ** 2, axis=1)
                           / np.maximum(weight.sum(axis=1), 1.0))
    return Registration(rotation, translation, residual, weight.sum(axis=1).astype(np.int64))


def _nearest(points: np.ndarray, target: np.ndarray, target_sq: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest target [M,T,3] of each point [M,S,3]: index [M,S] and squared distance [M,S].

    ``target_sq`` [M,T]: the targets' squared norms, inf for padding.
    """
    dist = (np.einsum('msc,msc->ms', points, points)[:, :, None] + target_sq[:, None, :]
            - 2.0 * points @ np.transpose(target, (0, 2, 1)))
    nearest = np.argmin(dist, axis=2)
    best = np.take_along_axis(dist, nearest[:, :, None], axis=2)[:, :, 0]
    return nearest, np.maximum(best, 0.0)


def _normals(points: np.ndarray, ok: np.ndarray, neighbours: int) -> np.ndarray:
    """Estimate unit normals [M,T,3] of points [M,T,3] (ok [M,T]) from their nearest points."""
    # Neighbour ranks only: float32 on centred points is precise enough and twice as fast.
    local = (points - _weighted_mean(points, ok)[:, None, :]).astype(np.float32)
    sq = np.where(ok, np.einsum('mtc,mtc->mt', local, local), np.inf)
    dist = sq[:, :, None] + sq[:, None, :] - 2.0 * local @ np.transpose(local, (0, 2, 1))
    k = min(neighbours, points.shape[1])
    near = np.argpartition(dist, k - 1, axis=2)[:, :, :k]  # [M,T,k]
    patch = np.take_along_axis(points[:, None, :, :], near[:, :, :, None], axis=2)
    patch = patch - patch.mean(axis=2, keepdims=True)
    _, vectors = np.linalg.eigh(np.swapaxes(patch, 2, 3) @ patch)
    return vectors[:, :, :, 0]


def _weighted_mean(points: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return ((points * weight[:, :, None]).sum(axis=1)
            / np.maximum(weight.sum(axis=1), 1e-12)[:, None])
