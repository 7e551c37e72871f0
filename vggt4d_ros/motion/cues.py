# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Motion cues from the Gram statistics of VGGT's global attention (VGGT4D stage 1b).

For a reference frame t, a source frame s in the temporal window W(t), a layer set L and the
16 heads, the release builds the raw Gram tensor G(l, h, p, j) = <a_t(p), b_s(j)> of plain dot
products (no 1/sqrt(d), no softmax) and reduces it to two statistics per reference patch p:

    mean:  S(t, p) = mean over l, h, s, j of G
    std:   V(t, p) = unbiased std over j of  m(t, p, j),   m = mean over l, h, s of G

Both are linear in the source vectors, so the window mean is taken first:
b_bar_t(j) = mean_{s in W(t)} b_s(j). Then m(t) = sum_l a_t^l (b_bar_t^l)^T / (L*H) is an
[N, L*H*d] x [L*H*d, N] product per frame (accumulated layer by layer, frames batched) and
S(t, p) = <a_t(p), mean_j b_bar_t(j)> / (L*H). The [|W|, L, H, N, N] tensor of the release is
never built. All accumulation is in fp32. The window is banded (offsets reach +-6 frames):
:class:`WindowBand` holds each frame's sources, and a chunk of reference frames reads only its
band of source frames, so a window of hundreds of frames needs no [S,S] matrix and its memory
and work stay linear in S.

The five maps (A: qq mean, B: qq std, Cd: qq mean, Dk: kk mean, E: qk std) are min-max
normalised per frame and combined into D = N[(1-A)(1-B) Cd (1-Dk) E].

Multi-camera rigs (:class:`motion.rig.RigLayout`, T steps x N views, step-major): the window
offsets count time steps of the SAME view. Frame (t, v) averages over (t + o, v) only, never
over another view: at one time step two cameras differ by parallax, which is not motion. The
whole rig stays one batched computation; only the [S,S] averaging matrix changes
(block structure kron(W_T, I_N)), and for N = 1 it is the release's matrix exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import functools
from typing import Literal, Mapping, Sequence

import torch

from vggt4d_ros.motion.rig import RigLayout

EmptyWindowPolicy = Literal['nearest', 'none']


@dataclass(frozen=True)
class CueLayers:
    """Global-attention block indices (0-based) of each motion-cue map (release defaults)."""

    mean_qq_middle: tuple[int, ...] = (3, 4, 5, 6, 7)  # map A
    std_qq_deep: tuple[int, ...] = (18, 19)  # map B
    mean_qq_deep: tuple[int, ...] = (17, 18, 19, 20, 21)  # map Cd
    mean_kk_shallow: tuple[int, ...] = (0,)  # map Dk
    std_qk_shallow: tuple[int, ...] = (0,)  # map E (q of the reference, k of the sources)

    def q_blocks(self) -> tuple[int, ...]:
        """Global blocks whose queries are needed."""
        used = self.mean_qq_middle + self.std_qq_deep + self.mean_qq_deep + self.std_qk_shallow
        return tuple(sorted(set(used)))

    def k_blocks(self) -> tuple[int, ...]:
        """Global blocks whose keys are needed."""
        return tuple(sorted(set(self.mean_kk_shallow + self.std_qk_shallow)))


@dataclass(frozen=True)
class CueConfig:
    """Everything that defines the saliency computation.

    Attributes:
        layers: global blocks per map.
        offsets: temporal window, frame-index offsets from the reference (0 is ignored); for a
            rig, offsets in time steps of the same view.

    """

    layers: CueLayers = CueLayers()
    offsets: tuple[int, ...] = (-6, -4, -2, 2, 4, 6)
    eps: float = field(default=1e-6, metadata={
        'description': 'min-max normalisation epsilon.', 'range': (0.0, 1.0)})
    empty_window: EmptyWindowPolicy = field(default='nearest', metadata={
        'description':
            "what a frame whose window is empty (short windows) uses: 'nearest' = the closest "
            "other frame(s) in index distance, 'none' = no cue (D = 0)."})
    frame_chunk: int = field(default=16, metadata={
        'description':
            'reference frames per chunk of the statistics (bounds the [chunk, N, N] Gram '
            'buffer; each chunk reads only its band of source frames, so memory and work are '
            'linear in S). A window of at most this many frames is one chunk.',
        'range': (1, 4096)})


