# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Dynamic-obstacle points: unproject a batch's dynamic pixels into the output frame.

Torch on the batch's device, over all frames at once, without a host sync: the selection is
thinned into fixed-size buffers ([F,L], L = ``max_points_per_frame``) whose first
``count[f]`` slots are used; the host reads the counts (``BatchPoints.host_count``, one
sync) when it cuts the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf

from vggt4d_ros.perception.batch import FrameBatch
from vggt4d_ros.perception.config import DynamicPointsConfig


@dataclass
class BatchPoints:
    """Selected dynamic pixels of F frames and their 3D points (slots >= count are unused).

    Attributes:
        threshold: [F] float32 confidence threshold of each frame.
        selected: [F,h,w] bool confident dynamic pixels (before thinning).
        index: [F,L] int64 flat pixel index (row * w + col) of each slot.
        count: [F] int64 used slots.
        host_count: [F] numpy int64, the same on the host (a property: copied when read).
        used: [F,L] bool slot < count.
        camera: [F,L,3] float64 points in the camera frame (global units).
        output: [F,L,3] float64 points in the output frame.
        rgb: [F,L,3] uint8 colours (grey when the frame has no image).
        trusted, scaled_depth: every pixel's ``depth_checks`` (for the grid's static points).

    """

    threshold: torch.Tensor
    selected: torch.Tensor
    index: torch.Tensor
    count: torch.Tensor
    used: torch.Tensor
    camera: torch.Tensor
    output: torch.Tensor
    rgb: torch.Tensor
    trusted: torch.Tensor | None = None
    scaled_depth: torch.Tensor | None = None
    _host_count: np.ndarray | None = None

    @property
    def host_count(self) -> np.ndarray:
        """[F] numpy int64 used slots: ``count`` on the host (read once: one host sync)."""
        if self._host_count is None:
            self._host_count = self.count.cpu().numpy()
        return self._host_count


