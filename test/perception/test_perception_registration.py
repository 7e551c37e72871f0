# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Frame-to-frame registration of an object's points (``registration``, motion_registration).

The points are a box's visible faces (seen from a camera, noisy, sampled anew each frame): the
registration recovers the box's motion (yaw and translation, or the full rigid motion), a lone
face takes the prior's shift along itself, and the tracker moves its reference point with the
registered motion, which removes a jittering visible centroid from the velocity.
"""

from __future__ import annotations

import numpy as np

from vggt4d_ros.perception import registration
from vggt4d_ros.perception.config import TrackerConfig
from vggt4d_ros.perception.instances import Instance
from vggt4d_ros.perception.tracker import Tracker

HALF = np.array([0.35, 0.22, 0.3])
CAMERA = np.array([-3.0, -1.0, 1.2])


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _visible_faces(centre: np.ndarray, rotation: np.ndarray, count: int,
                   rng: np.random.Generator, noise: float = 0.003) -> np.ndarray:
    """[N,3] noisy points on the faces of a box that face CAMERA."""
    points = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            normal = rotation[:, axis] * sign
            if normal @ (CAMERA - (centre + normal * HALF[axis])) <= 0:
                continue
            local = rng.uniform(-HALF, HALF, size=(count, 3))
            local[:, axis] = sign * HALF[axis]
            points.append(local @ rotation.T + centre)
    cloud = np.concatenate(points)
    return cloud + noise * rng.standard_normal(cloud.shape)


def _register(source, target, yaw_only, shift=None, prior=0.0, iterations=5):
    size = registration.POINTS  # as the tracker: half of the old points onto the new ones
    s, s_count = registration.padded([registration.subsample(source, size // 2)], size // 2)
    t, t_count = registration.padded([registration.subsample(target, size)], size)
    return registration.register(s, s_count, t, t_count, yaw_only,
                                 None if shift is None else shift[None], prior, iterations)


def test_registration_recovers_a_turning_box_motion():
    rng = np.random.default_rng(0)
    centre, angle = np.array([0.5, 0.4, 0.3]), 0.4
    step, turn = np.array([0.06, -0.02, 0.0]), 0.06
    before = _visible_faces(centre, _yaw(angle), 300, rng)
    after = _visible_faces(centre + step, _yaw(angle + turn), 300, rng)
    assert len(after) > len(before)  # a third face turns into view: trimmed pairs
    for yaw_only in (True, False):
        # From the centroids' shift (which the new face pulls by centimetres).
        found = _register(before, after, yaw_only, iterations=10)
        moved = found.rotation[0] @ centre + found.translation[0]
        # The box's centre (not on the points) follows to a few millimetres.
        assert np.linalg.norm(moved - (centre + step)) < 0.01, (yaw_only, moved)
        yaw = np.arctan2(found.rotation[0, 1, 0], found.rotation[0, 0, 0])
        assert abs(yaw - turn) < 0.01, (yaw_only, yaw)
        # The nearest 90 % of the source points' pairs are kept.
        assert found.residual[0] < 0.01
        assert found.pairs[0] == np.ceil(registration.KEEP * (registration.POINTS // 2))
    # The visible centroid slides over the turning box: its shift is wrong by centimetres.
    slide = (after.mean(axis=0) - before.mean(axis=0)) - step
    assert np.linalg.norm(slide) > 0.01, slide


def test_a_lone_face_takes_the_prior_along_itself():
    """One plane constrains only its normal: the prior's shift decides the rest."""
    rng = np.random.default_rng(1)
    plane = np.stack([np.zeros(400), rng.uniform(-0.3, 0.3, 400),
                      rng.uniform(0.0, 0.6, 400)], axis=1)
    true_step = np.array([0.05, 0.04, 0.0])  # 5 cm along the normal (x), 4 cm along the face
    shift = np.array([0.0, 0.03, 0.0])  # the prior: right along the face, wrong across it
    moved = plane + true_step + 0.002 * rng.standard_normal(plane.shape)
    found = _register(plane, moved, True, shift=shift, prior=0.01)
    step = found.translation[0] + (found.rotation[0] - np.eye(3)) @ plane.mean(axis=0)
    assert abs(step[0] - 0.05) < 0.003, step  # across the face: the points
    assert abs(step[1] - 0.03) < 0.005, step  # along it: the prior


def _velocity_error(motion_registration: bool, sparse: bool = False, anchor_rate: float = 0.5
                    ) -> tuple[float, Tracker]:
    """RMS velocity error after 1 s of a box moving straight whose visible part jitters.

    The box does not turn; each frame sees a random part (60-100 %) of its front faces, so the
    visible centroid jumps by centimetres from frame to frame. ``sparse``: every detection
    gives fewer points than a registration needs.
    """
    rng = np.random.default_rng(2)
    velocity = np.array([0.5, 0.3, 0.0])
    tracker = Tracker(TrackerConfig(motion_registration=motion_registration,
                                    registration_anchor_rate=anchor_rate))
    errors = []
    for k in range(45):
        centre = np.array([0.5, 0.4, 0.3]) + velocity * k / 15.0
        points = _visible_faces(centre, _yaw(0.4), 300, rng)
        cut = np.quantile(points[:, 2], rng.uniform(0.6, 1.0))
        points = points[points[:, 2] <= cut]
        if sparse:
            points = points[:registration.MIN_POINTS - 1]
        instance = Instance(1, len(points), (10, 10, 40, 40), points.mean(axis=0),
                            np.array([0.8, 0.6, 0.6]), 3.0)
        tracker.update(int(round(k * 1e9 / 15.0)), [instance], [points])
        if k >= 15:
            (track,) = tracker.tracks()
            errors.append(np.linalg.norm(track.velocity - velocity))
    return float(np.sqrt(np.mean(np.square(errors)))), tracker


def test_registered_reference_point_removes_the_jitter_of_the_visible_centroid():
    own, _ = _velocity_error(False)
    # Pulled to the detections' centres slowly: most of the jitter is gone.
    registered, tracker = _velocity_error(True, anchor_rate=0.1)
    assert tracker.stats.registered == 44 and tracker.stats.registration_fallbacks == 0
    assert registered < 0.5 * own, (registered, own)
    # The default rate (0.5) follows the centres more (measured 0.22 against 0.27 m/s).
    default, _ = _velocity_error(True)
    assert registered < default < own, (registered, default, own)


def test_too_few_points_fall_back_to_the_detection_centre():
    own, _ = _velocity_error(False, sparse=True)
    fallback, tracker = _velocity_error(True, sparse=True)
    assert tracker.stats.registered == 0 and tracker.stats.registration_fallbacks == 44
    assert fallback == own
