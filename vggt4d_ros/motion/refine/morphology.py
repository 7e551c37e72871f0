# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Binary morphology of masks on the device, exactly as OpenCV's (stage 3, step 6)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def ellipse_kernel(size: int, device: torch.device) -> torch.Tensor:
    """Return OpenCV's MORPH_ELLIPSE structuring element of a square size, [size,size] float."""
    radius = size // 2
    kernel = torch.zeros(size, size, device=device)
    if radius == 0:
        return kernel + 1
    inv_r2 = 1.0 / (radius * radius)
    for row in range(size):
        dy = row - radius
        half = 0
        if abs(dy) <= radius:
            half = int(round(radius * (max(0.0, 1.0 - dy * dy * inv_r2)) ** 0.5))
        low, high = max(radius - half, 0), min(radius + half + 1, size)
        kernel[row, low:high] = 1
    return kernel


Rectangle = tuple[int, int, int, int]  # kernel rows [top, bottom), columns [left, right)


def _rectangles(kernel: torch.Tensor) -> tuple[Rectangle, ...] | None:
    """Cover a binary [k,k] host kernel by a few rectangles, or None when that is not exact.

    Each row must be one run of ones. For the run of each row, the rectangle spans the
    contiguous rows around it whose runs contain it; for a convex shape such as the ellipse
    the union of these rectangles is the kernel (5x5 ellipse: 3x5 and 5x1).
    """
    key = tuple(tuple(bool(v) for v in row) for row in kernel.tolist())
    return _rectangles_of(key)


@functools.lru_cache(maxsize=64)
def _rectangles_of(kernel: tuple[tuple[bool, ...], ...]) -> tuple[Rectangle, ...] | None:
    """Compute :func:`_rectangles` of a kernel given as rows of booleans (cached)."""
    rows = torch.tensor(kernel, dtype=torch.bool)
    runs: list[tuple[int, int] | None] = []
    for row in rows:
        ones = torch.nonzero(row).flatten().tolist()
        if ones and ones[-1] - ones[0] + 1 != len(ones):
            return None  # a row with a gap
        runs.append((ones[0], ones[-1] + 1) if ones else None)
    rectangles: set[Rectangle] = set()
    for index, run in enumerate(runs):
        if run is None:
            continue
        top, bottom = index, index + 1
        while top > 0 and _contains(runs[top - 1], run):
            top -= 1
        while bottom < len(runs) and _contains(runs[bottom], run):
            bottom += 1
        rectangles.add((top, bottom, run[0], run[1]))
    cover = torch.zeros_like(rows)
    for top, bottom, left, right in rectangles:
        cover[top:bottom, left:right] = True
    return tuple(sorted(rectangles)) if torch.equal(cover, rows) else None


def _contains(outer: tuple[int, int] | None, inner: tuple[int, int]) -> bool:
    return outer is not None and outer[0] <= inner[0] and inner[1] <= outer[1]


def dilate(mask: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Binary dilation of [S,h,w] bool by a [k,k] (host) kernel anchored at k//2, outside False.

    As OpenCV: out(y,x) = any of mask(y + i - k//2, x + j - k//2) over the kernel's ones. A
    kernel made of a few rectangles runs as that many max-pools (exact on 0/1 values, and far
    cheaper than a convolution); any other kernel falls back to a convolution.
    """
    size = kernel.shape[0]
    anchor = size // 2
    height, width = mask.shape[-2:]
    # Padding with 0 = False; max-pool's own -inf padding is not needed.
    padded = F.pad(mask.float().unsqueeze(1), (anchor, size - 1 - anchor, anchor,
                                               size - 1 - anchor))
    rectangles = _rectangles(kernel)
    if rectangles is None:
        weight = kernel.float().to(mask.device).view(1, 1, size, size)
        hits = F.conv2d(padded, weight)
        return hits.squeeze(1) > 0.5
    out = None
    for top, bottom, left, right in rectangles:
        window = padded[..., top:top + height + bottom - top - 1,
                        left:left + width + right - left - 1]
        pooled = F.max_pool2d(window, (bottom - top, right - left), stride=1)
        out = pooled if out is None else torch.maximum(out, pooled)
    return out.squeeze(1) > 0.5


def erode(mask: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Binary erosion of [S,h,w] bool (outside the image = True, as OpenCV's default).

    All ones under the kernel = no zero under it: the complement of the dilation of ~mask
    (whose outside is then False, the dilation's padding).
    """
    return ~dilate(~mask, kernel)


def close_then_dilate(mask: torch.Tensor, close_kernel: int = 5,
                      dilate_kernel: int = 3) -> torch.Tensor:
    """Morphological closing (ellipse) then dilation (square), like the release's OpenCV calls.

    Args:
        mask: [S,h,w] bool.

    Returns:
        [S,h,w] bool.

    """
    # Kernels stay on the host: their rectangles are read there (no device sync).
    if close_kernel > 0:
        ellipse = ellipse_kernel(close_kernel, torch.device('cpu'))
        mask = erode(dilate(mask, ellipse), ellipse)
    if dilate_kernel > 0:
        mask = dilate(mask, torch.ones(dilate_kernel, dilate_kernel))
    return mask