def conf_thresholds(batch: FrameBatch, min_conf: float, percentile: float) -> torch.Tensor:
    """[F] threshold per frame: ``min_conf`` or the frame's ``percentile``, the larger."""
    floor = torch.full((len(batch),), min_conf, dtype=torch.float32, device=batch.device)
    if percentile <= 0:
        return floor
    # An evenly thinned subset estimates the percentile well at a fraction of the cost.
    conf = batch.conf.flatten(1)
    thinned = conf[:, :: max(1, conf.shape[1] // 8192)]
    rank = int(percentile / 100.0 * (thinned.shape[1] - 1))
    value = torch.kthvalue(thinned, rank + 1, dim=1).values
    return torch.where(batch.has_conf, torch.maximum(floor, value), floor)


def depth_checks(batch: FrameBatch, threshold: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel: trusted [F,h,w] bool and scaled depth [F,h,w] float32 (global units).

    Trusted: finite positive depth, conf >= threshold [F], inside the image. A pixel is
    valid for a range r where it is trusted and its scaled depth is <= r (``valid_depth``);
    the stages with different ranges share this pass.
    """
    depth = batch.depth
    scaled = depth * batch.scale.float()[:, None, None]
    trusted = torch.isfinite(depth) & (depth > 0) & (batch.conf >= threshold[:, None, None])
    return trusted & batch.valid, scaled


def valid_depth(batch: FrameBatch, threshold: torch.Tensor, max_depth: float) -> torch.Tensor:
    """[F,h,w] bool: finite positive depth, conf >= threshold [F], inside the image, in range."""
    trusted, scaled = depth_checks(batch, threshold)
    return trusted & (scaled <= max_depth)


#: Entries per block of ``running_count``'s first scan.
_SCAN_BLOCK = 1024


def running_count(selected: torch.Tensor) -> torch.Tensor:
    """[R,P] int32 True entries of each row of ``selected`` [R,P] bool up to each position.

    In two levels: within blocks of ``_SCAN_BLOCK`` entries, then over the blocks' totals.
    One scan along rows of 518 x 392 pixels runs a row per thread block, so a window's 8 rows
    kept 8 blocks of an H100 busy for 0.28 ms (int32; 0.31 ms int64: docs/performance.md
    section 15); blocks give every row hundreds of short scans. int32: a frame has far fewer
    than 2**31 pixels.
    """
    rows, size = selected.shape
    blocks = -(-size // _SCAN_BLOCK)
    padded = nnf.pad(selected.to(torch.int32), (0, blocks * _SCAN_BLOCK - size))
    within = torch.cumsum(padded.view(rows, blocks, _SCAN_BLOCK), dim=2, dtype=torch.int32)
    totals = within[:, :, -1]
    before = torch.cumsum(totals, dim=1, dtype=torch.int32) - totals  # [R,blocks]
    # Contiguous for the binary searches (a copy only where padding was cut off).
    return (within + before[:, :, None]).view(rows, -1)[:, :size].contiguous()


def thin_evenly(selected: torch.Tensor, limit: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep at most ``limit`` of each row's True entries, evenly spread and deterministic.

    Args:
        selected: [F,P] bool.
        limit: slots per row.

    Returns:
        index [F,L] int64 (position in the row of each kept entry, in order, 0 in unused
        slots; L = min(limit, P)), count [F] int64 and used [F,L] bool (slot < count).
        With n > limit entries, entry number ``round(j (n-1) / (L-1))`` goes to slot j
        (``numpy.linspace(0, n-1, L).round()``), else entry j. No host sync, no branch on
        the data.

    """
    rows, size = selected.shape
    slots = min(limit, size)
    running = running_count(selected)
    total = running[:, -1].long()
    # Slot j takes rank round(j * step) (rounding half-to-even, as numpy's); step 1 keeps all.
    step = torch.where(total > slots, (total - 1).double() / max(slots - 1, 1), 1.0)
    slot = torch.arange(slots, device=selected.device)
    taken = torch.round(slot * step[:, None]).int()
    count = torch.clamp(total, max=slots)
    used = slot < count[:, None]
    # The entry of rank r is the first position with more than r entries up to it.
    position = torch.searchsorted(running, taken, right=True)
    return torch.where(used, position, 0), count, used


def unproject(batch: FrameBatch, index: torch.Tensor, pixel: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera- and output-frame points [F,N,3] float64 of flat pixels ``index`` [F,N].

    Integer-index pixel convention (as VGGT's unprojection); depth times the frame's scale.
    ``pixel``: the indices' (col, row) [F or 1,N,2] float64 if the caller has them.
    """
    if pixel is None:
        width = batch.depth.shape[2]
        pixel = torch.stack([index % width, index // width], dim=2).double()
    z = batch.depth.flatten(1).gather(1, index).double() * batch.scale[:, None]
    k = batch.intrinsics
    focal = k.diagonal(dim1=1, dim2=2)[:, None, :2]  # [F,1,2] fx, fy
    xy = (pixel - k[:, None, :2, 2]) / focal * z[..., None]
    camera = torch.cat([xy, z[..., None]], dim=2)
    return camera, rigid_apply(batch.output_from_camera, camera)


def rigid_apply(transform: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply rigid transforms [F,4,4] to points [F,N,3].

    Broadcast products: torch's small batched float64 matmul is slow on the CPU.
    """
    rotated = (points[:, :, None, :] * transform[:, None, :3, :3]).sum(dim=3)
    return rotated + transform[:, None, :3, 3]


def colours(batch: FrameBatch, index: torch.Tensor) -> torch.Tensor:
    """[F,N,3] uint8 colours of flat pixels ``index`` [F,N] (grey without an image)."""
    images = batch.images.flatten(2)
    rgb = images.gather(2, index[:, None, :].expand(-1, 3, -1)).transpose(1, 2)
    rgb = torch.clamp(rgb * 255.0 + 0.5, 0.0, 255.0).to(torch.uint8)
    return torch.where(batch.has_image[:, None, None], rgb, 128)


def dynamic_points(batch: FrameBatch, config: DynamicPointsConfig) -> BatchPoints:
    """Points of each frame's confident dynamic pixels, at most ``max_points_per_frame``."""
    threshold = conf_thresholds(batch, config.min_conf, config.conf_percentile)
    trusted, scaled = depth_checks(batch, threshold)
    selected = batch.mask & (trusted & (scaled <= config.max_depth))
    index, count, used = thin_evenly(selected.flatten(1), config.max_points_per_frame)
    camera, output = unproject(batch, index)
    return BatchPoints(threshold, selected, index, count, used, camera, output,
                       colours(batch, index), trusted, scaled)
