# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Mask refinement (VGGT4D stage 3), vectorised over frames, clusters and views.

Release behaviour ('cluster' mode), per frame i:

1. back-project every pixel with pass-1 depth and intrinsics and pass-2 camera-to-world
   (pixel centres at +0.5);
2. statistical outlier removal (20 neighbours, std ratio 2.5, as Open3D);
3. 3D k-means (30 clusters) of the inlier points inside the coarse mask (the candidates);
4. project each candidate into every other frame j; keep the correspondence when it lies in
   the image with z > 0, is not occluded (z - 0.01 < d_j) and lands on a coarse-static pixel;
   sample d_j (nearest), the coarse mask (bilinear > 0.5) and RGB (bilinear) with the
   release's normalisation (x / (W-1), align_corners=True);
5. a cluster is dynamic when fewer than 5 % of its (S-1)*|c| correspondences are kept, or when
   mean|z - d_j| + mean(sum_rgb |I_i - I_j|) / 3 > 0.1;
6. refined mask = union of dynamic clusters, closed with a 5x5 ellipse, dilated 3x3.

Steps 2 and 3 see only distances between the points of one frame, which the rigid pass-2
camera-to-world motion preserves, so they run on camera-frame points without the poses
(:func:`prepare_refinement`) and only steps 4-6 need the poses (:func:`finish_refinement`).
:func:`refine_masks` runs both.

'gradient' mode (an option, not in the release) scores each candidate pixel on its own with a
first-order, projection-gradient-normalised depth residual |r_j| / ||dr_j/dX|| (see
docs/method.md) plus the same photometric term, then thresholds per pixel; pixels without
enough kept views inherit their cluster's decision.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import logging
from typing import Callable, Literal

import torch
import torch.nn.functional as F

from vggt4d_ros.geometry.unproject import camera_points
from vggt4d_ros.geometry.unproject import PIXEL_CENTRE
from vggt4d_ros.geometry.unproject import points_to_world
from vggt4d_ros.motion.kmeans import kmeans
from vggt4d_ros.motion.kmeans import KMeansConfig

LOG = logging.getLogger(__name__)

RefineMode = Literal['cluster', 'gradient']
NeighbourSearch = Literal['image', 'exact']


@dataclass(frozen=True)
class RefineConfig:
    """Stage-3 settings (release defaults).

    Attributes:
        mode: 'cluster' (release) or 'gradient' (per-pixel projection-gradient score).
        sor_neighbours: neighbours of the statistical outlier removal (the point included,
            as Open3D's KNN search returns the query point itself).
        sor_std_ratio: keep points whose mean neighbour distance < mean + ratio * std.
        neighbour_search: 'exact' = brute-force kNN over all points of the frame (chunked);
            'image' = kNN restricted to a (2r+1)^2 pixel window (organised depth maps keep
            3D neighbours close in the image; far faster, see docs/method.md).
        image_radius: r of the 'image' search.
        compile_search: on CUDA, run the 'image' search through torch.compile (one fused
            selection kernel instead of a sort; compiles once, a few seconds, on first use).
        clusters: 3D k-means clusters per frame.
        compile_kmeans: in the pipeline on CUDA, run the 3D k-means' steps through
            ``torch.compile`` with dynamic shapes (one compilation for every candidate count;
            the Lloyd step then never stores the [S,C,k] membership). The pipeline turns it on
            with ``compile_model``. Same algorithm, possibly other fp32 rounding.
        kmeans_iterations: Lloyd iterations.
        seed: k-means++ seed.
        occlusion_margin: z - margin < d_j counts as visible (normalised depth units).
        min_valid_ratio: below this kept / ((S-1)*|c|) the cluster is dynamic.
        threshold: score above which a cluster (pixel) is dynamic.
        consistent_pixel_centres: sample frame j at (x - 0.5, y - 0.5) so projection and
            back-projection use the same pixel-centre convention (release: False).
        gradient_floor: lower bound of ||dr/dX|| in 'gradient' mode (the e_z term alone has
            norm 1, so 1.0 only ever down-weights residuals).
        close_kernel: elliptic closing size; dilate_kernel: square dilation size (0 = off).
        point_budget: max candidate-point x frame pairs projected at once (memory bound).

    """

    mode: RefineMode = 'cluster'
    sor_neighbours: int = 20
    sor_std_ratio: float = 2.5
    neighbour_search: NeighbourSearch = 'image'
    image_radius: int = 4
    compile_search: bool = True
    clusters: int = 30
    compile_kmeans: bool = False
    kmeans_iterations: int = 30
    seed: int = 42
    occlusion_margin: float = 0.01
    min_valid_ratio: float = 0.05
    threshold: float = 0.1
    consistent_pixel_centres: bool = False
    gradient_floor: float = 1.0
    close_kernel: int = 5
    dilate_kernel: int = 3
    point_budget: int = 1 << 23


