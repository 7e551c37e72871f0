# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""WindowResult: the one contract between motion/ and everything above it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import intrinsics_to_camera
from vggt4d_ros.geometry.image_transform import map_to_camera
from vggt4d_ros.geometry.image_transform import ResizeCrop
from vggt4d_ros.geometry.rigid import cam_to_world_from_extrinsics
from vggt4d_ros.motion.rig import RigLayout


@dataclass
class WindowResult:
    """Everything the method produced for one window of S frames.

    Network resolution is h x w (``transform.network_hw``); patches are hp x wp = h/14 x w/14.
    World is the camera of the window's frame 0 (OpenCV axes), in VGGT's scale-free units.
    A multi-camera window holds T steps x N views in step-major order (``layout``): frame
    f = step * N + view, so frame 0 is the reference camera (view 0) at the oldest step; every
    per-frame field (stamps, masks, poses, ...) belongs to that frame's own camera.

    Attributes:
        stamps_ns: source image stamps, S ints (nanoseconds).
        images: [S,3,h,w] float in [0,1], network-resolution RGB.
        depth: [S,h,w] float32, pass-1 depth.
        depth_conf: [S,h,w] float32, pass-1 confidence (>= 1).
        intrinsics: [S,3,3] float32, pass-1, network pixels.
        extrinsics: [S,3,4] float32, pass-2 camera-from-world.
        saliency: [S,hp,wp] float32, dynamic saliency D in [0,1].
        coarse_masks: [S,h,w] bool, True = dynamic.
        refined_masks: [S,h,w] bool, True = dynamic.
        transform: the camera <-> network pixel mapping (the same for every view).
        timings: seconds per stage.
        layout: views x steps of the S frames; None on input = one camera, S steps.

    """

    stamps_ns: list[int]
    images: torch.Tensor
    depth: torch.Tensor
    depth_conf: torch.Tensor
    intrinsics: torch.Tensor
    extrinsics: torch.Tensor
    saliency: torch.Tensor
    coarse_masks: torch.Tensor
    refined_masks: torch.Tensor
    transform: ResizeCrop
    timings: dict[str, float] = field(default_factory=dict)
    layout: RigLayout | None = None

    def __post_init__(self) -> None:
        count = len(self.stamps_ns)
        if self.layout is None:
            self.layout = RigLayout.single(count)
        self.layout.check(count)
        height, width = self.transform.network_hw
        expected = {
            'images': (count, 3, height, width),
            'depth': (count, height, width),
            'depth_conf': (count, height, width),
            'intrinsics': (count, 3, 3),
            'extrinsics': (count, 3, 4),
            'coarse_masks': (count, height, width),
            'refined_masks': (count, height, width),
        }
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if actual != shape:
                raise ValueError(f'WindowResult.{name} has shape {actual}, expected {shape}')
        if self.saliency.shape[0] != count:
            raise ValueError(f'WindowResult.saliency has {self.saliency.shape[0]} frames')

    @property
    def num_frames(self) -> int:
        return len(self.stamps_ns)

    @property
    def num_views(self) -> int:
        """N cameras in the window (1 for a single camera)."""
        return self.layout.num_views

    @property
    def view_index(self) -> list[int]:
        """Camera (view) index of every frame, S ints."""
        return self.layout.view_of_frame

    @property
    def step_index(self) -> list[int]:
        """Time-step index of every frame, S ints."""
        return self.layout.step_of_frame

    def cam_to_world(self) -> torch.Tensor:
        """World-from-camera poses [S,4,4] (inverse of the extrinsics)."""
        return cam_to_world_from_extrinsics(self.extrinsics)

    def to(self, device: torch.device | str) -> 'WindowResult':
        """Copy with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)

    def masks_at_camera(self, refined: bool = True) -> np.ndarray:
        """Dynamic masks at camera resolution, [S,H,W] uint8 with 0 or 255."""
        masks = self.refined_masks if refined else self.coarse_masks
        camera = map_to_camera(masks.cpu(), self.transform, mode='nearest', fill=0)
        return camera.numpy().astype(np.uint8) * 255

    def intrinsics_at_camera(self) -> torch.Tensor:
        """Pass-1 intrinsics [S,3,3] expressed in camera pixels."""
        return intrinsics_to_camera(self.intrinsics, self.transform)
