# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Statistical outlier removal (stage 3, step 2): kNN mean distances, Open3D's rule.

Two searches: 'exact' (brute force over the frame's points) and 'image' (kNN within a
(2r+1)^2 pixel window of the organised depth map). The image search runs eagerly (a library
sort / topk) or as one ``torch.compile``'d bitwise-selection kernel owned by a
:class:`CompiledKnn` the caller keeps (the pipeline holds one), so no state is process-wide.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
import torch.nn.functional as F

from vggt4d_ros.motion.refine.config import RefineConfig

LOG = logging.getLogger(__name__)


def mean_knn_distance_exact(points: torch.Tensor, valid: torch.Tensor, neighbours: int,
                            chunk: int = 4096) -> torch.Tensor:
    """Mean distance to the k nearest valid points (the point itself included), brute force.

    Args:
        points: [M,3]; valid: [M] bool.

    Returns:
        [M] float32, +inf for invalid points.

    """
    safe = torch.where(valid.unsqueeze(-1), points, torch.zeros_like(points))
    out = torch.full(valid.shape, float('inf'), device=points.device)
    count = int(neighbours)
    for start in range(0, points.shape[0], chunk):
        dist = torch.cdist(safe[start:start + chunk], safe)
        dist = dist.masked_fill(~valid.unsqueeze(0), float('inf'))
        take = min(count, dist.shape[1])
        nearest = dist.topk(take, dim=1, largest=False).values
        out[start:start + chunk] = nearest.mean(dim=1)
    return torch.where(valid, out, torch.full_like(out, float('inf')))


#: Bits of a non-negative float32 seen as int32: bit 31 (the sign) is 0, so the value is fixed
#: by bits 30..0, and for x >= 0 the int32 view is monotone in x (+inf = 0x7f800000 included).
_VALUE_BITS = 31


def mean_of_smallest(rows: torch.Tensor, count: int) -> torch.Tensor:
    """Mean of the ``count`` smallest values of each row, by exact selection (no sort).

    Finds the k-th smallest value t of every row on its IEEE bit pattern, one bit at a time
    from the most significant (31 steps of compare + count: t is the largest pattern with
    fewer than k values below it), then mean = (sum of values < t + (k - #values < t) * t) / k:
    the multiset of k values a sort would take, so equal up to summation order. Only
    element-wise ops and row reductions, so torch.compile can keep each row in registers for
    all steps (one persistent reduction). A row with fewer than k finite values gives +inf,
    as the mean of the sorted prefix would.

    Args:
        rows: [...,L] float32, >= 0 or +inf (NaN counts as +inf).
        count: k, 1 <= k <= L.

    Returns:
        [...] float32.

    """
    if rows.dtype != torch.float32:
        raise TypeError(f'mean_of_smallest selects on float32 bit patterns, got {rows.dtype}')
    rows = torch.where(torch.isnan(rows), torch.full_like(rows, float('inf')), rows)
    bits = rows.view(torch.int32)
    # Invariant: fewer than k values lie below kth_bits (true for 0); bits are set greedily.
    kth_bits = torch.zeros(rows.shape[:-1] + (1,), dtype=torch.int32, device=rows.device)
    for bit in reversed(range(_VALUE_BITS)):
        candidate = kth_bits + (1 << bit)  # the bit is still clear: + is |
        few_below = (bits < candidate).sum(-1, keepdim=True) < count
        kth_bits = torch.where(few_below, candidate, kth_bits)
    kth = kth_bits.view(torch.float32)  # [...,1]
    below = bits < kth_bits
    below_sum = torch.where(below, rows, torch.zeros_like(rows)).sum(-1, keepdim=True)
    # count - #below >= 1 copies of t complete the k smallest (t = inf: too few finite).
    ties = count - below.sum(-1, keepdim=True)
    return ((below_sum + ties * kth) / count).squeeze(-1)


