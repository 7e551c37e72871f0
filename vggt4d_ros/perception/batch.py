# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""FrameBatch: the frames of one window stacked on their device, for the batched stages.

Perception's pixel work (points, instances, grid rays) runs as torch ops on the device where
the window's tensors are, over all new frames of a window at once (a few hundred kernel
launches per window instead of per frame). Small per-frame matrices go up once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vggt4d_ros.perception.observation import FrameObservation


@dataclass
class FrameBatch:
    """F frames of one shape h x w on one device.

    Attributes:
        frames: the observations (host-side fields: stamps, segment).
        depth: [F,h,w] float32 window-unit depth.
        conf: [F,h,w] float32 confidence (+inf where a frame has none: always trusted).
        has_conf: [F] bool.
        mask: [F,h,w] bool dynamic.
        valid: [F,h,w] bool pixels inside the camera image.
        scale: [F] float64 global units per window unit.
        intrinsics: [F,3,3] float64.
        output_from_camera: [F,4,4] float64 (output_from_world @ world_from_camera).
        images: [F,3,h,w] float32 RGB in [0,1] (zeros where a frame has none).
        has_image: [F] bool.

    """

    frames: list[FrameObservation]
    depth: torch.Tensor
    conf: torch.Tensor
    has_conf: torch.Tensor
    mask: torch.Tensor
    valid: torch.Tensor
    scale: torch.Tensor
    intrinsics: torch.Tensor
    output_from_camera: torch.Tensor
    images: torch.Tensor
    has_image: torch.Tensor

    @property
    def device(self) -> torch.device:
        """Device of the batch's tensors."""
        return self.depth.device

    def __len__(self) -> int:
        return len(self.frames)


def stack_frames(frames: list[FrameObservation], output_from_world: np.ndarray) -> FrameBatch:
    """Stack observations of one shape (and device) into a batch."""
    device = frames[0].depth.device
    shape = tuple(frames[0].depth.shape)
    if any(tuple(f.depth.shape) != shape or f.depth.device != device for f in frames):
        raise ValueError('a batch needs frames of one shape on one device')
    ones = torch.ones(shape, dtype=torch.bool, device=device)
    inf = torch.full(shape, float('inf'), device=device)
    zeros = torch.zeros((3,) + shape, device=device)
    transforms = np.stack([output_from_world @ f.world_from_camera for f in frames])
    count = len(frames)
    # One upload for every small per-frame value.
    small = torch.from_numpy(np.concatenate([
        np.array([f.depth_scale for f in frames], np.float64),
        np.stack([f.intrinsics for f in frames]).ravel(), transforms.ravel(),
        np.array([f.conf is not None for f in frames], np.float64),
        np.array([f.image is not None for f in frames], np.float64)])).to(device)
    flags = small[26 * count:] > 0.5
    return FrameBatch(
        frames=list(frames),
        depth=torch.stack([f.depth for f in frames]),
        conf=torch.stack([inf if f.conf is None else f.conf for f in frames]),
        has_conf=flags[:count],
        mask=torch.stack([f.mask for f in frames]),
        valid=torch.stack([ones if f.valid is None else f.valid for f in frames]),
        scale=small[:count],
        intrinsics=small[count: 10 * count].view(count, 3, 3),
        output_from_camera=small[10 * count: 26 * count].view(count, 4, 4),
        images=torch.stack([zeros if f.image is None else torch.as_tensor(f.image).to(
            device=device, dtype=torch.float32) for f in frames]),
        has_image=flags[count:],
    )
