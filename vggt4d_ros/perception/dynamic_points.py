# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Dynamic-obstacle points: unproject a frame's dynamic pixels into the output frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vggt4d_ros.perception.config import DynamicPointsConfig
from vggt4d_ros.perception.observation import FrameObservation


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


def conf_threshold(obs: FrameObservation, min_conf: float, percentile: float) -> float:
    """Confidence threshold of a frame: ``min_conf`` or its ``percentile``, the larger."""
    if obs.conf is None or percentile <= 0:
        return min_conf
    # An evenly thinned subset estimates the percentile well at a fraction of the cost.
    conf = obs.conf.ravel()
    thinned = conf[:: max(1, conf.size // 8192)]
    rank = int(percentile / 100.0 * (thinned.size - 1))
    return max(min_conf, float(np.partition(thinned, rank)[rank]))


def valid_depth(obs: FrameObservation, min_conf: float, max_depth: float) -> np.ndarray:
    """[h,w] bool: finite positive depth, conf >= min_conf, inside the image, in range."""
    depth = obs.depth
    with np.errstate(invalid='ignore'):
        ok = np.isfinite(depth) & (depth > 0) & (depth * obs.depth_scale <= max_depth)
    if obs.conf is not None:
        ok &= obs.conf >= min_conf
    if obs.valid is not None:
        ok &= obs.valid
    return ok


def unproject_pixels(obs: FrameObservation, rows: np.ndarray, cols: np.ndarray,
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


def dynamic_points(obs: FrameObservation, config: DynamicPointsConfig,
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
    if isinstance(obs.image, torch.Tensor):
        index = torch.from_numpy(rows).to(obs.image.device), torch.from_numpy(cols).to(
            obs.image.device)
        rgb = obs.image[:, index[0], index[1]].float().cpu().numpy().T
        rgb = np.clip(rgb * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    elif obs.image is not None:
        rgb = obs.image[:, rows, cols].T
        rgb = np.clip(rgb * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    else:
        rgb = np.full((len(rows), 3), 128, np.uint8)
    transform = output_from_world @ obs.world_from_camera
    return FramePoints(rows, cols, camera, output, rgb, transform)