@dataclass
class RefineResult:
    """Stage-3 outputs.

    Attributes:
        masks: [S,h,w] bool refined dynamic masks (after morphology).
        raw_masks: [S,h,w] bool before morphology.
        inliers: [S,h,w] bool statistical-outlier-removal inliers.
        labels: [S,h,w] int64 cluster of each candidate pixel (-1 static inlier, -2 outlier).
        scores: [S,k] cluster scores ('cluster' mode; inf where too few correspondences) or
            [S,h,w] pixel scores ('gradient' mode; inf where the pixel had too few kept
            views, 0 off the candidates).

    """

    masks: torch.Tensor
    raw_masks: torch.Tensor
    inliers: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor


def _mean_knn_distance_exact(points: torch.Tensor, valid: torch.Tensor, neighbours: int,
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


def _window_distances(points: torch.Tensor, valid: torch.Tensor, radius: int) -> torch.Tensor:
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


def _window_distances_shifted(points: torch.Tensor, valid: torch.Tensor,
                              radius: int) -> torch.Tensor:
    """Compute the distances of :func:`_window_distances` one window offset at a time.

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


def _mean_knn_distance_fused(points: torch.Tensor, valid: torch.Tensor, neighbours: int,
                             radius: int) -> torch.Tensor:
    """Image-window kNN mean distance by bitwise selection, the torch.compile target.

    Args:
        points: [S,h,w,3]; valid: [S,h,w] bool.

    Returns:
        [S,h,w] float32 (see :func:`_mean_knn_distance_image`).

    """
    dist = _window_distances(points, valid, radius)
    take = min(neighbours, dist.shape[-1])
    out = mean_of_smallest(dist, take).view(valid.shape)
    return torch.where(valid, out, torch.full_like(out, float('inf')))


def _mean_knn_distance_eager(points: torch.Tensor, valid: torch.Tensor, neighbours: int,
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
        rows = _window_distances(points, valid, radius)  # [S,h*w,L]
    else:
        dist = _window_distances_shifted(points, valid, radius)  # [S,L,h,w]
        rows = dist.flatten(2).transpose(1, 2).contiguous()  # [S,h*w,L]
    take = min(neighbours, rows.shape[-1])
    if few_kernels:
        nearest = rows.sort(dim=-1).values[..., :take]
    else:
        nearest = rows.topk(take, dim=-1, largest=False, sorted=False).values
    out = nearest.mean(-1).view(frames, *valid.shape[1:])
    return torch.where(valid, out, torch.full_like(out, float('inf')))


class _CompiledKnn:
    """``torch.compile(_mean_knn_distance_fused)``, built on first use; eager if that fails."""

    def __init__(self) -> None:
        self.fn: Callable[..., torch.Tensor] | None = None
        self.failed = False

    def __call__(self, points: torch.Tensor, valid: torch.Tensor, neighbours: int,
                 radius: int) -> torch.Tensor:
        if self.failed:
            return _mean_knn_distance_eager(points, valid, neighbours, radius)
        if self.fn is None:
            self.fn = torch.compile(_mean_knn_distance_fused, dynamic=False)
        try:
            return self.fn(points, valid, neighbours, radius)
        except torch.cuda.OutOfMemoryError:
            raise  # not a compiler problem: the pipeline's retry handles it
        except Exception as error:  # noqa: B902 (any backend failure: stay correct, eagerly)
            LOG.warning('torch.compile of the kNN search failed (%s); running eagerly', error)
            self.failed = True
            return _mean_knn_distance_eager(points, valid, neighbours, radius)


_COMPILED_KNN = _CompiledKnn()


def _mean_knn_distance_image(points: torch.Tensor, valid: torch.Tensor, neighbours: int,
                             radius: int, compiled: bool | None = None) -> torch.Tensor:
    """Mean distance to the k nearest valid points within a (2r+1)^2 pixel window.

    Args:
        points: [S,h,w,3]; valid: [S,h,w] bool.
        compiled: run the torch.compile'd selection kernel (None = on CUDA only; float32
            points only, other dtypes run eagerly).

    Returns:
        [S,h,w] float32, +inf for invalid points and where fewer than k neighbours exist.

    """
    if compiled is None:
        compiled = points.is_cuda
    if compiled and points.dtype == torch.float32:
        return _COMPILED_KNN(points, valid, neighbours, radius)
    return _mean_knn_distance_eager(points, valid, neighbours, radius)


def statistical_inliers(points: torch.Tensor, valid: torch.Tensor,
                        config: RefineConfig = RefineConfig(), frame_chunk: int = 2
                        ) -> torch.Tensor:
    """Open3D-style statistical outlier removal, per frame.

    A point is an inlier when its mean distance to its k nearest neighbours (itself included)
    is > 0 and < mean + ratio * std of those means over the frame (Bessel-corrected std,
    points with a zero mean excluded from the statistics as in Open3D).

    Args:
        points: [S,h,w,3]; valid: [S,h,w] bool (finite, positive depth).
        frame_chunk: frames per batch of the 'image' search, which bounds its buffers (per
            2 frames at 392x518, r=4: eager on CUDA ~400 MB of window offsets, on the CPU
            ~130 MB of distances; compiled, at most the ~130 MB of distances).

    Returns:
        [S,h,w] bool.

    """
    frames = points.shape[0]
    if config.neighbour_search == 'exact':
        mean_dist = torch.stack([
            _mean_knn_distance_exact(points[f].reshape(-1, 3), valid[f].reshape(-1),
                                     config.sor_neighbours).view(valid.shape[1:])
            for f in range(frames)])
    else:
        compiled = config.compile_search and points.is_cuda
        mean_dist = torch.cat([
            _mean_knn_distance_image(points[f:f + frame_chunk], valid[f:f + frame_chunk],
                                     config.sor_neighbours, config.image_radius, compiled)
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


def _ellipse_kernel(size: int, device: torch.device) -> torch.Tensor:
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


def _dilate(mask: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
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


def _erode(mask: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Binary erosion of [S,h,w] bool (outside the image = True, as OpenCV's default).

    All ones under the kernel = no zero under it: the complement of the dilation of ~mask
    (whose outside is then False, the dilation's padding).
    """
    return ~_dilate(~mask, kernel)


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
        ellipse = _ellipse_kernel(close_kernel, torch.device('cpu'))
        mask = _erode(_dilate(mask, ellipse), ellipse)
    if dilate_kernel > 0:
        mask = _dilate(mask, torch.ones(dilate_kernel, dilate_kernel))
    return mask