@dataclass
class CueMaps:
    """Saliency and the raw statistics it came from.

    Attributes:
        saliency: [S,hp,wp] D in [0,1] (all zero for frames without any source frame).
        raw: map name ('A','B','Cd','Dk','E') -> [S,hp,wp] fp32 raw statistic
            (layer/head/window means of plain dot products, before any normalisation).
        has_window: [S] bool, False where the frame had no source frame at all.
        window: the temporal window (source frames and weights of every frame;
            ``window.dense()`` is the [S,S] averaging matrix).

    """

    saliency: torch.Tensor
    raw: dict[str, torch.Tensor]
    has_window: torch.Tensor
    window: 'WindowBand'


def _step_sources(num_steps: int, offsets: Sequence[int],
                  empty_window: EmptyWindowPolicy = 'nearest') -> list[list[int]]:
    """Source steps of every step: W(t) = {t+o : o in offsets, o != 0} in [0, T-1], sorted.

    With ``empty_window='nearest'`` an empty set falls back to the other step(s) closest in
    index; with 'none' it stays empty. O(T * |offsets|) except for the (short-window) fallback.
    """
    sources_of = []
    for ref in range(num_steps):
        sources = sorted({ref + o for o in offsets if o != 0 and 0 <= ref + o < num_steps})
        if not sources and empty_window == 'nearest' and num_steps > 1:
            others = [s for s in range(num_steps) if s != ref]
            closest = min(abs(s - ref) for s in others)
            sources = [s for s in others if abs(s - ref) == closest]
        sources_of.append(sources)
    return sources_of


def window_weights(
    num_frames: int,
    offsets: Sequence[int],
    empty_window: EmptyWindowPolicy = 'nearest',
    device: torch.device | str = 'cpu',
) -> torch.Tensor:
    """Averaging matrix of the temporal window.

    Row t holds 1/|W(t)| at the source frames W(t) = {t+o : o in offsets, o != 0} clipped to
    [0, S-1]. With ``empty_window='nearest'`` an empty row falls back to the other frame(s)
    closest in index; with 'none' it stays zero. (The cue computation itself uses the banded
    form, :class:`WindowBand`, and never builds this [S,S] matrix for a long window.)

    Returns:
        [S,S] float32.

    """
    weights = torch.zeros(num_frames, num_frames, dtype=torch.float32)
    for ref, sources in enumerate(_step_sources(num_frames, offsets, empty_window)):
        if sources:
            weights[ref, sources] = 1.0 / len(sources)
    return weights.to(device)


def rig_window_weights(
    layout: RigLayout,
    offsets: Sequence[int],
    empty_window: EmptyWindowPolicy = 'nearest',
    device: torch.device | str = 'cpu',
) -> torch.Tensor:
    """Averaging matrix of the per-camera temporal window of a rig (step-major frames).

    Frame f = t*N + v averages over the frames (t + o)*N + v of the same view v, with the
    weights of :func:`window_weights` over the T steps (same clipping, same empty-window
    fallback, in steps). Cross-view entries are zero: W_rig = kron(W_T, I_N). For N = 1 this
    is :func:`window_weights` itself.

    Returns:
        [S,S] float32, S = T*N.

    """
    steps = window_weights(layout.num_steps, offsets, empty_window)
    if layout.num_views == 1:
        return steps.to(device)
    return torch.kron(steps, torch.eye(layout.num_views)).to(device)


