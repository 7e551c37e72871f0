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
    """F frames of one shape h x w on one device (device data only: a CUDA graph's inputs).

    Attributes:
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
        steps_ns: [F] int64 stamp of each frame's time step (``FrameObservation.step_ns``).
        small: [29 F] float64, the one upload the small per-frame values are views of.

    The per-pixel tensors may be views of the window's tensors: the stages only read them.
    """

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
    steps_ns: torch.Tensor
    small: torch.Tensor

    @property
    def device(self) -> torch.device:
        """Device of the batch's tensors."""
        return self.depth.device

    def __len__(self) -> int:
        return self.depth.shape[0]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """Return the tensors the batch is made of (``batch_from_tensors`` rebuilds it).

        (depth, conf, mask, valid, images, small): what a CUDA graph of the pixel stages
        copies in per window.
        """
        return self.depth, self.conf, self.mask, self.valid, self.images, self.small


def stack_frames(frames: list[FrameObservation], output_from_world: np.ndarray) -> FrameBatch:
    """Stack observations of one shape (and device) into a batch."""
    return batch_from_tensors(*stack_tensors(frames, output_from_world))


def stack_tensors(frames: list[FrameObservation], output_from_world: np.ndarray
                  ) -> tuple[torch.Tensor, ...]:
    """Return ``FrameBatch.tensors()`` of the observations' batch (``batch_from_tensors``).

    Frames that are consecutive slices of one window tensor (what ``observations_from_window``
    gives) are viewed, not copied; the small per-frame values go up in one non-blocking copy.
    """
    device = frames[0].depth.device
    shape = tuple(frames[0].depth.shape)
    if any(tuple(f.depth.shape) != shape or f.depth.device != device for f in frames):
        raise ValueError('a batch needs frames of one shape on one device')
    transforms = np.stack([output_from_world @ f.world_from_camera for f in frames])
    # One upload for every small per-frame value (the stamps' int64 bits ride along).
    small = upload(np.concatenate([
        np.array([f.depth_scale for f in frames], np.float64),
        np.stack([f.intrinsics for f in frames]).ravel(), transforms.ravel(),
        np.array([f.conf is not None for f in frames], np.float64),
        np.array([f.image is not None for f in frames], np.float64),
        np.array([f.step_ns for f in frames], np.int64).view(np.float64)]), device)
    return (stack([f.depth for f in frames]),
            stack([f.conf for f in frames],
                  lambda: torch.full(shape, float('inf'), device=device)),
            stack([f.mask for f in frames]),
            stack([f.valid for f in frames],
                  lambda: torch.ones(shape, dtype=torch.bool, device=device)),
            stack([None if f.image is None else torch.as_tensor(f.image, device=device)
                   for f in frames], lambda: torch.zeros((3,) + shape, device=device),
                  torch.float32),
            small)


def batch_from_tensors(depth: torch.Tensor, conf: torch.Tensor, mask: torch.Tensor,
                       valid: torch.Tensor, images: torch.Tensor, small: torch.Tensor
                       ) -> FrameBatch:
    """Rebuild a batch from ``FrameBatch.tensors()`` (views of ``small``, one compare)."""
    count = depth.shape[0]
    flags = small[26 * count: 28 * count] > 0.5
    return FrameBatch(
        depth=depth, conf=conf, has_conf=flags[:count], mask=mask, valid=valid,
        scale=small[:count],
        intrinsics=small[count: 10 * count].view(count, 3, 3),
        output_from_camera=small[10 * count: 26 * count].view(count, 4, 4),
        images=images, has_image=flags[count:],
        steps_ns=small[28 * count:].view(torch.int64), small=small)


def upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Copy a host array to ``device`` without waiting for the device's queue.

    A copy from pageable memory waits for the stream on CUDA; a pinned staging copy
    (PyTorch's caching host allocator keeps it alive until the copy is done) does not.
    """
    tensor = torch.from_numpy(array)
    if device.type == 'cuda':
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def stack(tensors: list[torch.Tensor | None], default=None,
          dtype: torch.dtype | None = None) -> torch.Tensor:
    """[F,...] from F tensors of one shape; None entries take ``default()`` (made once).

    A view, no copy, when the tensors are equally spaced slices of one storage (the frames
    of one window tensor, or one tensor repeated).
    """
    if any(t is None for t in tensors):
        fill = default()
        tensors = [fill if t is None else t for t in tensors]
    if dtype is not None:
        tensors = [t if t.dtype == dtype else t.to(dtype) for t in tensors]
    view = _as_one_view(tensors)
    return torch.stack(tensors) if view is None else view


def _as_one_view(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """Return the [F,...] view whose slices are ``tensors`` (None: they are not such slices)."""
    first = tensors[0]
    if len(tensors) == 1:
        return first[None]
    step = tensors[1].storage_offset() - first.storage_offset()
    storage = first.untyped_storage().data_ptr()
    for k, t in enumerate(tensors):
        if (t.untyped_storage().data_ptr() != storage or t.stride() != first.stride()
                or t.shape != first.shape or t.dtype != first.dtype
                or t.storage_offset() != first.storage_offset() + k * step or step < 0):
            return None
    return first.as_strided((len(tensors),) + tuple(first.shape), (step,) + first.stride(),
                            first.storage_offset())
