# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""FrameObservation: what perception needs of one processed frame, and how to get it.

The engine calls :func:`observations_from_window` once per window with the window's
``WindowResult`` and ``MapUpdate``: one observation per NEW frame (overlap frames were
observed in the previous window), in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import ResizeCrop
from vggt4d_ros.mapping.mapper import MapUpdate
from vggt4d_ros.motion.result import WindowResult


@dataclass
class FrameObservation:
    """One frame at network resolution h x w, placed in the engine's global frame.

    Attributes:
        stamp_ns: image stamp.
        depth: [h,w] float32 z-depth in the WINDOW's units (0 or non-finite = invalid).
        depth_scale: global map units per window unit (the window's Sim(3) scale).
        conf: [h,w] float32 depth confidence, or None (all pixels trusted).
        intrinsics: [3,3] pinhole intrinsics in network pixels.
        world_from_camera: [4,4] camera-to-global pose (rigid, global units).
        mask: [h,w] bool, True = dynamic.
        image: [3,h,w] float RGB in [0,1] (as in ``WindowResult.images``; only the dynamic
            pixels are read), or None (grey).
        segment: map segment; a change means a new global frame (perception resets).
        valid: [h,w] bool pixels that show the camera image (False on pad borders), or None.
        view: camera of a multi-camera rig (0: the reference camera, or the only one).
        step_ns: stamp of the rig step the frame belongs to (the reference camera's stamp
            at that step; perception treats all views of a step as one time step); None:
            the frame's own stamp (one camera).

    The per-pixel arrays are torch tensors on the device the window ran on (perception runs
    there); numpy arrays given here are wrapped as CPU tensors (no copy).
    """

    stamp_ns: int
    depth: torch.Tensor
    depth_scale: float
    conf: torch.Tensor | None
    intrinsics: np.ndarray
    world_from_camera: np.ndarray
    mask: torch.Tensor
    image: np.ndarray | torch.Tensor | None = None
    segment: int = 0
    valid: torch.Tensor | None = None
    view: int = 0
    step_ns: int | None = None

    def __post_init__(self) -> None:
        if self.step_ns is None:
            self.step_ns = self.stamp_ns
        self.depth = torch.as_tensor(self.depth, dtype=torch.float32)
        self.mask = torch.as_tensor(self.mask, dtype=torch.bool, device=self.depth.device)
        if self.conf is not None:
            self.conf = torch.as_tensor(self.conf, dtype=torch.float32, device=self.depth.device)
        if self.valid is not None:
            self.valid = torch.as_tensor(self.valid, dtype=torch.bool, device=self.depth.device)
        self.intrinsics = np.asarray(self.intrinsics, dtype=np.float64)
        self.world_from_camera = np.asarray(self.world_from_camera, dtype=np.float64)
        shape = tuple(self.depth.shape)
        if len(shape) != 2 or tuple(self.mask.shape) != shape:
            raise ValueError(f'depth {shape} and mask {self.mask.shape} must both be [h,w]')
        if self.conf is not None and tuple(self.conf.shape) != shape:
            raise ValueError(f'conf {self.conf.shape} does not match depth {shape}')
        if self.image is not None and tuple(self.image.shape) != (3,) + shape:
            raise ValueError(f'image {self.image.shape} is not [3,{shape[0]},{shape[1]}]')
        if np.shape(self.intrinsics) != (3, 3) or np.shape(self.world_from_camera) != (4, 4):
            raise ValueError('intrinsics must be 3x3 and world_from_camera 4x4')
        if not (np.isfinite(self.depth_scale) and self.depth_scale > 0):
            raise ValueError(f'depth_scale must be finite and > 0, got {self.depth_scale}')


def observations_from_window(result: WindowResult, update: MapUpdate) -> list[FrameObservation]:
    """Observations of a window's new frames (``update.new_indices``), in window order.

    A rig window (``result.layout``, step-major) gives each frame its camera (``view``) and
    its step's stamp (``step_ns``: the reference camera's stamp at that step; the window's
    new frames are whole steps, so that frame is in the window). Nothing is copied: depth,
    confidence, masks and images stay on the window's device (perception runs there). Masks
    are the refined masks.
    """
    indices = list(update.new_indices)
    if not indices:
        return []
    take = _frames(indices)
    with torch.no_grad():
        depth = result.depth[take].float()
        conf = result.depth_conf[take].float()
        masks = result.refined_masks[take].bool()
        intrinsics = result.intrinsics[take].double().cpu().numpy()  # [S,3,3]: tiny
    valid = _inside_image(result.transform, depth.device)
    scale = float(update.window_to_global.scale)
    layout = result.layout
    views = layout.view_of_frame
    step_ns = [int(result.stamps_ns[layout.frame(step, 0)]) for step in layout.step_of_frame]
    return [
        FrameObservation(
            stamp_ns=int(update.stamps_ns[k]),
            depth=depth[k],
            depth_scale=scale,
            conf=conf[k],
            intrinsics=intrinsics[k],
            world_from_camera=np.asarray(update.poses[k], dtype=np.float64),
            mask=masks[k],
            image=result.images[i],
            segment=int(update.segment),
            valid=valid,
            view=views[i],
            step_ns=step_ns[i],
        )
        for k, i in enumerate(indices)
    ]


def _frames(indices: list[int]) -> slice | list[int]:
    """Index of the new frames: a slice (a view: no index upload) when they are consecutive."""
    if indices == list(range(indices[0], indices[-1] + 1)):
        return slice(indices[0], indices[-1] + 1)
    return indices


def _inside_image(plan: ResizeCrop, device: torch.device) -> torch.Tensor:
    """[h,w] bool: network pixels that show camera content (not pad-mode borders).

    One upload per transform and device: the plan is fixed per camera configuration.
    """
    return _inside_image_cached(tuple(plan.network_hw), tuple(plan.offset_yx),
                                tuple(plan.resized_hw), device)


@functools.lru_cache(maxsize=8)
def _inside_image_cached(network_hw: tuple[int, int], offset_yx: tuple[int, int],
                         resized_hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    height, width = network_hw
    top, left = offset_yx
    rows = np.arange(height) + top
    cols = np.arange(width) + left
    row_ok = (rows >= 0) & (rows < resized_hw[0])
    col_ok = (cols >= 0) & (cols < resized_hw[1])
    return torch.from_numpy(row_ok[:, None] & col_ok[None, :]).to(device)