class WindowBand:
    """The temporal window as a band: each frame's source frames and weights, no [S,S] matrix.

    The release's offsets reach 6 frames (steps) either side, so every row of the averaging
    matrix has at most |offsets| non-zero entries and a chunk of reference frames
    ``[start, stop)`` reads only the sources in a span ``[lo, hi)`` about ``stop - start + 12``
    frames long. :meth:`block` gives that chunk's dense ``[stop-start, hi-lo]`` piece of the
    matrix, so memory and work stay linear in S. A chunk that covers the whole window gets the
    full ``[S,S]`` matrix with span ``[0, S)``: exactly :func:`rig_window_weights` (the
    short-window path, bit for bit).

    Device copies of the blocks are cached per (chunk, device): a pipeline that runs many
    windows of one layout copies them to the device once (a blocking host-to-device copy per
    window made the host wait for pass 1 before it could queue the cue kernels).

    Args:
        sources: per frame, its source frame indices.
        weights: per frame, the weight of each source (same lengths).

    """

    def __init__(self, sources: Sequence[Sequence[int]],
                 weights: Sequence[Sequence[float]]) -> None:
        if len(sources) != len(weights) or any(
                len(s) != len(w) for s, w in zip(sources, weights)):
            raise ValueError('every frame needs one weight per source frame')
        self.sources = [list(map(int, s)) for s in sources]
        self.weights = [list(map(float, w)) for w in weights]
        self._blocks: dict[tuple, tuple[int, int, torch.Tensor]] = {}
        self._has_window: dict[str, torch.Tensor] = {}

    @property
    def num_frames(self) -> int:
        """S."""
        return len(self.sources)

    @classmethod
    def for_layout(cls, layout: RigLayout, offsets: Sequence[int],
                   empty_window: EmptyWindowPolicy = 'nearest') -> 'WindowBand':
        """Build the band of :func:`rig_window_weights` (same sources, same weights).

        Frame f = t*N + v averages over the frames s*N + v, s in W(t), with weight 1/|W(t)|.
        """
        views = layout.num_views
        steps = _step_sources(layout.num_steps, offsets, empty_window)
        sources, weights = [], []
        for frame in range(layout.num_frames):
            step_sources = steps[frame // views]
            sources.append([s * views + frame % views for s in step_sources])
            weights.append([1.0 / len(step_sources)] * len(step_sources) if step_sources else [])
        return cls(sources, weights)

    @classmethod
    def from_dense(cls, weights: torch.Tensor) -> 'WindowBand':
        """Build the band of an explicit [S,S] averaging matrix (its non-zero entries)."""
        if weights.dim() != 2 or weights.shape[0] != weights.shape[1]:
            raise ValueError(f'window weights must be [S,S], got {tuple(weights.shape)}')
        rows = weights.detach().to('cpu', torch.float32)
        sources = [torch.nonzero(row).flatten().tolist() for row in rows]
        return cls(sources, [row[index].tolist() for row, index in zip(rows, sources)])

    def span(self, start: int, stop: int) -> tuple[int, int]:
        """Source frames ``[lo, hi)`` the reference frames ``[start, stop)`` read.

        The whole window as one chunk reads ``[0, S)`` (the short-window path).
        """
        if start == 0 and stop >= self.num_frames:
            return 0, self.num_frames
        used = [s for row in self.sources[start:stop] for s in row]
        if not used:
            return start, start
        return min(used), max(used) + 1

    def block(self, start: int, stop: int,
              device: torch.device | str = 'cpu') -> tuple[int, int, torch.Tensor]:
        """``(lo, hi, W[start:stop, lo:hi])``: the chunk's piece of the averaging matrix.

        Returns:
            lo, hi and a [stop-start, hi-lo] float32 tensor on ``device`` (cached, read-only).

        """
        key = (start, stop, str(torch.device(device)))
        if key not in self._blocks:
            lo, hi = self.span(start, stop)
            block = torch.zeros(stop - start, hi - lo, dtype=torch.float32)
            for row, (sources, weights) in enumerate(zip(self.sources[start:stop],
                                                         self.weights[start:stop])):
                if sources:
                    block[row, [s - lo for s in sources]] = torch.tensor(weights)
            self._blocks[key] = (lo, hi, block.to(device))
        return self._blocks[key]

    def has_window(self, device: torch.device | str = 'cpu') -> torch.Tensor:
        """[S] bool, True where the frame has a source with positive weight (cached)."""
        key = str(torch.device(device))
        if key not in self._has_window:
            flags = [sum(weights) > 0 for weights in self.weights]
            self._has_window[key] = torch.tensor(flags, dtype=torch.bool).to(device)
        return self._has_window[key]

    def dense(self, device: torch.device | str = 'cpu') -> torch.Tensor:
        """Return the [S,S] averaging matrix (small windows and tests only)."""
        return self.block(0, self.num_frames, device)[2]


@functools.lru_cache(maxsize=16)
def window_band(layout: RigLayout, offsets: tuple[int, ...],
                empty_window: EmptyWindowPolicy = 'nearest') -> WindowBand:
    """:meth:`WindowBand.for_layout`, built once per layout (its device blocks are cached)."""
    return WindowBand.for_layout(layout, offsets, empty_window)


def _chunks(frames: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` pieces of ``range(frames)`` of at most ``size`` frames."""
    return [(start, min(start + size, frames)) for start in range(0, frames, size)]


def _select(tensors: Mapping[int, torch.Tensor], layers: Sequence[int]) -> list[torch.Tensor]:
    """Return the captured tensors of ``layers`` (clear error for a block not captured)."""
    missing = [layer for layer in layers if layer not in tensors]
    if missing:
        raise KeyError(f'global block {missing[0]} was not captured (have {sorted(tensors)})')
    return [tensors[layer] for layer in layers]


def _flat(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[S,heads,N,d] (any dtype) -> [S,N,heads*d] in ``dtype``: one layer's heads side by side."""
    frames, heads, tokens, dim = x.shape
    return x.to(dtype).permute(0, 2, 1, 3).reshape(frames, tokens, heads * dim)


def _gram_block(ref: torch.Tensor, window_src: torch.Tensor) -> torch.Tensor:
    """Plain dot products of reference and window-mean source vectors.

    An fp32 GEMM runs on CUDA cores (1.5 ms of the 8-frame cues on an H200). For bf16 captures
    on CUDA, the fp32 window mean is split into two bf16 terms, high + low (low is the
    rounding error of high, so about 2^-17 relative is left), and both products run on tensor
    cores with fp32 accumulation and output. The reference side is exact in bf16, so each
    product term is exact and the result equals the fp32 GEMM to about 1e-5 relative.

    Args:
        ref: [c,heads,N,d] captured vectors (any dtype).
        window_src: [c,N,heads*d] float32 window means.

    Returns:
        [c,N,N] float32.

    """
    if not (ref.is_cuda and ref.dtype == torch.bfloat16):
        return torch.bmm(_flat(ref), window_src.transpose(1, 2))
    ref = _flat(ref, torch.bfloat16)
    high = window_src.to(torch.bfloat16)
    low = (window_src - high.float()).to(torch.bfloat16)
    gram = torch.bmm(ref, high.transpose(1, 2), out_dtype=torch.float32)
    return gram.add_(torch.bmm(ref, low.transpose(1, 2), out_dtype=torch.float32))


def _source_means(src: torch.Tensor, frame_chunk: int) -> torch.Tensor:
    """Per-frame mean over the patches, [S,heads,N,d] -> [S,heads*d] fp32, in frame chunks.

    The fp32 copy of one chunk is all that is held (a whole 500-frame layer would be 2 GB).
    """
    return torch.cat([_flat(src[start:stop]).mean(dim=1)
                      for start, stop in _chunks(src.shape[0], frame_chunk)])


def gram_mean(
    ref: Sequence[torch.Tensor], src: Sequence[torch.Tensor], band: WindowBand,
    frame_chunk: int = 16,
) -> torch.Tensor:
    """Mean statistic S(t,p) = mean_{l,h,s,j} <a_t(p), b_s(j)>.

    One layer at a time (fp32), so no [S,N,L*heads*d] stack is ever built; reference frames in
    chunks of ``frame_chunk``, each reading only its band of source means.

    Args:
        ref: L reference tensors [S,heads,N,d].
        src: L source tensors [S,heads,N,d] (same layers).
        band: the temporal window.
        frame_chunk: reference frames per chunk (a window of at most this many frames is one
            chunk: the short-window path).

    Returns:
        [S,N] float32.

    """
    frames, _, tokens, _ = ref[0].shape
    device = ref[0].device
    layer_heads = sum(layer.shape[1] for layer in ref)
    means = [_source_means(src_layer, frame_chunk) for src_layer in src]  # L x [S,heads*d]
    out = torch.empty(frames, tokens, device=device)
    for start, stop in _chunks(frames, frame_chunk):
        lo, hi, weights = band.block(start, stop, device)
        total = None
        for ref_layer, mean in zip(ref, means):
            window_mean = weights @ mean[lo:hi]  # [c,heads*d], mean over s and j
            part = torch.einsum('snf,sf->sn', _flat(ref_layer[start:stop]), window_mean)
            total = part if total is None else total + part
        out[start:stop] = total / layer_heads
    return out


def gram_spatial_std(
    ref: Sequence[torch.Tensor],
    src: Sequence[torch.Tensor],
    band: WindowBand,
    frame_chunk: int = 16,
) -> torch.Tensor:
    """Std statistic V(t,p) = std_j mean_{l,h,s} <a_t(p), b_s(j)> (unbiased over j).

    Per chunk of reference frames, m(t) = sum_l a_t^l (b_bar_t^l)^T / (L*heads) is accumulated
    layer by layer into one [chunk,N,N] buffer (fp32; bf16 captures on CUDA multiply on tensor
    cores, see :func:`_gram_block`). The window means b_bar read only the chunk's band of
    source frames (:meth:`WindowBand.block`), so memory is bounded by the chunk and work is
    linear in S.

    Args:
        ref: L reference tensors [S,heads,N,d].
        src: L source tensors [S,heads,N,d].
        band: the temporal window.
        frame_chunk: reference frames per batched matmul.

    Returns:
        [S,N] float32.

    """
    frames, _, tokens, _ = ref[0].shape
    device = ref[0].device
    layer_heads = sum(layer.shape[1] for layer in ref)
    out = torch.empty(frames, tokens, device=device)
    correction = 1 if tokens > 1 else 0
    for start, stop in _chunks(frames, frame_chunk):
        lo, hi, weights = band.block(start, stop, device)
        gram = None
        for ref_layer, src_layer in zip(ref, src):
            window_src = torch.einsum('ts,snf->tnf', weights, _flat(src_layer[lo:hi]))
            part = _gram_block(ref_layer[start:stop], window_src)
            gram = part if gram is None else gram.add_(part)
        out[start:stop] = torch.std(gram / layer_heads, dim=-1, correction=correction)
    return out


def minmax_per_frame(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(x - min) / (max - min + eps) over every axis but the first.

    Args:
        x: [S,...].

    Returns:
        same shape, in [0, 1).

    """
    flat = x.reshape(x.shape[0], -1)
    low = flat.min(dim=1).values.view(-1, *([1] * (x.dim() - 1)))
    high = flat.max(dim=1).values.view(-1, *([1] * (x.dim() - 1)))
    return (x - low) / (high - low + eps)


def compute_cues(
    q: Mapping[int, torch.Tensor],
    k: Mapping[int, torch.Tensor],
    grid_hw: tuple[int, int],
    config: CueConfig = CueConfig(),
    layout: RigLayout | None = None,
) -> CueMaps:
    """Raw Gram statistics and the dynamic saliency D of every frame.

    Args:
        q: global block -> queries [S,heads,N,d] (patch tokens, after QK-norm and RoPE).
        k: global block -> keys [S,heads,N,d].
        grid_hw: (hp, wp) with hp*wp = N.
        config: layers, window, epsilon.
        layout: rig layout of the S frames (None = one camera, S steps).

    Returns:
        CueMaps with saliency [S,hp,wp].

    """
    frames = next(iter(q.values())).shape[0]
    layout = RigLayout.single(frames) if layout is None else layout
    layout.check(frames)
    band = window_band(layout, tuple(config.offsets), config.empty_window)
    return cues_from_band(q, k, grid_hw, band, config)


def cues_from_weights(
    q: Mapping[int, torch.Tensor],
    k: Mapping[int, torch.Tensor],
    grid_hw: tuple[int, int],
    weights: torch.Tensor,
    config: CueConfig = CueConfig(),
) -> CueMaps:
    """:func:`compute_cues` with an explicit source averaging matrix (any frame pairing).

    Args:
        q: global block -> queries [S,heads,N,d].
        k: global block -> keys [S,heads,N,d].
        grid_hw: (hp, wp) with hp*wp = N.
        weights: [S,S] float32; row t = weights of t's source frames.
        config: layers and epsilon (its window settings are not used here).

    Returns:
        CueMaps with saliency [S,hp,wp].

    """
    frames = next(iter(q.values())).shape[0]
    if tuple(weights.shape) != (frames, frames):
        raise ValueError(f'window weights {tuple(weights.shape)} for {frames} frames')
    return cues_from_band(q, k, grid_hw, WindowBand.from_dense(weights), config)


def cues_from_band(
    q: Mapping[int, torch.Tensor],
    k: Mapping[int, torch.Tensor],
    grid_hw: tuple[int, int],
    band: WindowBand,
    config: CueConfig = CueConfig(),
) -> CueMaps:
    """:func:`compute_cues` with an explicit banded window.

    Args:
        q: global block -> queries [S,heads,N,d].
        k: global block -> keys [S,heads,N,d].
        grid_hw: (hp, wp) with hp*wp = N.
        band: the window's source frames and weights.
        config: layers, epsilon and ``frame_chunk`` (its window settings are not used here).

    Returns:
        CueMaps with saliency [S,hp,wp].

    """
    layers = config.layers
    frames, _, tokens, _ = next(iter(q.values())).shape
    device = next(iter(q.values())).device
    if grid_hw[0] * grid_hw[1] != tokens:
        raise ValueError(f'grid {grid_hw} does not hold {tokens} patch tokens')
    if band.num_frames != frames:
        raise ValueError(f'window of {band.num_frames} frames for {frames} frames')

    def mean_map(a: Mapping[int, torch.Tensor], b: Mapping[int, torch.Tensor],
                 block_ids: Sequence[int]) -> torch.Tensor:
        return gram_mean(_select(a, block_ids), _select(b, block_ids), band, config.frame_chunk)

    def std_map(a: Mapping[int, torch.Tensor], b: Mapping[int, torch.Tensor],
                block_ids: Sequence[int]) -> torch.Tensor:
        return gram_spatial_std(_select(a, block_ids), _select(b, block_ids), band,
                                config.frame_chunk)

    raw = {
        'A': mean_map(q, q, layers.mean_qq_middle),
        'B': std_map(q, q, layers.std_qq_deep),
        'Cd': mean_map(q, q, layers.mean_qq_deep),
        'Dk': mean_map(k, k, layers.mean_kk_shallow),
        'E': std_map(q, k, layers.std_qk_shallow),
    }
    raw = {name: value.view(frames, *grid_hw) for name, value in raw.items()}
    norm = {name: minmax_per_frame(value, config.eps) for name, value in raw.items()}
    product = (1 - norm['A']) * (1 - norm['B']) * norm['Cd'] * (1 - norm['Dk']) * norm['E']
    saliency = minmax_per_frame(product, config.eps)
    has_window = band.has_window(device)
    # A frame without any source frame has no temporal cue: its statistics are zero, and it
    # must not get the per-frame normalisation's guaranteed peak of 1.
    saliency = saliency * has_window.view(-1, 1, 1)
    return CueMaps(saliency=saliency, raw=raw, has_window=has_window, window=band)


def usable_cues(cues: CueMaps, min_contrast: float = 0.0) -> torch.Tensor:
    """Frames whose cue may produce a mask: a window exists and the static-scene gate passes.

    The gate is per frame, so in a rig it is per view and step: a camera that sees nothing
    move is silenced on its own even when another camera sees motion.

    Args:
        cues: the window's cue maps.
        min_contrast: gate threshold on :func:`cue_contrast` (0 = off, release behaviour).

    Returns:
        [S] bool.

    """
    usable = cues.has_window
    if min_contrast > 0:
        usable = usable & (cue_contrast(cues.raw) >= min_contrast)
    return usable


def dynamic_saliency(
    q: Mapping[int, torch.Tensor],
    k: Mapping[int, torch.Tensor],
    grid_hw: tuple[int, int],
    offsets: Sequence[int] = (-6, -4, -2, 2, 4, 6),
    eps: float = 1e-6,
    layers: CueLayers = CueLayers(),
    empty_window: EmptyWindowPolicy = 'nearest',
) -> torch.Tensor:
    """Dynamic saliency D of every frame (see module docstring).

    Args:
        q: global block -> queries [S,heads,N,d].
        k: global block -> keys [S,heads,N,d].
        grid_hw: (hp, wp).
        offsets: temporal window offsets.
        eps: normalisation epsilon.
        layers: block sets of the five maps.
        empty_window: policy for frames whose window is empty.

    Returns:
        [S,hp,wp] float32 in [0,1].

    """
    config = CueConfig(layers=layers, offsets=tuple(offsets), eps=eps, empty_window=empty_window)
    return compute_cues(q, k, grid_hw, config).saliency


def cue_contrast(raw: Mapping[str, torch.Tensor], eps: float = 1e-12) -> torch.Tensor:
    """Scale-free contrast of the raw statistics, per frame (input of the static-scene gate).

    Per-frame min-max normalisation stretches ANY variation to [0,1], even noise in a static
    frame. This measures how much variation there was before the stretch: for each raw map X,
    rho_X(t) = (max_p X - min_p X) / (median_p |X| + eps). Under a rescaling of q and k the
    numerator and denominator scale alike, so rho is scale-free. The contrast is the geometric
    mean of rho over the five maps.

    Args:
        raw: map name -> [S,hp,wp] raw statistic.

    Returns:
        [S] float32.

    """
    logs = []
    for value in raw.values():
        flat = value.reshape(value.shape[0], -1)
        spread = flat.max(dim=1).values - flat.min(dim=1).values
        scale = flat.abs().median(dim=1).values
        logs.append(torch.log(spread / (scale + eps) + eps))
    return torch.exp(torch.stack(logs).mean(dim=0))
