# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A window's static, confident, valid VGGT pixels on a strided network-pixel grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# The mapper's sparse 3x3 dilation on the sampling grid (9 strided reads, not a dense pool).
from vggt4d_ros.mapping.mapper import _dilated_subsample as dilated_subsample
from vggt4d_ros.motion.result import WindowResult


@dataclass
class StaticSamples:
    """Grid samples of a window (S frames, hs x ws samples each), all numpy.

    Attributes:
        rows, cols: [hs], [ws] network pixel indices of the grid.
        depth: [S,hs,ws] float32 VGGT z-depth (window units).
        usable: [S,hs,ws] bool: finite depth > 0, inside the camera image, not dynamic (grown
            by the dilation), confidence at or above the window's percentile.

    """

    rows: np.ndarray
    cols: np.ndarray
    depth: np.ndarray
    usable: np.ndarray


def static_samples(result: WindowResult, stride: int, conf_percentile: float,
                   dilation_px: int) -> StaticSamples:
    """Select a window's pixels that a metric comparison may trust.

    Args:
        result: the window.
        stride: grid step in network pixels.
        conf_percentile: drop pixels below this percentile of the window's static confidence.
        dilation_px: grow the refined dynamic masks by this radius first.

    """
    plan = result.transform
    height, width = plan.network_hw
    rows = np.arange(0, height, stride)
    cols = np.arange(0, width, stride)
    with torch.no_grad():
        depth = result.depth[:, ::stride, ::stride].float().cpu().numpy()
        conf = result.depth_conf[:, ::stride, ::stride].float().cpu().numpy()
        dynamic = dilated_subsample(result.refined_masks, dilation_px, stride)
    top, left = plan.offset_yx
    # Network pixel y shows resized row y + top (pad mode: rows outside are white canvas).
    inside = (((rows + top >= 0) & (rows + top < plan.resized_hw[0]))[:, None]
              & ((cols + left >= 0) & (cols + left < plan.resized_hw[1]))[None, :])
    valid = np.isfinite(depth) & (depth > 0) & inside & ~dynamic
    usable = valid
    if conf_percentile > 0 and valid.any():
        candidates = conf[valid]
        # An evenly thinned subset estimates the percentile well at a fraction of the cost.
        thinned = candidates[:: max(1, candidates.size // 16384)]
        rank = int(conf_percentile / 100.0 * (thinned.size - 1))
        usable = valid & (conf >= np.partition(thinned, rank)[rank])
    return StaticSamples(rows, cols, depth, usable)


def grid_stride(network_hw: tuple[int, int], samples_per_side: int = 48) -> int:
    """Grid step giving about ``samples_per_side`` samples along the shorter network side."""
    return max(1, min(network_hw) // samples_per_side)