@dataclass
class _Views:
    """Per (reference frame i, other frame j, pixel of i) projection results for a chunk."""

    keep: torch.Tensor  # [c,S,M] bool
    depth_error: torch.Tensor  # [c,S,M] |z - d_j| (0 where not kept)
    rgb_error: torch.Tensor  # [c,S,M] sum_rgb |I_i - I_j| (0 where not kept)
    gradient_norm: torch.Tensor | None  # [c,S,M] ||dr_j/dX|| (gradient mode only)


def _sample(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor, mode: str) -> torch.Tensor:
    """Sample [S,C,h,w] at pixel-index coordinates x, y [S,P] (align_corners=True) -> [S,C,P]."""
    height, width = image.shape[-2:]
    grid = torch.stack([x / max(width - 1, 1) * 2 - 1, y / max(height - 1, 1) * 2 - 1], -1)
    grid = torch.nan_to_num(grid, nan=-2.0, posinf=-2.0, neginf=-2.0)  # outside -> zeros
    out = F.grid_sample(image, grid.unsqueeze(1), mode=mode, align_corners=True)
    return out.squeeze(2)


def _project_chunk(ref_frames: torch.Tensor, points: torch.Tensor, colours: torch.Tensor,
                   depth: torch.Tensor, coarse: torch.Tensor, images: torch.Tensor,
                   intrinsics: torch.Tensor, world_to_cam: torch.Tensor,
                   config: RefineConfig, with_gradient: bool) -> _Views:
    """Project the pixels of reference frames ``ref_frames`` into every frame.

    Args:
        ref_frames: [c] int64 frame indices.
        points: [S,M,3] world points; colours: [S,M,3].
        depth: [S,h,w]; coarse: [S,h,w] bool; images: [S,3,h,w].
        intrinsics: [S,3,3]; world_to_cam: [S,4,4].

    """
    frames, height, width = depth.shape
    chunk = ref_frames.shape[0]
    count = points.shape[1]
    ref_points = points[ref_frames]  # [c,M,3]
    rot, trans = world_to_cam[:, :3, :3], world_to_cam[:, :3, 3]
    # cam[j, i, m] = R_j X_i(m) + t_j, laid out [S_j, c*M, 3] for one grid_sample per frame.
    flat = ref_points.reshape(1, chunk * count, 3)
    cam = torch.einsum('jab,jpb->jpa', rot, flat.expand(frames, -1, -1)) + trans.unsqueeze(1)
    proj = torch.einsum('jab,jpb->jpa', intrinsics, cam)
    z = proj[..., 2]
    x, y = proj[..., 0] / z, proj[..., 1] / z
    inside = (x > 0) & (x < width) & (y > 0) & (y < height) & (z > 0)
    shift = 0.5 if config.consistent_pixel_centres else 0.0
    xs, ys = x - shift, y - shift
    sampled_depth = _sample(depth.unsqueeze(1), xs, ys, 'nearest')[:, 0]  # [S,P]
    stacked = torch.cat([coarse.float().unsqueeze(1), images], dim=1)
    bilinear = _sample(stacked, xs, ys, 'bilinear')  # [S,4,P]
    lands_dynamic = bilinear[:, 0] > 0.5
    other = torch.arange(frames, device=depth.device).view(-1, 1) != ref_frames.repeat_interleave(
        count).view(1, -1)
    visible = z - config.occlusion_margin < sampled_depth
    keep = inside & visible & ~lands_dynamic & other & torch.isfinite(sampled_depth)
    depth_error = torch.where(keep, (z - sampled_depth).abs(), torch.zeros_like(z))
    ref_colours = colours[ref_frames].reshape(1, chunk * count, 3).transpose(1, 2)
    rgb_error = (ref_colours - bilinear[:, 1:]).abs().sum(1)
    rgb_error = torch.where(keep, rgb_error, torch.zeros_like(rgb_error))
    gradient = None
    if with_gradient:
        gradient = _residual_gradient_norm(depth, intrinsics, cam, xs, ys)

    def per_ref(x: torch.Tensor) -> torch.Tensor:  # [S_j, c*M] -> [c, S_j, M]
        return x.view(frames, chunk, count).transpose(0, 1)

    views = _Views(per_ref(keep), per_ref(depth_error), per_ref(rgb_error),
                   None if gradient is None else per_ref(gradient))
    return views


