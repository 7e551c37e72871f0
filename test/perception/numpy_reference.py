# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Numpy reference of the perception pixel stages (test only).

The numpy implementation the torch stages replaced (points, labels and measurements, grids),
kept here to check that the torch port gives the same results. Frames are
``FrameObservation`` with CPU tensors (read as numpy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from vggt4d_ros.perception.config import GridConfig
from vggt4d_ros.perception.config import InstanceConfig
from vggt4d_ros.perception.instances import Instance

_FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
FREE, OCCUPIED, UNKNOWN = 0, 100, -1


@dataclass
class Frame:
    """Numpy view of a FrameObservation."""

    depth: np.ndarray
    depth_scale: float
    conf: np.ndarray | None
    intrinsics: np.ndarray
    world_from_camera: np.ndarray
    mask: np.ndarray
    image: np.ndarray | None
    valid: np.ndarray | None


def as_numpy(obs) -> Frame:
    """Numpy copy of an observation's fields."""
    def get(value):
        return None if value is None else np.asarray(value.cpu().numpy() if hasattr(
            value, 'cpu') else value)

    return Frame(get(obs.depth), obs.depth_scale, get(obs.conf), obs.intrinsics,
                 obs.world_from_camera, get(obs.mask), get(obs.image), get(obs.valid))


@dataclass
class FramePoints:
    """Selected pixels of one frame and their 3D points.

    Attributes:
        rows, cols: [N] int pixel indices (network resolution).
        camera: [N,3] float64 points in the camera frame (global units).
        output: [N,3] float64 points in the output frame.
        rgb: [N,3] uint8 colours (grey when the frame has no image).
        output_from_camera: [4,4] rigid transform camera -> output frame.

    """

    rows: np.ndarray
    cols: np.ndarray
    camera: np.ndarray
    output: np.ndarray
    rgb: np.ndarray
    output_from_camera: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


def conf_threshold(obs: Frame, min_conf: float, percentile: float) -> float:
    """Confidence threshold of a frame: ``min_conf`` or its ``percentile``, the larger."""
    if obs.conf is None or percentile <= 0:
        return min_conf
    # An evenly thinned subset estimates the percentile well at a fraction of the cost.
    conf = obs.conf.ravel()
    thinned = conf[:: max(1, conf.size // 8192)]
    rank = int(percentile / 100.0 * (thinned.size - 1))
    return max(min_conf, float(np.partition(thinned, rank)[rank]))


def valid_depth(obs: Frame, min_conf: float, max_depth: float) -> np.ndarray:
    """[h,w] bool: finite positive depth, conf >= min_conf, inside the image, in range."""
    depth = obs.depth
    with np.errstate(invalid='ignore'):
        ok = np.isfinite(depth) & (depth > 0) & (depth * obs.depth_scale <= max_depth)
    if obs.conf is not None:
        ok &= obs.conf >= min_conf
    if obs.valid is not None:
        ok &= obs.valid
    return ok


def unproject_pixels(obs: Frame, rows: np.ndarray, cols: np.ndarray,
                     output_from_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame and output-frame points [N,3] of pixels (rows, cols) of a frame.

    Integer-index pixel convention (as VGGT's unprojection); depth times ``depth_scale``.
    """
    k = obs.intrinsics
    z = obs.depth[rows, cols].astype(np.float64) * obs.depth_scale
    camera = np.stack([(cols - k[0, 2]) / k[0, 0] * z, (rows - k[1, 2]) / k[1, 1] * z, z], axis=1)
    transform = output_from_world @ obs.world_from_camera
    output = camera @ transform[:3, :3].T + transform[:3, 3]
    return camera, output


def thin_evenly(count: int, limit: int) -> np.ndarray:
    """Pick at most ``limit`` of ``count`` indices, evenly spread and deterministic."""
    if count <= limit:
        return np.arange(count)
    return np.linspace(0, count - 1, limit).round().astype(np.int64)


def dynamic_points(obs: Frame, config,
                   output_from_world: np.ndarray, threshold: float | None = None) -> FramePoints:
    """Points of the frame's confident dynamic pixels, at most ``max_points_per_frame``.

    ``threshold``: the frame's confidence threshold if already known (``conf_threshold``).
    """
    if threshold is None:
        threshold = conf_threshold(obs, config.min_conf, config.conf_percentile)
    selected = obs.mask & valid_depth(obs, threshold, config.max_depth)
    rows, cols = np.nonzero(selected)
    keep = thin_evenly(len(rows), config.max_points_per_frame)
    rows, cols = rows[keep], cols[keep]
    camera, output = unproject_pixels(obs, rows, cols, output_from_world)
    if obs.image is not None:
        rgb = obs.image[:, rows, cols].T
        rgb = np.clip(rgb * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    else:
        rgb = np.full((len(rows), 3), 128, np.uint8)
    transform = output_from_world @ obs.world_from_camera
    return FramePoints(rows, cols, camera, output, rgb, transform)


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
                    small: int, excess: int, depth_completion: str
                    ) -> tuple[list[Instance], np.ndarray]:
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
        centre, size, rng, push, direction, top = _measure(
            points.camera[members], points.output[members], points.output_from_camera,
            depth_completion)
        instances.append(Instance(label, int(pixel_counts[label - 1]), box, centre, size, rng,
                                  push=push, push_direction=direction, top=top))
    return instances, point_labels


def _measure(camera: np.ndarray, output: np.ndarray, output_from_camera: np.ndarray,
             depth_completion: str
             ) -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray, float]:
    """Centre [3] and size [3] in the output frame, the centre's range, push, ray and top.

    The push: how far the centre lies behind the visible mean along its viewing ray [3]
    (unit, output frame); the top: the 98th percentile of the points' height.

    The camera sees only the front of an object. Moments, not extremes, keep the estimate
    steady from frame to frame (a few pixels more or less at the silhouette move a
    percentile, hardly a mean). With 'half_width' the visible points' mean is pushed back
    along its viewing ray by 4/3 of the standard deviation of their horizontal image-plane
    coordinate: exact for a sphere (mean visible depth = centre - 2r/3, std = r/2) and within
    2 % of the radius for an upright cylinder (a person); 'none' keeps the visible mean.
    """
    mean = camera.mean(axis=0)
    push = 0.0
    if depth_completion == 'half_width' and mean[2] > 0:
        ratio = 4.0 / 3.0 * float(camera[:, 0].std()) / mean[2]
        centre_cam = mean * (1.0 + ratio)
        push = ratio * float(np.linalg.norm(mean))
    else:
        centre_cam = mean
    centre = output_from_camera[:3, :3] @ centre_cam + output_from_camera[:3, 3]
    direction = output_from_camera[:3, :3] @ mean / np.linalg.norm(mean)
    out_low, out_high = np.percentile(output, [2.0, 98.0], axis=0)
    # Mirror the visible extent about the centre: the hidden back is as deep as the front.
    size = 2.0 * np.maximum(np.abs(out_high - centre), np.abs(centre - out_low))
    return (centre, size, float(np.linalg.norm(centre_cam)), push, direction,
            float(out_high[2]))


class OccupancyMapper:  # noqa: D101
    """Owns the grid state; ``integrate`` once per frame in stamp order, ``grids`` to read."""

    def __init__(self, config: GridConfig | None = None) -> None:
        self.config = config or GridConfig()
        cfg = self.config
        self._level = np.zeros((cfg.height, cfg.width), np.int16)
        self._seen = np.zeros((cfg.height, cfg.width), bool)
        self._observed_ns = np.full((cfg.height, cfg.width), -1, np.int64)
        self._dynamic_ns = np.full((cfg.height, cfg.width), -1, np.int64)
        self._stamp_ns: int | None = None

    def integrate(self, stamp_ns: int, camera_xyz: np.ndarray, static_xyz: np.ndarray,
                  dynamic_xyz: np.ndarray) -> None:
        """Add one frame.

        Args:
            stamp_ns: the frame's stamp.
            camera_xyz: [3] camera centre, output frame.
            static_xyz: [N,3] static points, output frame.
            dynamic_xyz: [M,3] dynamic points, output frame.

        """
        cfg = self.config
        self._stamp_ns = stamp_ns
        ends = np.concatenate([static_xyz, dynamic_xyz])[:, :2]
        free = self._ray_cells(camera_xyz[:2], ends)
        self._level.ravel()[free] = np.maximum(
            self._level.ravel()[free] - cfg.miss_weight, -cfg.max_level)
        self._seen.ravel()[free] = True
        self._observed_ns.ravel()[free] = stamp_ns
        static_cells = self._band_cells(static_xyz)
        self._level.ravel()[static_cells] = np.minimum(
            self._level.ravel()[static_cells] + cfg.hit_weight, cfg.max_level)
        self._seen.ravel()[static_cells] = True
        self._observed_ns.ravel()[static_cells] = stamp_ns
        dynamic_cells = self._band_cells(dynamic_xyz)
        self._observed_ns.ravel()[dynamic_cells] = stamp_ns
        self._dynamic_ns.ravel()[dynamic_cells] = stamp_ns

    def grids(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the current static, dynamic and combined grids."""
        cfg = self.config
        static = np.full(self._level.shape, UNKNOWN, np.int8)
        static[self._seen] = FREE
        static[self._seen & (self._level >= cfg.occupied_level)] = OCCUPIED
        dynamic = np.full(self._level.shape, UNKNOWN, np.int8)
        if self._stamp_ns is not None:
            recent = (self._observed_ns >= 0) & (
                self._stamp_ns - self._observed_ns <= cfg.dynamic_decay_s * 1e9)
            dynamic[recent] = FREE
            dynamic[recent & (self._dynamic_ns == self._observed_ns)] = OCCUPIED
        combined = np.where((static == OCCUPIED) | (dynamic == OCCUPIED), OCCUPIED,
                            np.where((static == FREE) | (dynamic == FREE), FREE, UNKNOWN))
        return static, dynamic, combined.astype(np.int8)

    # -- cells ------------------------------------------------------------------------------

    def _cell_index(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat cell indices of points [N,2] and which points fall inside the grid."""
        cfg = self.config
        col = np.floor((xy[:, 0] - cfg.origin_xy[0]) / cfg.resolution).astype(np.int64)
        row = np.floor((xy[:, 1] - cfg.origin_xy[1]) / cfg.resolution).astype(np.int64)
        inside = (col >= 0) & (col < cfg.width) & (row >= 0) & (row < cfg.height)
        return row * cfg.width + col, inside

    def _band_cells(self, xyz: np.ndarray) -> np.ndarray:
        cfg = self.config
        height = xyz[:, 2] - cfg.ground_z
        in_band = (height >= cfg.min_height) & (height <= cfg.max_height)
        cells, inside = self._cell_index(xyz[in_band, :2])
        return np.unique(cells[inside])

    def _ray_cells(self, origin: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Flat cells crossed by the 2D rays origin -> ends [N,2], end cells excluded.

        Cast as a 2D range scan (what a costmap's ray tracing amounts to): the bearings
        around the camera are cut into bins about one cell wide at ``max_range``; each bin
        keeps its farthest end point; a cell is free when it is nearer than its bin's range
        minus one cell. Cost: one pass over the points and one over the cells of the box
        spanned by the camera and the points, instead of a walk along every ray.
        """
        cfg = self.config
        if not len(ends):
            return np.zeros(0, np.int64)
        offset = ends - origin
        length = np.hypot(offset[:, 0], offset[:, 1])
        keep = (length > 0) & (length <= cfg.max_range)
        if not keep.any():
            return np.zeros(0, np.int64)
        bins = int(min(max(np.ceil(2 * np.pi * cfg.max_range / cfg.resolution), 64), 8192))
        scale = bins / (2 * np.pi)
        bearing = np.arctan2(offset[keep, 1], offset[keep, 0])
        index = np.floor((bearing + np.pi) * scale).astype(np.int64) % bins
        reach = np.zeros(bins)
        order = np.argsort(index, kind='stable')
        index, sorted_length = index[order], length[keep][order]
        starts = np.concatenate([[0], np.nonzero(np.diff(index))[0] + 1])
        reach[index[starts]] = np.maximum.reduceat(sorted_length, starts)
        reached = ends[keep]
        rows, cols, cell_offset = self._cells_within(
            origin, np.minimum(reached.min(axis=0), origin), np.maximum(reached.max(axis=0),
                                                                        origin))
        distance = np.hypot(cell_offset[:, 0], cell_offset[:, 1])
        cell_bin = np.floor((np.arctan2(cell_offset[:, 1], cell_offset[:, 0]) + np.pi)
                            * scale).astype(np.int64) % bins
        free = distance < reach[cell_bin] - cfg.resolution
        return rows[free] * cfg.width + cols[free]

    def _cells_within(self, origin: np.ndarray, low: np.ndarray, high: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, columns and centre offsets [K,2] from ``origin`` of the cells in a box."""
        cfg = self.config
        lo = np.floor((low - np.asarray(cfg.origin_xy)) / cfg.resolution)
        hi = np.ceil((high - np.asarray(cfg.origin_xy)) / cfg.resolution)
        col0, row0 = np.maximum(lo, 0).astype(np.int64)
        col1 = int(min(hi[0], cfg.width))
        row1 = int(min(hi[1], cfg.height))
        if col1 <= col0 or row1 <= row0:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros((0, 2))
        rows, cols = np.mgrid[row0:row1, col0:col1]
        rows, cols = rows.ravel(), cols.ravel()
        centres = (np.stack([cols, rows], axis=1) + 0.5) * cfg.resolution + np.asarray(
            cfg.origin_xy)
        return rows, cols, centres - origin


def static_points(obs: Frame, threshold: float, cfg) -> np.ndarray:
    """Output-frame points [N,3] of confident static pixels on the grid's pixel stride.

    The dynamic mask is grown by one sample (3x3 on the strided grid) so object borders
    do not leak into the static grid.
    """
    stride = cfg.grid.pixel_stride
    ok = valid_depth(obs, threshold, cfg.grid.max_range)[::stride, ::stride]
    near_dynamic = ndimage.binary_dilation(obs.mask[::stride, ::stride],
                                           structure=np.ones((3, 3), bool))
    rows, cols = np.nonzero(ok & ~near_dynamic)
    _, output = unproject_pixels(obs, rows * stride, cols * stride, cfg.output_from_world)
    return output
