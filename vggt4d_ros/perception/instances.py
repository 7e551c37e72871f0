# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Split a frame's dynamic pixels into object instances and measure each one.

Connectivity: 4-connected dynamic pixels, cut where the depth jumps (two objects overlapping
in the image): at a jump larger than ``depth_break`` times the nearer depth, the FAR pixel is
removed from the labelling, so the near object and the one behind it fall apart. Removed
pixels, parts below ``min_pixels`` and parts beyond the ``max_instances`` largest get label 0
(they stay in the dynamic cloud, with object id 0); the counts say how many.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from vggt4d_ros.perception.config import InstanceConfig
from vggt4d_ros.perception.dynamic_points import FramePoints

_FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


@dataclass
class Instance:
    """One object seen in one frame.

    Attributes:
        label: 1-based label in the frame's label image.
        pixels: dynamic pixels of the object (before point thinning).
        box: image box (row0, col0, row1, col1), inclusive, network pixels.
        centre: [3] estimated object centre, output frame.
        size: [3] estimated full extent along the output axes.
        range: camera distance of the centre (global units).

    """

    label: int
    pixels: int
    box: tuple[int, int, int, int]
    centre: np.ndarray
    size: np.ndarray
    range: float


@dataclass
class FrameInstances:
    """Instances of one frame, the label of each point and what was left out.

    Attributes:
        instances: at most ``max_instances`` objects, largest first.
        point_labels: [N] int32 label of each point of the frame (0 = no instance).
        small_parts: connected parts dropped for being below ``min_pixels``.
        excess_parts: parts dropped beyond ``max_instances``.

    """

    instances: list[Instance]
    point_labels: np.ndarray
    small_parts: int = 0
    excess_parts: int = 0


def label_image(mask: np.ndarray, depth: np.ndarray, config: InstanceConfig
                ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Label dynamic pixels: mask [h,w] bool (dynamic with valid depth), depth [h,w].

    Returns:
        labels [h,w] int32 (0 = none, 1..K largest first), pixel counts [K], the number of
        parts dropped as small and as excess.

    """
    labels = np.zeros(mask.shape, np.int32)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(rows):
        return labels, np.zeros(0, np.int64), 0, 0
    # Work on the dynamic pixels' bounding box only: objects cover a small part of a frame.
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    crop = mask[box]
    cut = crop & ~_far_side_of_jumps(crop, depth[box], config.depth_break)
    raw, count = ndimage.label(cut, structure=_FOUR_CONNECTED)
    if count == 0:
        return labels, np.zeros(0, np.int64), 0, 0
    sizes = np.bincount(raw.ravel(), minlength=count + 1)[1:]
    big = np.nonzero(sizes >= config.min_pixels)[0]
    small = count - len(big)
    order = big[np.argsort(-sizes[big], kind='stable')]
    kept = order[: config.max_instances]
    excess = len(order) - len(kept)
    relabel = np.zeros(count + 1, np.int32)
    relabel[kept + 1] = np.arange(1, len(kept) + 1, dtype=np.int32)
    labels[box] = relabel[raw]
    return labels, sizes[kept], small, excess


def _far_side_of_jumps(mask: np.ndarray, depth: np.ndarray, ratio: float) -> np.ndarray:
    """[h,w] bool: dynamic pixels whose 4-neighbour is dynamic and much nearer."""
    far = np.zeros(mask.shape, bool)
    safe = np.where(mask, depth, 0.0)
    for axis in (0, 1):
        first = [slice(None), slice(None)]
        second = [slice(None), slice(None)]
        first[axis], second[axis] = slice(None, -1), slice(1, None)
        a, b = safe[tuple(first)], safe[tuple(second)]
        both = mask[tuple(first)] & mask[tuple(second)]
        jump = both & (np.abs(a - b) > ratio * np.minimum(a, b))
        far[tuple(first)] |= jump & (a > b)
        far[tuple(second)] |= jump & (b > a)
    return far


def split_instances(points: FramePoints, labels: np.ndarray, pixel_counts: np.ndarray,
                    small: int, excess: int, depth_completion: str) -> FrameInstances:
    """Measure every labelled object from the frame's points (one loop over <= K objects)."""
    point_labels = labels[points.rows, points.cols].astype(np.int32)
    instances = []
    for label in range(1, len(pixel_counts) + 1):
        members = np.nonzero(point_labels == label)[0]
        if len(members) < 3:  # thinned away or no confident depth: not measurable
            point_labels[members] = 0
            continue
        rows, cols = points.rows[members], points.cols[members]
        box = (int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max()))
        centre, size, rng = _measure(points.camera[members], points.output[members],
                                     points.output_from_camera, depth_completion)
        instances.append(Instance(label, int(pixel_counts[label - 1]), box, centre, size, rng))
    return FrameInstances(instances, point_labels, small, excess)


def _measure(camera: np.ndarray, output: np.ndarray, output_from_camera: np.ndarray,
             depth_completion: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre [3] and size [3] in the output frame, and the centre's camera range.

    The camera sees only the front of an object. Moments, not extremes, keep the estimate
    steady from frame to frame (a few pixels more or less at the silhouette move a
    percentile, hardly a mean). With 'half_width' the visible points' mean is pushed back
    along its viewing ray by 4/3 of the standard deviation of their horizontal image-plane
    coordinate: exact for a sphere (mean visible depth = centre - 2r/3, std = r/2) and within
    2 % of the radius for an upright cylinder (a person); 'none' keeps the visible mean.
    """
    mean = camera.mean(axis=0)
    if depth_completion == 'half_width' and mean[2] > 0:
        push = 4.0 / 3.0 * float(camera[:, 0].std())
        centre_cam = mean * (1.0 + push / mean[2])
    else:
        centre_cam = mean
    centre = output_from_camera[:3, :3] @ centre_cam + output_from_camera[:3, 3]
    out_low, out_high = np.percentile(output, [2.0, 98.0], axis=0)
    # Mirror the visible extent about the centre: the hidden back is as deep as the front.
    size = 2.0 * np.maximum(np.abs(out_high - centre), np.abs(centre - out_low))
    return centre, size, float(np.linalg.norm(centre_cam))