def _residual_gradient_norm(depth: torch.Tensor, intrinsics: torch.Tensor, cam: torch.Tensor,
                            xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """||dr_j/dX|| with r_j(X) = d_j(pi(K_j(R_j X + t_j))) - [R_j X + t_j]_z.

    dr/dX = (grad d_j(u)^T J_pi(X_cam) - e_z^T) R_j; R_j is orthonormal, so the norm is that of
    the bracket. grad d_j is the central-difference depth gradient, sampled bilinearly.

    Args:
        depth: [S,h,w]; intrinsics: [S,3,3]; cam: [S,P,3] points in each camera j.
        xs, ys: [S,P] sampling coordinates.

    Returns:
        [S,P].

    """
    padded = F.pad(depth.unsqueeze(1), (1, 1, 1, 1), mode='replicate')
    grad_x = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    grad_y = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    grads = _sample(torch.cat([grad_x, grad_y], dim=1), xs, ys, 'bilinear')  # [S,2,P]
    fx, fy = intrinsics[:, 0, 0].unsqueeze(1), intrinsics[:, 1, 1].unsqueeze(1)
    cx_, cy_, cz = cam[..., 0], cam[..., 1], cam[..., 2]
    inv_z = 1.0 / cz
    # J_pi = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]]; row = grad^T J_pi - e_z.
    gx, gy = grads[:, 0], grads[:, 1]
    row_x = gx * fx * inv_z
    row_y = gy * fy * inv_z
    row_z = -(gx * fx * cx_ + gy * fy * cy_) * inv_z * inv_z - 1.0
    norm = torch.sqrt(row_x ** 2 + row_y ** 2 + row_z ** 2)
    return torch.nan_to_num(norm, nan=1.0, posinf=1.0)


def _compact(candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel indices of each frame's candidates, padded to the largest count.

    Reads the largest count back to the host once (the only sync of the refinement).

    Args:
        candidates: [S,M] bool.

    Returns:
        index [S,C] int64 (pixel index, padding points at a non-candidate) and valid [S,C].

    """
    frames, pixels = candidates.shape
    rank = candidates.cumsum(1)  # [S,M] candidates up to and including each pixel
    counts = rank[:, -1] if pixels else candidates.sum(1)
    width = int(counts.max()) if candidates.numel() else 0
    # The stable partition a stable sort of ~candidates would give (candidates first, then
    # the others, both in raster order), from prefix counts: a scan and a scatter.
    raster = torch.arange(pixels, device=candidates.device).expand(frames, pixels)
    slot = torch.where(candidates, rank - 1, counts.unsqueeze(1) + raster - rank)
    order = torch.empty_like(slot).scatter_(1, slot, raster)
    index = order[:, :width]
    valid = torch.arange(width, device=candidates.device).unsqueeze(0) < counts.unsqueeze(1)
    return index, valid


def _cluster_sums(member: torch.Tensor, values: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Per-cluster sums [S,k,V] of ``values`` [S,C,V] with one-hot ``member`` [S,C,k].

    The candidate axis is cut into chunks that become extra batches before the final sum:
    one [S,k,C] x [S,C,V] product has a huge inner dimension and a tiny output, which cuBLAS
    runs on one tile per frame (milliseconds on an H200); chunked, it spreads over the GPU.
    Deterministic (no atomics).
    """
    frames, count, clusters = member.shape
    pad = (-count) % chunk
    if count <= chunk:
        return torch.bmm(member.transpose(1, 2), values)
    member = F.pad(member, (0, 0, 0, pad)).view(frames * ((count + pad) // chunk), chunk,
                                                clusters)
    values = F.pad(values, (0, 0, 0, pad)).view(member.shape[0], chunk, values.shape[-1])
    partial = torch.bmm(member.transpose(1, 2), values)
    return partial.view(frames, -1, clusters, values.shape[-1]).sum(1)


ClusterFn = Callable[[torch.Tensor, torch.Tensor, KMeansConfig], torch.Tensor]


def _cluster_eagerly(points: torch.Tensor, valid: torch.Tensor,
                     config: KMeansConfig) -> torch.Tensor:
    """Labels [S,C] of the candidates' 3D k-means (-1 on padding)."""
    return kmeans(points, config, valid)[0]


@dataclass
class RefinePlan:
    """The pose-free half of stage 3: candidates and their 3D clusters, in camera coordinates.

    Statistical outlier removal and k-means see only Euclidean distances between the points
    of one frame, which a rigid camera-to-world motion preserves: computed on camera-frame
    points they give the release's inliers and clusters (up to float rounding) without the
    pass-2 poses (see :func:`prepare_refinement`).

    Attributes:
        valid_depth: [S,h,w] bool, finite positive depth.
        inliers: [S,h,w] bool statistical-outlier-removal inliers.
        index: [S,C] int64 pixel index of each candidate slot (padding at a non-candidate).
        valid: [S,C] bool real candidate slots.
        points: [S,C,3] candidate points in their own camera's frame.
        colours: [S,C,3] candidate RGB in [0,1].
        labels: [S,C] int64 3D cluster of each slot (-1 on padding).

    """

    valid_depth: torch.Tensor
    inliers: torch.Tensor
    index: torch.Tensor
    valid: torch.Tensor
    points: torch.Tensor
    colours: torch.Tensor
    labels: torch.Tensor


@dataclass
class Candidates:
    """Outlier removal and coarse-mask candidates of every pixel (no host synchronisation).

    Attributes:
        valid_depth: [S,h,w] bool, finite positive depth.
        inliers: [S,h,w] bool statistical-outlier-removal inliers.
        points: [S,h,w,3] camera-frame points.
        candidates: [S,h*w] bool, inlier and coarse-dynamic.

    """

    valid_depth: torch.Tensor
    inliers: torch.Tensor
    points: torch.Tensor
    candidates: torch.Tensor


def find_candidates(depth: torch.Tensor, coarse: torch.Tensor, intrinsics: torch.Tensor,
                    config: RefineConfig = RefineConfig()) -> Candidates:
    """Stage 3, steps 1-2 in camera coordinates: points, outlier removal, candidates.

    Queues device work only (no host read), so a caller can queue it and go on.

    Args:
        depth: [S,h,w] pass-1 depth (non-finite or <= 0 values are never candidates).
        coarse: [S,h,w] bool coarse masks.
        intrinsics: [S,3,3] pass-1, network pixels.

    """
    frames = depth.shape[0]
    depth = depth.float()
    valid_depth = torch.isfinite(depth) & (depth > 0)
    clean_depth = torch.where(valid_depth, depth, torch.ones_like(depth))
    points = camera_points(clean_depth, intrinsics, pixel_offset=PIXEL_CENTRE)
    inliers = statistical_inliers(points, valid_depth, config)
    candidates = (inliers & coarse.bool()).reshape(frames, -1)
    return Candidates(valid_depth, inliers, points, candidates)


def candidate_kmeans(config: RefineConfig) -> KMeansConfig:
    """Return the 3D k-means settings :func:`cluster_candidates` clusters candidates with."""
    return KMeansConfig(config.clusters, config.kmeans_iterations, None, config.seed)


def cluster_candidates(found: Candidates, images: torch.Tensor,
                       config: RefineConfig = RefineConfig(),
                       cluster_fn: ClusterFn = _cluster_eagerly) -> RefinePlan:
    """Stage 3, step 3: compact the candidates (one host read) and cluster them in 3D.

    Args:
        found: from :func:`find_candidates`.
        images: [S,3,h,w] in [0,1].
        cluster_fn: ``(points[S,C,3], valid[S,C], KMeansConfig) -> labels[S,C]``, the 3D
            k-means (the pipeline passes a CUDA-graphed one).

    """
    frames = images.shape[0]
    index, valid = _compact(found.candidates)  # [S,C]
    gather3 = index.unsqueeze(-1).expand(-1, -1, 3)
    cand_points = found.points.reshape(frames, -1, 3).gather(1, gather3)
    cand_colours = images.float().permute(0, 2, 3, 1).reshape(frames, -1, 3).gather(1, gather3)
    km = candidate_kmeans(config)
    if index.shape[1]:
        labels = cluster_fn(cand_points, valid, km)  # [S,C], -1 on padding
    else:
        labels = index.clone()  # no candidate anywhere: nothing to cluster
    return RefinePlan(found.valid_depth, found.inliers, index, valid, cand_points, cand_colours,
                      labels)


def prepare_refinement(images: torch.Tensor, depth: torch.Tensor, coarse: torch.Tensor,
                       intrinsics: torch.Tensor, config: RefineConfig = RefineConfig(),
                       cluster_fn: ClusterFn = _cluster_eagerly) -> RefinePlan:
    """Stage 3, first half (no poses): :func:`find_candidates` then :func:`cluster_candidates`.

    Args:
        images: [S,3,h,w] in [0,1].
        depth: [S,h,w] pass-1 depth (non-finite or <= 0 values are never candidates).
        coarse: [S,h,w] bool coarse masks.
        intrinsics: [S,3,3] pass-1, network pixels.
        cluster_fn: the 3D k-means, as :func:`cluster_candidates`.

    Returns:
        RefinePlan for :func:`finish_refinement`.

    """
    found = find_candidates(depth, coarse, intrinsics, config)
    return cluster_candidates(found, images, config, cluster_fn)


def refine_masks(images: torch.Tensor, depth: torch.Tensor, coarse: torch.Tensor,
                 cam_to_world: torch.Tensor, intrinsics: torch.Tensor,
                 config: RefineConfig = RefineConfig(),
                 cluster_fn: ClusterFn = _cluster_eagerly) -> RefineResult:
    """Stage 3 of VGGT4D (:func:`prepare_refinement` then :func:`finish_refinement`).

    Args:
        images: [S,3,h,w] in [0,1].
        depth: [S,h,w] pass-1 depth (non-finite or <= 0 values are never candidates).
        coarse: [S,h,w] bool coarse masks.
        cam_to_world: [S,4,4] pass-2 poses.
        intrinsics: [S,3,3] pass-1, network pixels.
        cluster_fn: ``(points[S,C,3], valid[S,C], KMeansConfig) -> labels[S,C]``, the 3D
            k-means (the pipeline passes a CUDA-graphed one).

    Returns:
        RefineResult with masks [S,h,w] bool.

    """
    plan = prepare_refinement(images, depth, coarse, intrinsics, config, cluster_fn)
    return finish_refinement(plan, images, depth, coarse, cam_to_world, intrinsics, config)


def finish_refinement(plan: RefinePlan, images: torch.Tensor, depth: torch.Tensor,
                      coarse: torch.Tensor, cam_to_world: torch.Tensor,
                      intrinsics: torch.Tensor, config: RefineConfig = RefineConfig()
                      ) -> RefineResult:
    """Stage 3, second half: project the clustered candidates with the pass-2 poses and decide.

    Args:
        plan: from :func:`prepare_refinement` on the same images, depth, masks and intrinsics.
        images, depth, coarse, intrinsics: as :func:`refine_masks`.
        cam_to_world: [S,4,4] pass-2 poses.

    Returns:
        RefineResult with masks [S,h,w] bool.

    """
    frames, height, width = depth.shape
    count = height * width
    depth = depth.float()
    images = images.float()
    intrinsics = intrinsics.float()
    cam_to_world = cam_to_world.float()
    index, valid, labels = plan.index, plan.valid, plan.labels
    cand_points = points_to_world(plan.points, cam_to_world)
    world_to_cam = torch.linalg.inv_ex(cam_to_world).inverse
    sample_depth = torch.where(plan.valid_depth, depth, torch.full_like(depth, float('nan')))
    gradient_mode = config.mode == 'gradient'
    slots = index.shape[1]
    chunk = max(1, config.point_budget // max(frames * slots, 1))
    clusters = config.clusters
    # Per candidate, summed over the other views: kept count, geometric and photometric error.
    per_point = torch.zeros(frames, slots, 3, device=depth.device)
    for start in range(0, frames if slots else 0, chunk):
        ref = torch.arange(start, min(start + chunk, frames), device=depth.device)
        views = _project_chunk(ref, cand_points, plan.colours, sample_depth, coarse, images,
                               intrinsics, world_to_cam, config, gradient_mode)
        geometric = views.depth_error
        if gradient_mode:
            geometric = geometric / views.gradient_norm.clamp_min(config.gradient_floor)
        per_point[ref] = torch.stack([views.keep.float().sum(1), geometric.sum(1),
                                      views.rgb_error.sum(1)], dim=-1)
    # Per-cluster sums as a one-hot matmul (deterministic, unlike float scatter atomics).
    member = (labels.unsqueeze(-1) == torch.arange(clusters, device=depth.device)).float()
    member = member * valid.unsqueeze(-1).float()  # [S,C,k]
    kept, geo_sum, rgb_sum = _cluster_sums(member, per_point).unbind(-1)
    sizes = member.sum(1)  # [S,k]
    ratio = kept / ((frames - 1) * sizes + 1e-6)
    score = (geo_sum + rgb_sum / 3) / kept.clamp_min(1)
    too_few = ratio < config.min_valid_ratio
    cluster_dynamic = (too_few | (score > config.threshold)).gather(1, labels.clamp_min(0))
    if gradient_mode:
        # Pixels with enough kept views decide on their own score; the others (no evidence)
        # inherit their cluster's decision, as a whole cluster without evidence would.
        pixel_kept, pixel_geo, pixel_rgb = per_point.unbind(-1)
        pixel_score = (pixel_geo + pixel_rgb / 3) / pixel_kept.clamp_min(1)
        evidence = pixel_kept / max(frames - 1, 1) >= config.min_valid_ratio
        dynamic_slot = valid & torch.where(evidence, pixel_score > config.threshold,
                                           cluster_dynamic)
        slot_scores = torch.where(evidence, pixel_score, torch.full_like(pixel_score,
                                                                         float('inf')))
        slot_scores = torch.where(valid, slot_scores, torch.zeros_like(slot_scores))
        scores = torch.zeros(frames, count, device=depth.device).scatter(1, index, slot_scores)
        scores = scores.view(frames, height, width)
    else:
        scores = torch.where(too_few, torch.full_like(score, float('inf')), score)
        dynamic_slot = valid & cluster_dynamic
    raw = torch.zeros(frames, count, dtype=torch.bool, device=depth.device)
    raw = raw.scatter(1, index, dynamic_slot).view(frames, height, width)
    full_labels = torch.where(plan.inliers, -1, -2).reshape(frames, count).long()
    slot_labels = torch.where(valid, labels, full_labels.gather(1, index))
    full_labels = full_labels.scatter(1, index, slot_labels).view(frames, height, width)
    masks = close_then_dilate(raw, config.close_kernel, config.dilate_kernel)
    return RefineResult(masks=masks, raw_masks=raw, inliers=plan.inliers, labels=full_labels,
                        scores=scores)