def _safe_points(points: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """[S,h,w,3] points -> [S,3,h,w] with invalid points at the origin (no NaN downstream)."""
    return torch.where(valid.unsqueeze(-1), points, torch.zeros_like(points)).permute(0, 3, 1, 2)


def window_distances(points: torch.Tensor, valid: torch.Tensor, radius: int) -> torch.Tensor:
    """Distances from each pixel's point to the points of its (2r+1)^2 window, as views.

    ``Tensor.unfold`` makes the windows a strided view of the padded points, so under
    torch.compile every window value is an affine load in the consuming kernel (no im2col
    buffer, no index tensor).

    Args:
        points: [S,h,w,3]; valid: [S,h,w] bool.

    Returns:
        [S,h*w,(2r+1)^2] (points' dtype), +inf where the neighbour is invalid or off the image.

    """
    frames, height, width = valid.shape
    size = 2 * radius + 1
    safe = _safe_points(points, valid)
    padded = F.pad(safe, (radius, radius, radius, radius))
    padded_valid = F.pad(valid, (radius, radius, radius, radius))
    # [S,3,h,w,size,size] and [S,h,w,size,size]: window (dy, dx) of every pixel.
    windows = padded.unfold(2, size, 1).unfold(3, size, 1)
    windows_ok = padded_valid.unfold(1, size, 1).unfold(2, size, 1)
    offsets = windows - safe.unsqueeze(-1).unsqueeze(-1)
    squared = offsets[:, 0] * offsets[:, 0] + offsets[:, 1] * offsets[:, 1] \
        + offsets[:, 2] * offsets[:, 2]
    dist = torch.where(windows_ok, squared.sqrt(), torch.full_like(squared, float('inf')))
    return dist.reshape(frames, height * width, size * size)


def window_distances_shifted(points: torch.Tensor, valid: torch.Tensor,
                             radius: int) -> torch.Tensor:
    """Compute the distances of :func:`window_distances` one window offset at a time.

    Shifted slices of the padded points: a few light kernels per offset and no [S,3,L,h*w]
    intermediate (3x less memory than im2col, ~4x faster on the CPU).

    Args:
        points: [S,h,w,3]; valid: [S,h,w] bool.

    Returns:
        [S,(2r+1)^2,h,w] (points' dtype), +inf where the neighbour is invalid or off the image.

    """
    frames, height, width = valid.shape
    size = 2 * radius + 1
    safe = _safe_points(points, valid)
    padded = F.pad(safe, (radius, radius, radius, radius))
    padded_valid = F.pad(valid, (radius, radius, radius, radius))
    dist = torch.empty(frames, size * size, height, width, device=points.device,
                       dtype=points.dtype)
    for index in range(size * size):
        row, col = divmod(index, size)
        offsets = padded[:, :, row:row + height, col:col + width] - safe
        torch.sqrt((offsets * offsets).sum(1), out=dist[:, index])
        outside = ~padded_valid[:, row:row + height, col:col + width]
        dist[:, index].masked_fill_(outside, float('inf'))
    return dist


def mean_knn_distance_fused(points: torch.Tensor, valid: torch.Tensor, neighbours: int,
                            radius: int) -> torch.Tensor:
    """Image-window kNN mean distance by bitwise selection, the torch.compile target.

    Args:
        points: [S,h,w,3]; valid: [S,h,w] bool.

    Returns:
        [S,h,w] float32 (see :func:`mean_knn_distance_image`).

    """
    dist = window_distances(points, valid, radius)
    take = min(neighbours, dist.shape[-1])
    out = mean_of_smallest(dist, take).view(valid.shape)
    return torch.where(valid, out, torch.full_like(out, float('inf')))


def mean_knn_distance_eager(points: torch.Tensor, valid: torch.Tensor, neighbours: int,
                            radius: int, few_kernels: bool | None = None) -> torch.Tensor:
    """Image-window kNN mean distance without torch.compile, [S,h,w].

    Uncompiled, the 31 selection steps would cost ~4 kernels each, so the selection is a
    library one. On the CPU (``few_kernels`` False): shifted slices (4x faster than im2col,
    a third of its memory) and an unsorted topk (2x faster than a sort). On CUDA (True, the
    fallback when compilation is off or failed) launches dominate: strided window views in
    a few large kernels and one batched sort of the short rows (topk runs one block per row).

    Args:
        points: [S,h,w,3]; valid: [S,h,w] bool.
        few_kernels: None = ``points.is_cuda``.

    """
    if few_kernels is None:
        few_kernels = points.is_cuda
    frames = valid.shape[0]
    if few_kernels:
        rows = window_distances(points, valid, radius)  # [S,h*w,L]
    else:
        dist = window_distances_shifted(points, valid, radius)  # [S,L,h,w]
        rows = dist.flatten(2).transpose(1, 2).contiguous()  # [S,h*w,L]
    take = min(neighbours, rows.shape[-1])
    if few_kernels:
        nearest = rows.sort(dim=-1).values[..., :take]
    else:
        nearest = rows.topk(take, dim=-1, largest=False, sorted=False).values
    out = nearest.mean(-1).view(frames, *valid.shape[1:])
    return torch.where(valid, out, torch.full_like(out, float('inf')))


class CompiledKnn:
    """``torch.compile(mean_knn_distance_fused)``, built on first use; eager if that fails.

    One instance per owner (the pipeline keeps one for its lifetime, so the kernel compiles
    once): a failure falls back to the eager search for that owner only, nothing is global.
    """

    def __init__(self) -> None:
        self.fn: Callable[..., torch.Tensor] | None = None
        self.failed = False

    def __call__(self, points: torch.Tensor, valid: torch.Tensor, neighbours: int,
                 radius: int) -> torch.Tensor:
        if self.failed:
            return mean_knn_distance_eager(points, valid, neighbours, radius)
        if self.fn is None:
            self.fn = torch.compile(mean_knn_distance_fused, dynamic=False)
        try:
            return self.fn(points, valid, neighbours, radius)
        except torch.cuda.OutOfMemoryError:
            raise  # not a compiler problem: the pipeline's retry handles it
        except Exception as error:  # noqa: B902 (any backend failure: stay correct, eagerly)
            LOG.warning('torch.compile of the kNN search failed (%s); running eagerly', error)
            self.failed = True
            return mean_knn_distance_eager(points, valid, neighbours, radius)


def mean_knn_distance_image(points: torch.Tensor, valid: torch.Tensor, neighbours: int,
                            radius: int, search: CompiledKnn | None = None) -> torch.Tensor:
    """Mean distance to the k nearest valid points within a (2r+1)^2 pixel window.

    Args:
        points: [S,h,w,3]; valid: [S,h,w] bool.
        search: the torch.compile'd selection kernel to run (float32 points only, other
            dtypes run eagerly); None = the eager search.

    Returns:
        [S,h,w] float32, +inf for invalid points and where fewer than k neighbours exist.

    """
    if search is not None and points.dtype == torch.float32:
        return search(points, valid, neighbours, radius)
    return mean_knn_distance_eager(points, valid, neighbours, radius)


def statistical_inliers(points: torch.Tensor, valid: torch.Tensor,
                        config: RefineConfig = RefineConfig(), frame_chunk: int = 2,
                        search: CompiledKnn | None = None) -> torch.Tensor:
    """Open3D-style statistical outlier removal, per frame.

    A point is an inlier when its mean distance to its k nearest neighbours (itself included)
    is > 0 and < mean + ratio * std of those means over the frame (Bessel-corrected std,
    points with a zero mean excluded from the statistics as in Open3D).

    Args:
        points: [S,h,w,3]; valid: [S,h,w] bool (finite, positive depth).
        frame_chunk: frames per batch of the 'image' search, which bounds its buffers (per
            2 frames at 392x518, r=4: eager on CUDA ~400 MB of window offsets, on the CPU
            ~130 MB of distances; compiled, at most the ~130 MB of distances).
        search: the compiled 'image' search to use when ``config.compile_search`` and the
            points are on CUDA; None = a new one for this call (it compiles on first use:
            callers that run many windows pass one they keep).

    Returns:
        [S,h,w] bool.

    """
    frames = points.shape[0]
    if config.neighbour_search == 'exact':
        mean_dist = torch.stack([
            mean_knn_distance_exact(points[f].reshape(-1, 3), valid[f].reshape(-1),
                                    config.sor_neighbours).view(valid.shape[1:])
            for f in range(frames)])
    else:
        if not (config.compile_search and points.is_cuda):
            search = None
        elif search is None:
            search = CompiledKnn()
        mean_dist = torch.cat([
            mean_knn_distance_image(points[f:f + frame_chunk], valid[f:f + frame_chunk],
                                    config.sor_neighbours, config.image_radius, search)
            for f in range(0, frames, frame_chunk)])
    # A point whose finite neighbours are fewer than k sees an inf in the mean: outlier.
    counted = torch.isfinite(mean_dist) & (mean_dist > 0)
    flat = mean_dist.reshape(frames, -1)
    flat_counted = counted.reshape(frames, -1)
    num = flat_counted.sum(1).float()
    values = torch.where(flat_counted, flat, torch.zeros_like(flat))
    mean = values.sum(1) / num.clamp_min(1)
    centred = flat - mean.unsqueeze(1)
    var = torch.where(flat_counted, centred * centred, torch.zeros_like(flat)).sum(1)
    std = (var / (num - 1).clamp_min(1)).sqrt()
    limit = (mean + config.sor_std_ratio * std).view(frames, 1, 1)
    return counted & (mean_dist < limit)
