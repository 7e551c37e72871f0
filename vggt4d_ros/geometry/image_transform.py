# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Camera pixels <-> network pixels: VGGT's preprocessing and its exact inverse.

VGGT takes images 518 pixels wide with a height that is a multiple of 14 ("crop" mode, the
VGGT4D default), or fitted into a 518x518 white canvas ("pad" mode). Both are an anisotropic
scale followed by an integer shift, so every mapping below is exact:

    x_net = x_cam * sx - offset_x        y_net = y_cam * sy - offset_y

in continuous pixel coordinates where a pixel's centre is at ``index + 0.5``. Positive offsets
crop the resized image, negative offsets pad it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from PIL import Image
import torch
import torch.nn.functional as F

Mode = Literal['crop', 'pad']

#: Largest accepted ratio of the longer camera side to the shorter one. Beyond it the
#: anisotropic resize is meaningless for VGGT and, in crop mode, the resized image before the
#: crop grows with the ratio (a 2000x2 frame would resize to 518000x518, 3.2 GB per frame);
#: refusing such frames bounds every intermediate of the resize at 8x the network image.
MAX_ASPECT_RATIO = 8.0


class ImageSizeError(ValueError):
    """A camera size the network input cannot be planned for (zero side, absurd aspect)."""


def check_camera_size(camera_hw: tuple[int, int],
                      max_aspect_ratio: float = MAX_ASPECT_RATIO) -> None:
    """Raise :class:`ImageSizeError` for a zero side or an aspect ratio above the limit."""
    height, width = int(camera_hw[0]), int(camera_hw[1])
    if height <= 0 or width <= 0:
        raise ImageSizeError(f'camera size must be positive, got {height}x{width} (HxW)')
    ratio = max(height, width) / min(height, width)
    if ratio > max_aspect_ratio:
        raise ImageSizeError(
            f'camera image {height}x{width} (HxW) has aspect ratio {ratio:.1f}, above the '
            f'limit {max_aspect_ratio:g}: not a camera frame VGGT can use')


