# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Track-averaged shape terms of the detection centre (``TrackerConfig.shape_average_hits``).

A turning box seen from one side: its true centre moves at constant velocity, but the faces the
camera sees change, so the per-frame push back along the viewing ray (from the visible width)
and the height of the visible points' mean oscillate, while the top of the object stays put.
The per-frame centre then oscillates along the ray and in height, which the filter reads as
motion; the track's averages remove it.
"""

from __future__ import annotations

import numpy as np

from vggt4d_ros.perception.config import TrackerConfig
from vggt4d_ros.perception.instances import Instance
from vggt4d_ros.perception.tracker import Tracker

FPS = 15.0
VELOCITY = np.array([0.6, 0.2, 0.0])
#: The object's true depth behind its visible mean, along the ray, and its top above the centre.
HIDDEN_DEPTH, TOP_ABOVE_CENTRE = 0.2, 0.3
RAY = np.array([1.0, 0.0, -0.3]) / np.linalg.norm([1.0, 0.0, -0.3])


def _turning_box(k: int, centre: np.ndarray) -> Instance:
    """Detection of frame k: per-frame push and mean height follow the visible faces."""
    phase = 2.0 * np.pi * k / 20.0  # the faces change with a 1.3 s period
    push = HIDDEN_DEPTH + 0.04 * np.sin(phase)  # estimated from the visible width
    visible_mean = centre - RAY * HIDDEN_DEPTH
    measured = visible_mean + RAY * push
    measured[2] = centre[2] + 0.03 * np.cos(phase)  # side faces pull the mean down, top up
    return Instance(1, 400, (10, 10, 30, 30), measured, np.full(3, 0.5), 3.0,
                    push=push, push_direction=RAY.copy(),
                    top=float(centre[2] + TOP_ABOVE_CENTRE))


def _velocity_errors(shape_average_hits: int) -> tuple[float, float]:
    """RMS velocity error after 1 s (horizontal, vertical) over 4 s of frames."""
    tracker = Tracker(TrackerConfig(shape_average_hits=shape_average_hits))
    horizontal, vertical = [], []
    for k in range(60):
        centre = np.array([1.0, 2.0, 0.3]) + VELOCITY * k / FPS
        ids = tracker.update(int(round(k * 1e9 / FPS)), [_turning_box(k, centre)])
        assert ids is not None
        if k >= 15:
            (track,) = tracker.tracks()
            error = track.velocity - VELOCITY
            horizontal.append(np.linalg.norm(error[:2]))
            vertical.append(error[2])
    return float(np.sqrt(np.mean(np.square(horizontal)))), float(np.sqrt(np.mean(np.square(
        vertical))))


def test_averaged_shape_terms_remove_the_turning_faces_from_the_velocity():
    speed = np.linalg.norm(VELOCITY)
    own_h, own_v = _velocity_errors(shape_average_hits=1)
    averaged_h, averaged_v = _velocity_errors(shape_average_hits=30)
    # Each frame's own values: the oscillating faces read as motion (measured 30 % / 25 %).
    assert own_h > 0.05 * speed and own_v > 0.05 * speed, (own_h, own_v)
    # Averaged: the oscillation is gone (what is left is the running mean settling).
    assert averaged_h < 0.4 * own_h and averaged_v < 0.4 * own_v, (averaged_h, averaged_v)
    assert averaged_h < 0.06 * speed and averaged_v < 0.06 * speed  # measured 4.5 % / 3.5 %


def test_a_detection_without_a_ray_is_used_as_it_is():
    """A rig detection merged from several cameras (no single ray) is not corrected."""
    tracker = Tracker(TrackerConfig(confirm_hits=1))
    centre = np.array([1.0, 0.0, 0.5])
    for k in range(3):
        tracker.update(k * 66 * 1_000_000, [Instance(1, 400, (0, 0, 5, 5), centre.copy(),
                                                     np.full(3, 0.4), 3.0, push=0.3)])
    (track,) = tracker.tracks()
    np.testing.assert_allclose(track.position, centre, atol=1e-9)