@dataclass(frozen=True)
class ResizeCrop:
    """How one camera image maps into the network input.

    Attributes:
        camera_hw: (H, W) of the camera image.
        resized_hw: size after the resize, before any crop or pad.
        network_hw: (h, w) of the network input.
        offset_yx: top-left corner of the network window inside the resized image
            (negative values mean white padding before the image).
        mode: 'crop' or 'pad'.

    """

    camera_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    network_hw: tuple[int, int]
    offset_yx: tuple[int, int]
    mode: Mode = 'crop'

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Per-axis scale from camera to resized pixels (sx, sy)."""
        return (self.resized_hw[1] / self.camera_hw[1], self.resized_hw[0] / self.camera_hw[0])

    def camera_to_network_matrix(self) -> np.ndarray:
        """3x3 affine matrix taking homogeneous camera pixels to network pixels."""
        sx, sy = self.scale_xy
        return np.array(
            [[sx, 0.0, -self.offset_yx[1]], [0.0, sy, -self.offset_yx[0]], [0.0, 0.0, 1.0]]
        )


def plan_resize(
    camera_hw: tuple[int, int], mode: Mode = 'crop', target: int = 518, patch: int = 14
) -> ResizeCrop:
    """Plan VGGT's resize for a camera resolution.

    Crop mode: width becomes ``target``, height ``round(H * target / W / patch) * patch``, and a
    height above ``target`` is centre-cropped to ``target``. Pad mode: the longer side becomes
    ``target``, the other a multiple of ``patch``, centred in a ``target`` square.

    Args:
        camera_hw: (H, W) of the camera image.
        mode: 'crop' or 'pad'.
        target: network width (crop) or side length (pad).
        patch: patch size; network dimensions are multiples of it.

    Returns:
        The mapping description.

    Raises:
        ImageSizeError: a zero side, or an aspect ratio above ``MAX_ASPECT_RATIO``.

    """
    check_camera_size(camera_hw)
    height, width = int(camera_hw[0]), int(camera_hw[1])
    if mode == 'crop':
        new_w = target
        new_h = int(round(height * (target / width) / patch) * patch)
        new_h = max(new_h, patch)
        net_h = min(new_h, target)
        off_y = (new_h - net_h) // 2
        return ResizeCrop((height, width), (new_h, new_w), (net_h, new_w), (off_y, 0), 'crop')
    if mode == 'pad':
        if width >= height:
            new_w = target
            new_h = max(int(round(height * (target / width) / patch) * patch), patch)
        else:
            new_h = target
            new_w = max(int(round(width * (target / height) / patch) * patch), patch)
        off_y = -((target - new_h) // 2)
        off_x = -((target - new_w) // 2)
        return ResizeCrop((height, width), (new_h, new_w), (target, target), (off_y, off_x), 'pad')
    raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}")


def _resize_one(image: np.ndarray, plan: ResizeCrop) -> np.ndarray:
    """Antialiased bicubic resize, as PIL's BICUBIC does it (VGGT's loader uses PIL).

    The whole image is resized, then cropped by the caller: resizing only the visible rows
    (PIL's ``box``) differs from it by one grey level on ~0.1 % of pixels, and the aspect
    limit of :func:`plan_resize` already bounds the resized image at 8x the network image.
    """
    if image.shape[:2] == plan.resized_hw:
        return image
    pil = Image.fromarray(image)
    resized = pil.resize((plan.resized_hw[1], plan.resized_hw[0]), Image.Resampling.BICUBIC)
    return np.asarray(resized)


def _check_frames(images: Sequence[np.ndarray] | np.ndarray, plan: ResizeCrop) -> None:
    for index, image in enumerate(images):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'expected HxWx3 uint8 RGB, got {image.shape} {image.dtype}')
        if tuple(image.shape[:2]) != tuple(plan.camera_hw):
            raise ValueError(f'image {index} is {image.shape[:2]}, plan expects {plan.camera_hw}')


def _resize_on_device(images: Sequence[np.ndarray] | np.ndarray, plan: ResizeCrop,
                      device: torch.device) -> torch.Tensor:
    """PIL-equivalent antialiased bicubic resize on ``device``, [S,3,rh,rw] float in [0,1].

    PIL resizes horizontally, rounds to uint8, then resizes vertically and rounds again; torch's
    antialiased bicubic uses PIL's kernel (a = -0.5), so two rounded 1-D passes reproduce PIL to
    within 1-2 grey levels on about 0.1 % of pixels (test_geometry_image_transform).
    """
    batch = torch.from_numpy(np.stack([np.asarray(image) for image in images]))
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    height, width = plan.camera_hw
    rh, rw = plan.resized_hw
    if rw != width:
        x = F.interpolate(x, size=(height, rw), mode='bicubic', antialias=True,
                          align_corners=False).clamp_(0, 255).round_()
    if rh != height:
        x = F.interpolate(x, size=(rh, rw), mode='bicubic', antialias=True,
                          align_corners=False).clamp_(0, 255).round_()
    return x / 255.0


def to_network(images: Sequence[np.ndarray] | np.ndarray, plan: ResizeCrop,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Preprocess camera images into the network input.

    Args:
        images: S images, each HxWx3 uint8 RGB at ``plan.camera_hw`` (or an [S,H,W,3] array).
        plan: the mapping from :func:`plan_resize`.
        device: None or CPU: PIL's resize (bit-exact with VGGT's loader); another device
            (CUDA): the same resize computed there (within 1-2 grey levels of PIL), which takes
            the resize off the CPU.

    Returns:
        Tensor [S,3,h,w] float32 in [0,1] on ``device``; padded areas are white (1.0) as in VGGT.

    """
    _check_frames(images, plan)
    device = torch.device('cpu' if device is None else device)
    top, left = plan.offset_yx
    rh, rw = plan.resized_hw
    nh, nw = plan.network_hw
    # Rows/columns of the resized image that land inside the network window.
    src_y0, src_x0 = max(top, 0), max(left, 0)
    dst_y0, dst_x0 = max(-top, 0), max(-left, 0)
    copy_h = min(rh - src_y0, nh - dst_y0)
    copy_w = min(rw - src_x0, nw - dst_x0)
    out = torch.ones((len(images), 3, nh, nw), dtype=torch.float32, device=device)
    if device.type == 'cpu':
        resized = [torch.from_numpy(np.array(_resize_one(np.asarray(image), plan)))
                   .permute(2, 0, 1).float() / 255.0 for image in images]
        resized = torch.stack(resized)
    else:
        resized = _resize_on_device(images, plan, device)
    out[:, :, dst_y0:dst_y0 + copy_h, dst_x0:dst_x0 + copy_w] = \
        resized[:, :, src_y0:src_y0 + copy_h, src_x0:src_x0 + copy_w]
    return out


def intrinsics_to_camera(k_net: torch.Tensor | np.ndarray, plan: ResizeCrop):
    """Express network-pixel intrinsics [...,3,3] in camera pixels."""
    sx, sy = plan.scale_xy
    top, left = plan.offset_yx
    k_cam = k_net.clone() if isinstance(k_net, torch.Tensor) else np.array(k_net, copy=True)
    # Pixel centres map as x_net + 0.5 = (x_cam + 0.5) * sx - left.
    k_cam[..., 0, 0] = k_net[..., 0, 0] / sx
    k_cam[..., 1, 1] = k_net[..., 1, 1] / sy
    k_cam[..., 0, 2] = (k_net[..., 0, 2] + 0.5 + left) / sx - 0.5
    k_cam[..., 1, 2] = (k_net[..., 1, 2] + 0.5 + top) / sy - 0.5
    return k_cam


def intrinsics_to_network(k_cam: torch.Tensor | np.ndarray, plan: ResizeCrop):
    """Express camera-pixel intrinsics [...,3,3] in network pixels (inverse of the above)."""
    sx, sy = plan.scale_xy
    top, left = plan.offset_yx
    k_net = k_cam.clone() if isinstance(k_cam, torch.Tensor) else np.array(k_cam, copy=True)
    k_net[..., 0, 0] = k_cam[..., 0, 0] * sx
    k_net[..., 1, 1] = k_cam[..., 1, 1] * sy
    k_net[..., 0, 2] = (k_cam[..., 0, 2] + 0.5) * sx - left - 0.5
    k_net[..., 1, 2] = (k_cam[..., 1, 2] + 0.5) * sy - top - 0.5
    return k_net


def _sampling_grid(plan: ResizeCrop, device: torch.device) -> torch.Tensor:
    """Grid [1,H,W,2] in normalised network coordinates for every camera pixel centre."""
    height, width = plan.camera_hw
    sx, sy = plan.scale_xy
    top, left = plan.offset_yx
    nh, nw = plan.network_hw
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * sx - left
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * sy - top
    gx = xs / nw * 2.0 - 1.0
    gy = ys / nh * 2.0 - 1.0
    grid_y, grid_x = torch.meshgrid(gy, gx, indexing='ij')
    return torch.stack((grid_x, grid_y), dim=-1).unsqueeze(0)


def map_to_camera(
    values: torch.Tensor,
    plan: ResizeCrop,
    mode: Literal['nearest', 'bilinear'] = 'nearest',
    fill: float = 0.0,
) -> torch.Tensor:
    """Map network-resolution maps back to camera pixels.

    Args:
        values: [S,h,w] or [S,h,w,C] maps at ``plan.network_hw`` (bool, integer or float).
        plan: the mapping used to build the network input.
        mode: 'nearest' for masks and labels, 'bilinear' for smooth maps such as depth.
        fill: value for camera pixels that were cropped away (outside the network window).

    Returns:
        [S,H,W] or [S,H,W,C] at ``plan.camera_hw`` with the input dtype.

    """
    if tuple(values.shape[1:3]) != tuple(plan.network_hw):
        raise ValueError(f'values are {tuple(values.shape)}, plan expects {plan.network_hw}')
    squeeze = values.dim() == 3
    x = values.unsqueeze(-1) if squeeze else values
    dtype = x.dtype
    x = x.permute(0, 3, 1, 2).float()
    grid = _sampling_grid(plan, x.device).expand(x.shape[0], -1, -1, -1)
    # align_corners=False matches the +0.5 pixel-centre convention used above.
    out = F.grid_sample(x, grid, mode=mode, padding_mode='border', align_corners=False)
    inside = (grid.abs() <= 1.0).all(dim=-1).unsqueeze(1)
    out = torch.where(inside, out, torch.full_like(out, fill))
    out = out.permute(0, 2, 3, 1)
    if dtype == torch.bool:
        out = out > 0.5
    elif not dtype.is_floating_point:
        out = out.round().to(dtype)
    else:
        out = out.to(dtype)
    return out.squeeze(-1) if squeeze else out
