# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The VGGT4D window pipeline: pass 1, cues, coarse mask, masked pass 2, refinement.

One call processes one window of S frames end to end on the pipeline's device:

    pass 1   VGGT forward (camera + depth heads) capturing global-block q/k and DINOv2 patches
    cues     Gram statistics -> dynamic saliency D [S,hp,wp]          (motion.cues)
    coarse   feature clustering + multi-Otsu -> coarse masks [S,h,w]  (motion.coarse)
    pass 2   VGGT forward (camera head only) with the dynamic keys/values removed in the first
             5 frame and global blocks, reusing pass 1's patch features -> poses
    refine   reprojection test of coarse-dynamic 3D clusters -> refined masks (motion.refine)

Outputs follow the release: depth, confidence and intrinsics from pass 1, poses from pass 2.

Only the refinement's second half needs pass 2's poses: with ``overlap_streams`` on CUDA,
pass 1's heads and the refinement's first half (``prepare``: the outlier removal, right after
the heads; ``cluster``: the coarse-mask candidates and their 3D clusters) run on a second
stream next to the cues, the coarse stage and pass 2 (:mod:`motion.streams`).

A window may hold several synchronised cameras (:class:`motion.rig.RigLayout`, T steps x N
views, step-major): VGGT runs on all views together, the cue window compares each view with
itself at other steps, the coarse clustering and threshold are joint over the rig, and pass 2
removes the dynamic keys of every view.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
import functools
import gc
import time
from typing import Collection, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vggt4d_ros.geometry.image_transform import plan_resize
from vggt4d_ros.geometry.image_transform import ResizeCrop
from vggt4d_ros.geometry.image_transform import to_network
from vggt4d_ros.geometry.pose_encoding import pose_encoding_to_extri_intri
from vggt4d_ros.geometry.rigid import cam_to_world_from_extrinsics
from vggt4d_ros.model.hooks import CaptureRequest
from vggt4d_ros.model.hooks import KeyValueMask
from vggt4d_ros.motion.coarse import coarse_mask_tensors
from vggt4d_ros.motion.coarse import coarse_masks
from vggt4d_ros.motion.coarse import CoarseConfig
from vggt4d_ros.motion.coarse import CoarseResult
from vggt4d_ros.motion.coarse import feature_clusters
from vggt4d_ros.motion.cues import compute_cues
from vggt4d_ros.motion.cues import CueConfig
from vggt4d_ros.motion.cues import CueLayers
from vggt4d_ros.motion.cues import usable_cues
from vggt4d_ros.motion.graphs import bucket_ladder
from vggt4d_ros.motion.graphs import bucket_size
from vggt4d_ros.motion.graphs import GraphedFunction
from vggt4d_ros.motion.kmeans import kmeans
from vggt4d_ros.motion.kmeans import KMeansConfig
from vggt4d_ros.motion.kmeans import KMeansSteps
from vggt4d_ros.motion.kmeans import seed_uniforms
from vggt4d_ros.motion.refine import candidate_kmeans
from vggt4d_ros.motion.refine import Candidates
from vggt4d_ros.motion.refine import cluster_candidates
from vggt4d_ros.motion.refine import CompiledKnn
from vggt4d_ros.motion.refine import find_candidates
from vggt4d_ros.motion.refine import find_inliers
from vggt4d_ros.motion.refine import finish_refinement
from vggt4d_ros.motion.refine import keep_coarse
from vggt4d_ros.motion.refine import RefineConfig
from vggt4d_ros.motion.refine import RefinePlan
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.motion.rig import RigLayout
from vggt4d_ros.motion.streams import SideStream

STAGES = ('preprocess', 'pass1', 'heads1', 'cues', 'coarse', 'pass2', 'prepare', 'cluster',
          'refine')
RELEASE_DEPTH = 24
CLUSTER_GRAPHS = 12
#: ``torch.compile`` modes whose code replays CUDA graphs (cudagraph trees).
CUDAGRAPH_COMPILE_MODES = ('reduce-overhead', 'max-autotune')


@dataclass(frozen=True)
class PipelineConfig:
    """Every setting of the window pipeline (defaults = the release, spec section 2.9).

    Attributes:
        cues: temporal window, cue layers, epsilon (layers are for the 24-block model; other
            depths get them rescaled, see :func:`layers_for_depth`).
        coarse: feature k-means and multi-Otsu settings.
        refine: stage-3 settings.
        masked_frame_blocks: frame-attention blocks whose dynamic keys are removed in pass 2.
        masked_global_blocks: global-attention blocks likewise.
        compile_mode: ``torch.compile`` mode (None = default; e.g.
            'max-autotune-no-cudagraphs').

    """

    resize_mode: Literal['crop', 'pad'] = field(default='crop', metadata={
        'description': "VGGT preprocessing, 'crop' (release) or 'pad'."})
    cues: CueConfig = CueConfig()
    coarse: CoarseConfig = CoarseConfig()
    refine: RefineConfig = RefineConfig()
    refine_enabled: bool = field(default=True, metadata={
        'description': 'False = refined masks are the coarse masks (skips stage 3).'})
    masked_frame_blocks: tuple[int, ...] = (0, 1, 2, 3, 4)
    masked_global_blocks: tuple[int, ...] = (0, 1, 2, 3, 4)
    token_mask_threshold: float = field(default=0.5, metadata={
        'description': 'a patch is dynamic when max-pooled mask > this (release 0.5).',
        'range': (0.0, 1.0)})
    min_cue_contrast: float = field(default=0.0, metadata={
        'description': 'static-scene gate; frames whose raw-statistic contrast '
        '(:func:`motion.cues.cue_contrast`) is below it get no dynamic mask. 0 = off (release '
        "behaviour: every frame's saliency peaks at 1). Calibrate on real weights.",
        'range': (0.0, 1000000.0)})
    profile: bool = field(default=False, metadata={
        'description':
            'synchronise the device after every stage for exact wall-clock timings; off, stages '
            'are timed with CUDA events and the host waits once at the end.'})
    cuda_graphs: bool = field(default=True, metadata={
        'description':
            "on CUDA, replay the coarse stage and the refinement's 3D k-means from CUDA graphs "
            '(recorded once per window size / candidate bucket): same kernels, same results, '
            'without the launch overhead of their thousands of small kernels.'})
    compile_model: bool = field(default=False, metadata={
        'description':
            'on CUDA, ``torch.compile`` the aggregator, the DINOv2 embedding and the camera and '
            "depth heads in place when the pipeline is built (state_dict keys kept; each pass's "
            'blocks trace as one graph). The first window of each size pays the compilation (~70'
            ' s on an H200).'})
    compile_mode: str | None = None
    fused_gelu: bool = field(default=True, metadata={
        'description':
            "run every MLP's fc1 + GELU as one GEMM with a GELU epilogue (tanh form) when the "
            'network runs in half precision on CUDA (``model.layers.linear_gelu``; 3.5 ms less '
            'per 8-frame window on an H200, differences far below bf16 rounding). Sets a flag on'
            " the model's MLPs."})
    attention: Literal['auto', 'sdpa', 'flash4', 'flex', 'flash4-global'] = field(
        default='sdpa', metadata={
            'description':
                "attention kernel of the network: 'sdpa' (PyTorch's choice, cuDNN on Hopper; the "
                "default), 'flash4' (FlashAttention-4, optional flash-attn-4 package, Hopper and "
                "newer), 'flex' (compiled FlexAttention), 'auto' (flash4 where it can run), "
                "'flash4-global' (flash4 for the global blocks, sdpa for the per-frame blocks). A "
                'call the kernel cannot run (CPU, fp32, missing package, non-key mask) falls back '
                'to sdpa, logged once (``model.attention``).'})
    precision: Literal['exact', 'fast'] = field(default='exact', metadata={
        'description':
            "'exact': the network in its compute dtype. 'fast': FP8 (e4m3) GEMMs in the "
            "aggregator's 48 blocks (weight scales computed once at preparation, input scales "
            'per call; ``model.fp8``): faster on GPUs with FP8 tensor cores, results DEVIATE '
            '(tools/bench_fast_mode.py); check mask quality on the real checkpoint first.'})
    fp8_scaling: Literal['row', 'tensor'] = field(default='row', metadata={
        'description':
            "fast mode's FP8 scales: 'row' (one per token and per output channel, robust to "
            "outlier tokens) or 'tensor' (one per tensor)."})
    chunk_frames: int | None = field(default=32, metadata={
        'description':
            'long windows: frames per chunk of the post-processing that would otherwise hold '
            "per-frame-pair or [S, candidates, clusters] buffers (the refinement's 3D k-means, "
            'projection into the other views, cluster sums); a longer window also runs the '
            'coarse stage and the 3D k-means without CUDA graphs (their launch overhead is '
            'nothing next to its network passes, their memory pools would stay allocated). A '
            'window of at most this many frames runs exactly the short-window path. The cue '
            'statistics chunk by ``cues.frame_chunk`` and read a band of +-6 frames; the DPT '
            'head runs 8 frames at a time. (In Python, None = never chunk.)',
        'range': (1, 100000)})
    reuse_frame_features: bool = field(default=True, metadata={
        'description':
            "keep the network image and DINOv2 patch features of the last window's frames and "
            'reuse them for the frames a sliding window shares with it (same stamp, same image '
            'array): with stride 4 of 8, half of the embedding work. The embedding is per frame,'
            ' so the features are the same up to GEMM rounding.'})
    overlap_streams: bool = field(default=False, metadata={
        'description':
            "on CUDA, queue pass 1's heads and the refinement's pose-free half (outlier removal,"
            ' candidates, 3D clusters) on a second CUDA stream, concurrent with the cues, the '
            'coarse stage and pass 2 (``motion.streams``): same kernels, same results, in '
            'another order; the stage times of the two streams then overlap. Off with '
            '``profile`` and for a long window (``chunk_frames``), which run serially.'})
    overlap_start: Literal['pass1', 'coarse'] = field(default='pass1', metadata={
        'description':
            "with ``overlap_streams``, where the side stream starts: 'pass1' (pass 1's heads and"
            " the outlier removal next to the cues and the coarse stage, whose small kernels "
            "then slow down: 6.5 -> 17.9 ms on an H100, docs/performance.md section 10) or "
            "'coarse' (all side work after the coarse stage, next to pass 2 only; pass 1's "
            'layer tokens, ~140 MB at 8 frames, are kept until then). Same results.'})


def layers_for_depth(layers: CueLayers, depth: int) -> CueLayers:
    """Map release block indices (24-block model) onto a model with ``depth`` blocks.

    Index l becomes floor(l * depth / 24), duplicates removed; identity for depth 24. This
    keeps the shallow / middle / deep structure for the tiny test model.
    """
    if depth == RELEASE_DEPTH:
        return layers

    def scale(ids: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted({min(i * depth // RELEASE_DEPTH, depth - 1) for i in ids}))

    return CueLayers(mean_qq_middle=scale(layers.mean_qq_middle),
                     std_qq_deep=scale(layers.std_qq_deep),
                     mean_qq_deep=scale(layers.mean_qq_deep),
                     mean_kk_shallow=scale(layers.mean_kk_shallow),
                     std_qk_shallow=scale(layers.std_qk_shallow))


def token_mask(masks: torch.Tensor, patch: int = 14, threshold: float = 0.5) -> torch.Tensor:
    """Pixel masks [S,h,w] -> patch masks [S,N]: a patch is dynamic if any pixel is (max pool).

    Args:
        masks: [S,h,w] bool.

    Returns:
        [S,N] bool, N = (h/patch)*(w/patch), row-major.

    """
    pooled = F.max_pool2d(masks.float().unsqueeze(1), kernel_size=patch, stride=patch)
    return (pooled.squeeze(1) > threshold).flatten(1)


class _StageTimer:
    """Per-stage timings: CUDA events (one wait at the end) or synchronised wall clock.

    A stage run on the side stream (``PipelineConfig.overlap_streams``) records its events on
    that stream: its time is its own span there, overlapping the main stream's stages, so the
    stage times then add up to more than the total.
    """

    def __init__(self, device: torch.device, profile: bool) -> None:
        self.use_events = device.type == 'cuda' and not profile
        self.sync = device.type == 'cuda' and profile
        self.device = device
        self.events: dict[str, tuple[torch.cuda.Event, torch.cuda.Event]] = {}
        self.seconds: dict[str, float] = {}
        self.side_stages: list[str] = []

    @contextlib.contextmanager
    def stage(self, name: str, side: bool = False) -> Iterator[None]:
        """Time the block as stage ``name``; ``side``: it queues on the side stream."""
        if side:
            self.side_stages.append(name)
        # Named range for torch.profiler (costs nothing when no profiler is running).
        with torch.profiler.record_function(f'stage:{name}'):
            yield from self._stage(name)

    def _stage(self, name: str) -> Iterator[None]:
        if self.use_events:
            start, stop = (torch.cuda.Event(enable_timing=True),
                           torch.cuda.Event(enable_timing=True))
            start.record()  # on the current stream: the side stream inside SideStream.run
            yield
            stop.record()
            self.events[name] = (start, stop)
            return
        if self.sync:
            torch.cuda.synchronize(self.device)
        begin = time.perf_counter()
        yield
        if self.sync:
            torch.cuda.synchronize(self.device)
        self.seconds[name] = time.perf_counter() - begin

    def finish(self) -> dict[str, float]:
        """Seconds per stage, and 'total': the first start to the last stop (GPU timeline).

        With events the total also holds the device's idle gaps between stages. When stages
        ran on the side stream, 'side' is that stream's span (first side start to last side
        stop, its waits for the main stream included).
        """
        if not self.events:
            timings = dict(self.seconds)
            timings['total'] = sum(timings.values())
            return timings
        spans = list(self.events.values())
        # The last stage ('refine') is queued on the main stream after it joined the side
        # stream: once it has completed, every earlier event of both streams has too.
        spans[-1][1].synchronize()
        for name, (start, stop) in self.events.items():
            self.seconds[name] = start.elapsed_time(stop) / 1000.0
        timings = dict(self.seconds)
        timings['total'] = spans[0][0].elapsed_time(spans[-1][1]) / 1000.0
        side = [self.events[name] for name in self.side_stages if name in self.events]
        if side:
            timings['side'] = side[0][0].elapsed_time(side[-1][1]) / 1000.0
        return timings


@dataclass(frozen=True)
class _CachedFrame:
    """What a frame of the last window costs to recompute: network image and DINOv2 features.

    ``source`` is the caller's image array: a later window reuses the entry only when it hands
    in the very same array with the same stamp (an identity check, no pixel comparison).
    """

    source: np.ndarray
    image: torch.Tensor  # [3,h,w] float32
    features: torch.Tensor  # [N,C] compute dtype


@dataclass
class _Aggregated:
    """Pass 1's aggregator outputs: what the heads, the cues and pass 2 read."""

    tokens: list[torch.Tensor | None]
    patch_start_idx: int
    q: dict[int, torch.Tensor]
    k: dict[int, torch.Tensor]
    patch_features: torch.Tensor


@dataclass
class _HeadsOne:
    """Pass 1's head outputs (float32)."""

    depth: torch.Tensor  # [S,h,w]
    depth_conf: torch.Tensor  # [S,h,w]
    intrinsics: torch.Tensor  # [S,3,3]


def _check_prepared(model: torch.nn.Module, device: torch.device) -> None:
    """Raise ValueError unless ``model`` is in eval mode with its parameters on ``device``."""
    hint = 'run vggt4d_ros.motion.prepare.prepare_model(model, config, device) first'
    if model.training:
        raise ValueError(f'the VGGT model is in training mode: {hint}')
    # One parameter tells: prepare_model moves them together.
    param = next(model.parameters(), None)
    if param is not None and not (param.device.type == device.type and (
            device.index is None or param.device.index == device.index)):
        raise ValueError(f'the VGGT model is on {param.device}, the pipeline on {device}: '
                         f'{hint}')


class VGGT4DPipeline:
    """Run VGGT4D on windows of frames with a given VGGT model.

    The pipeline never moves, patches or compiles the model: the caller readies it once with
    :func:`vggt4d_ros.motion.prepare.prepare_model` (device, eval mode, fused GELU, compile).

    Args:
        model: a ``vggt4d_ros.model.vggt.VGGT`` (weights loaded by the caller), in eval mode on
            ``device`` (:func:`~vggt4d_ros.motion.prepare.prepare_model`).
        config: pipeline settings.
        device: where everything runs.
        dtype: compute dtype of the network. With fp32 weights and a lower ``dtype`` on CUDA
            the passes run under autocast (the release's mode); with weights already in
            ``dtype`` (``model.to(dtype)``) no autocast is used; on CPU autocast is never used.
            Post-processing is fp32.

    """

    def __init__(self, model: torch.nn.Module, config: PipelineConfig = PipelineConfig(),
                 device: torch.device | str = 'cpu', dtype: torch.dtype = torch.float32
                 ) -> None:
        self.device = torch.device(device)
        _check_prepared(model, self.device)
        self.model = model
        self.config = config
        self.dtype = dtype
        depth = model.config.depth
        self.patch = model.config.patch_size
        self.cue_config = replace(config.cues,
                                  layers=layers_for_depth(config.cues.layers, depth))
        compiling = config.compile_model and self.device.type == 'cuda'
        # The coarse k-means has one shape per window size: compiled with the model, its steps
        # fuse (8.2 -> 6.5 ms for 8 frames on an H200). The refinement's 3D k-means changes
        # size with the candidate bucket every window: compiled with dynamic shapes (once for
        # all buckets), so that its Lloyd step never stores the [B,M,k] membership.
        self.coarse_config = replace(
            config.coarse, compile_kmeans=config.coarse.compile_kmeans or compiling)
        self.refine_config = replace(
            config.refine, compile_kmeans=config.refine.compile_kmeans or compiling)
        on_cuda = self.device.type == 'cuda'
        # The k-means step functions of each clustering, compiled (once, by this pipeline)
        # when asked and on CUDA; nothing is cached process-wide.
        self._coarse_steps = KMeansSteps(compiled=self.coarse_config.compile_kmeans and on_cuda)
        self._cluster_steps = KMeansSteps(
            compiled=self.refine_config.compile_kmeans and on_cuda, dynamic=True)
        self.frame_blocks = tuple(b for b in config.masked_frame_blocks if b < depth)
        self.global_blocks = tuple(b for b in config.masked_global_blocks if b < depth)
        self._coarse_graph = GraphedFunction(coarse_mask_tensors, max_graphs=3)
        # Candidate counts change every window: power-of-two buckets (at most ~10 up to a full
        # frame) and enough graphs kept that a live stream stops recording after a few windows.
        # With a 1.25 ladder and 3 graphs, every window evicted and re-recorded one: refinement
        # took 150-190 ms instead of ~20 ms on an H200 (docs/performance.md). Each graph's memory
        # pool is sized for its bucket; the power-of-two series sums to < 2x the largest.
        self._cluster_graph = GraphedFunction(_cluster_tensors, max_graphs=CLUSTER_GRAPHS)
        # The outlier removal's compiled kNN kernel (CUDA, refine.compile_search): compiled
        # once for this pipeline; a compiler failure makes this pipeline's search eager.
        self.knn_search = CompiledKnn()
        self._uniforms: dict[tuple[int, int, int], torch.Tensor] = {}
        self._frame_cache: dict[tuple[int, int], _CachedFrame] = {}
        self._frame_cache_plan: ResizeCrop | None = None
        self.reused_frames = 0
        self.oom_retries = 0
        self._side_stream: torch.cuda.Stream | None = None  # made on first use

    def _seed_draws(self, km: KMeansConfig, batch: int) -> torch.Tensor:
        """k-means++ draws on the device, made once per (k, batch, seed)."""
        key = (km.clusters, batch, km.seed)
        if key not in self._uniforms:
            self._uniforms[key] = seed_uniforms(km.clusters, batch, km.seed).to(self.device)
        return self._uniforms[key]

    def _graphs_on(self) -> bool:
        return self.config.cuda_graphs and self.device.type == 'cuda'

    def is_long_window(self, frames: int) -> bool:
        """Whether a window of ``frames`` frames runs chunked (``PipelineConfig.chunk_frames``)."""
        return self.config.chunk_frames is not None and frames > self.config.chunk_frames

    def side_stages(self, frames: int) -> tuple[str, ...]:
        """Stages a window of ``frames`` frames queues on the side stream (() = all serial).

        ``PipelineConfig.overlap_streams`` on CUDA, neither ``profile`` (which times the stages
        one by one) nor a long window (whose token and head buffers would stay allocated next
        to pass 2's). The heads stay on the main stream when they are compiled with CUDA
        graphs (``compile_mode`` 'reduce-overhead' or 'max-autotune'): cudagraph trees hand
        out outputs in a memory pool that their next replay reuses, tracked for one stream.
        """
        config = self.config
        if not (config.overlap_streams and self.device.type == 'cuda') or config.profile \
                or self.is_long_window(frames):
            return ()
        graphed_heads = config.compile_model and config.compile_mode in CUDAGRAPH_COMPILE_MODES
        stages = () if graphed_heads else ('heads1',)
        return stages + (('prepare', 'cluster') if config.refine_enabled else ())

    def _streams(self, on_side: Collection[str]) -> SideStream:
        """Return the window's stream pair (no side stream when no stage is ``on_side``)."""
        if not on_side:
            return SideStream(None)
        if self._side_stream is None:
            self._side_stream = torch.cuda.Stream(self.device)
        return SideStream(self._side_stream)

    def _coarse(self, saliency: torch.Tensor, features: torch.Tensor,
                image_hw: tuple[int, int], graphs: bool = True) -> CoarseResult:
        """Stage 1c, replayed from a CUDA graph when enabled (and ``graphs``)."""
        if not (graphs and self._graphs_on()):
            return coarse_masks(saliency, features, image_hw, self.coarse_config,
                                steps=self._coarse_steps)
        km = feature_clusters(self.coarse_config, features[..., 0].numel())
        outputs = self._coarse_graph(saliency, features, self._seed_draws(km, 1),
                                     image_hw=tuple(image_hw), config=self.coarse_config,
                                     steps=self._coarse_steps)
        return CoarseResult(*outputs)

    def _cluster(self, points: torch.Tensor, valid: torch.Tensor, km: KMeansConfig,
                 uniforms: torch.Tensor | None = None, graphs: bool = True) -> torch.Tensor:
        """Refinement 3D k-means; on CUDA graphs, candidates padded to a bucket size.

        ``uniforms``: the sets' k-means++ draws (None: those of a batch of ``points``' size).
        """
        if not (graphs and self._graphs_on()):
            return kmeans(points, km, valid, uniforms, steps=self._cluster_steps)[0]
        frames, count, _ = points.shape
        padding = bucket_size(count, ratio=2.0) - count
        # Padding points are invalid: never drawn, never members (labels -1, cut off below).
        points = F.pad(points, (0, 0, 0, padding))
        valid = F.pad(valid, (0, padding))
        draws = self._seed_draws(km, frames) if uniforms is None else uniforms
        labels = self._cluster_graph(points, valid, draws, config=km,
                                     steps=self._cluster_steps)[0]
        return labels[:, :count]

    def record_refinement_graphs(self, frames: int, camera_hw: tuple[int, int]) -> int:
        """Record the refinement k-means graph of every candidate bucket a window can reach.

        A live window whose candidate count lands in a bucket not seen before records that
        bucket's graph (two runs and a capture) inside its own latency. Recording the whole
        ladder here, at warm-up, moves that cost to activation (9 buckets for 392x518). (On an
        H200 the node's start-up transient turned out to have another cause: cuDNN plans are
        cached per thread, see ``ros/node.py``.)

        Args:
            frames: window size.
            camera_hw: camera image size; the network size follows from ``resize_mode``.

        Returns:
            graphs recorded (0 without CUDA graphs, with the refinement off, or for a long
            window, which runs without graphs).

        """
        if not (self._graphs_on() and self.config.refine_enabled) or self.is_long_window(frames):
            return 0
        height, width = plan_resize(tuple(camera_hw), mode=self.config.resize_mode).network_hw
        # Bounded by what is kept; the largest buckets are the costly ones to record live.
        sizes = bucket_ladder(height * width, ratio=2.0)[-CLUSTER_GRAPHS:]
        km = candidate_kmeans(self.refine_config)
        before = self._cluster_graph.captures
        generator = torch.Generator(device=self.device).manual_seed(0)
        for size in sizes:
            points = torch.rand(frames, size, 3, device=self.device, generator=generator)
            valid = torch.ones(frames, size, dtype=torch.bool, device=self.device)
            self._cluster(points, valid, km)
        return self._cluster_graph.captures - before

    def _autocast(self) -> contextlib.AbstractContextManager:
        weights_dtype = next(self.model.parameters()).dtype
        if self.dtype == weights_dtype or self.device.type != 'cuda':
            return contextlib.nullcontext()
        return torch.autocast(device_type='cuda', dtype=self.dtype)

    def run(self, frames: Sequence[np.ndarray], stamps_ns: Sequence[int],
            plan: ResizeCrop | None = None, layout: RigLayout | None = None) -> WindowResult:
        """Process one window of camera images.

        A CUDA out-of-memory error is retried once after releasing cached memory (recorded
        graphs and the allocator's cache): a window that fits can fail when blocks cached for an
        earlier, larger window or another size fragment the memory. A second failure raises
        ``torch.cuda.OutOfMemoryError`` to the caller.

        Frames handed in again by a later window (same array, same stamp) reuse their network
        image and DINOv2 features (``PipelineConfig.reuse_frame_features``).

        Args:
            frames: S images HxWx3 uint8 RGB, all the same size (for a rig: every camera
                the same size, frames in the layout's step-major order).
            stamps_ns: S source stamps (each frame its own camera's stamp).
            plan: camera -> network mapping; None = VGGT's (518 wide, ``resize_mode``).
            layout: rig layout of the frames; None = one camera, S steps.

        Returns:
            WindowResult on the pipeline's device.

        """
        layout = _layout_for(len(frames), layout)
        try:
            return self._run_frames(frames, stamps_ns, plan, layout)
        except torch.cuda.OutOfMemoryError:
            self.release_memory()
            self.oom_retries += 1
            return self._run_frames(frames, stamps_ns, plan, layout)

    def release_memory(self) -> None:
        """Drop recorded CUDA graphs and return cached blocks to the device."""
        if self.device.type == 'cuda':
            # Nothing queued on either stream (a failed window's side work) still uses a
            # graph or a block dropped here.
            torch.cuda.synchronize(self.device)
        self._coarse_graph.clear()
        self._cluster_graph.clear()
        self._frame_cache = {}
        gc.collect()
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()

    def _run_frames(self, frames: Sequence[np.ndarray], stamps_ns: Sequence[int],
                    plan: ResizeCrop | None, layout: RigLayout) -> WindowResult:
        if len(frames) != len(stamps_ns):
            raise ValueError(f'{len(frames)} frames but {len(stamps_ns)} stamps')
        if not frames:
            raise ValueError('a window needs at least one frame')
        begin = time.perf_counter()
        if plan is None:
            plan = plan_resize(tuple(frames[0].shape[:2]), mode=self.config.resize_mode)
        views = layout.view_of_frame
        cached = self._cached_frames(frames, stamps_ns, views, plan)
        missing = [i for i, entry in enumerate(cached) if entry is None]
        fresh = (to_network([frames[i] for i in missing], plan, device=self.device)
                 if missing else None)
        images = _fill_missing([None if entry is None else entry.image for entry in cached],
                               fresh)
        preprocess = time.perf_counter() - begin
        known = [None if entry is None else entry.features for entry in cached]
        result, features = self._run_tensor(images, stamps_ns, plan, known, layout)
        result.timings['preprocess'] = preprocess
        result.timings['total'] += preprocess
        self.reused_frames += len(frames) - len(missing)
        if self.config.reuse_frame_features:
            # Keyed by (view, stamp): the cameras of one rig step may share a stamp.
            self._frame_cache = {
                (view, int(stamp)): _CachedFrame(frame, images[i], features[0, i])
                for i, (frame, stamp, view) in enumerate(zip(frames, stamps_ns, views))}
            self._frame_cache_plan = plan
        return result

    def _cached_frames(self, frames: Sequence[np.ndarray], stamps_ns: Sequence[int],
                       views: Sequence[int], plan: ResizeCrop) -> list[_CachedFrame | None]:
        """Look up each frame in the last window's cache (None where it must be computed)."""
        if not self.config.reuse_frame_features or plan != self._frame_cache_plan:
            return [None] * len(frames)
        entries = [self._frame_cache.get((view, int(stamp)))
                   for stamp, view in zip(stamps_ns, views)]
        return [entry if entry is not None and entry.source is frame else None
                for entry, frame in zip(entries, frames)]

    def run_tensor(self, images: torch.Tensor, stamps_ns: Sequence[int],
                   transform: ResizeCrop | None = None,
                   frame_features: Sequence[torch.Tensor | None] | None = None,
                   layout: RigLayout | None = None) -> WindowResult:
        """Process one preprocessed window.

        Args:
            images: [S,3,h,w] float in [0,1], h and w multiples of 14.
            stamps_ns: S stamps.
            transform: camera <-> network mapping; None = the images are the camera images.
            frame_features: per frame, its DINOv2 patch features [N,C] from an earlier window,
                or None where they must be computed (None = compute all).
            layout: rig layout of the S frames (step-major); None = one camera, S steps.

        Returns:
            WindowResult on the pipeline's device.

        """
        layout = _layout_for(images.shape[0], layout)
        return self._run_tensor(images, stamps_ns, transform, frame_features, layout)[0]

    @torch.no_grad()
    def _run_tensor(self, images: torch.Tensor, stamps_ns: Sequence[int],
                    transform: ResizeCrop | None,
                    frame_features: Sequence[torch.Tensor | None] | None,
                    layout: RigLayout) -> tuple[WindowResult, torch.Tensor]:
        """:meth:`run_tensor`, also returning the window's patch features [1,S,N,C]."""
        frames, _, height, width = images.shape
        if len(stamps_ns) != frames:
            raise ValueError(f'{frames} images but {len(stamps_ns)} stamps')
        if height % self.patch or width % self.patch:
            raise ValueError(f'image size {height}x{width} is not a multiple of {self.patch}')
        if transform is None:
            transform = ResizeCrop(camera_hw=(height, width), resized_hw=(height, width),
                                   network_hw=(height, width), offset_yx=(0, 0))
        images = images.to(self.device, torch.float32)
        timer = _StageTimer(self.device, self.config.profile)
        result, features = self._window(images, stamps_ns, transform, frame_features, layout,
                                        timer)
        result.timings = timer.finish()
        return result, features

    def _window(self, images: torch.Tensor, stamps_ns: Sequence[int], transform: ResizeCrop,
                frame_features: Sequence[torch.Tensor | None] | None, layout: RigLayout,
                timer: _StageTimer) -> tuple[WindowResult, torch.Tensor]:
        """Run the five stages (module docstring), timed by ``timer``."""
        height, width = images.shape[-2:]
        grid_hw = (height // self.patch, width // self.patch)
        # A long window skips the CUDA graphs (launch overhead is nothing next to its network
        # passes, and each graph's memory pool would stay allocated) and chunks its frames.
        graphs = not self.is_long_window(images.shape[0])
        chunk = self.config.chunk_frames
        on_side = set(self.side_stages(images.shape[0]))
        lanes = self._streams(on_side)
        with timer.stage('pass1'):
            first = self._aggregate_one(images, frame_features)
        # Side work queued after the coarse stage runs next to pass 2 only (overlap_start).
        defer_heads = bool(on_side & {'heads1', 'prepare'}) \
            and self.config.overlap_start == 'coarse'
        if not defer_heads:
            heads, kept = self._heads_and_inliers(first, images, lanes, on_side, timer)
            first.tokens = []  # the layer outputs only feed the heads (~140 MB for 8 frames)
        with timer.stage('cues'):
            cues = compute_cues(first.q, first.k, grid_hw, self.cue_config, layout)
            cue_ok = usable_cues(cues, self.config.min_cue_contrast)
            saliency = cues.saliency * cue_ok.view(-1, 1, 1)
            del first.q, first.k
        with timer.stage('coarse'):
            coarse = self._coarse(saliency, first.patch_features, (height, width), graphs)
            # Frames without a usable cue get no mask even if clusters shared with other
            # frames carry saliency.
            coarse_mask = coarse.masks & cue_ok.view(-1, 1, 1)
        if defer_heads:
            heads, kept = self._heads_and_inliers(first, images, lanes, on_side, timer)
            first.tokens = []
        if 'cluster' in on_side:
            # The side stream's wait for the coarse mask is queued before pass 2 (an event
            # recorded after pass 2 would hold the side work back until pass 2 ends).
            lanes.follow_main()
            lanes.to_side(coarse_mask, images)  # made on the main stream, read on the side
        with timer.stage('pass2'):
            extrinsics = self._pass_two(images, coarse_mask, first.patch_features)
        plan = None
        if self.config.refine_enabled:
            plan = self._refine_plan(images, heads, coarse_mask, kept, lanes,
                                     'cluster' in on_side, timer, graphs)
        del kept
        # Made on the side stream, read by the refinement and by the caller (the result) on
        # the main stream: no later side-stream allocation may reuse them before that.
        lanes.to_main(heads, plan)
        lanes.join()  # only the refinement needs pass 2's poses and the side's work
        with timer.stage('refine'):
            if plan is not None:
                cam_to_world = cam_to_world_from_extrinsics(extrinsics)
                # Other steps only: another camera at the same instant is no motion evidence.
                pairs = None if layout.num_views == 1 else layout.temporal_pairs(images.device)
                refined = finish_refinement(plan, images, heads.depth, coarse_mask, cam_to_world,
                                            heads.intrinsics, self.refine_config, chunk,
                                            pairs).masks
            else:
                refined = coarse_mask.clone()
        result = WindowResult(
            stamps_ns=[int(s) for s in stamps_ns], images=images, depth=heads.depth,
            depth_conf=heads.depth_conf, intrinsics=heads.intrinsics, extrinsics=extrinsics,
            saliency=saliency, coarse_masks=coarse_mask, refined_masks=refined,
            transform=transform, timings={}, layout=layout)
        return result, first.patch_features

    def _heads_and_inliers(self, first: _Aggregated, images: torch.Tensor,
                           lanes: SideStream, on_side: set[str], timer: _StageTimer
                           ) -> tuple[_HeadsOne, Candidates | None]:
        """Pass 1's heads; with ``prepare`` on the side stream, also its outlier removal.

        Returns:
            the heads' outputs, and the inliers (:func:`motion.refine.find_inliers`) when the
            outlier removal was queued here (None: it runs serially after pass 2).

        """
        heads_on_side = 'heads1' in on_side
        if heads_on_side:
            lanes.follow_main()  # the heads read pass 1's layer tokens
            # The caller drops the tokens while the heads may still read them on the side
            # stream; the images stay alive, but a failed window frees them early.
            lanes.to_side(first.tokens, images)
        with lanes.run(heads_on_side), timer.stage('heads1', heads_on_side):
            heads = self._heads_one(first, images)
        if 'prepare' not in on_side:
            return heads, None
        # The outlier removal needs the heads only: queued now, it runs next to the cues and
        # the coarse stage (launch-bound, the device mostly idle). No host read.
        if not heads_on_side:
            lanes.follow_main()
            lanes.to_side(heads)  # made on the main stream, read on the side stream
        with lanes.run(), timer.stage('prepare', side=True):
            kept = find_inliers(heads.depth, heads.intrinsics, self.refine_config,
                                self.knn_search)
        return heads, kept

    def _refine_plan(self, images: torch.Tensor, heads: _HeadsOne, coarse_mask: torch.Tensor,
                     kept: Candidates | None, lanes: SideStream, on_side: bool,
                     timer: _StageTimer, graphs: bool) -> RefinePlan:
        """Run the refinement's pose-free half: candidates and their 3D clusters (camera frame).

        Serially (``kept`` None) after pass 2: outlier removal and candidates, then clusters.
        Overlapped, the outlier removal ran on the side stream already (``kept``), and the
        caller queues this after every launch of pass 2: the cluster stage's host read (the
        candidate count) waits for the side stream only, while the device runs pass 2.
        """
        refine = self.refine_config
        if kept is None:
            with timer.stage('prepare'):
                found = find_candidates(heads.depth, coarse_mask, heads.intrinsics, refine,
                                        self.knn_search)
        with lanes.run(on_side), timer.stage('cluster', on_side):
            if kept is not None:
                found = keep_coarse(kept, coarse_mask)
            return cluster_candidates(found, images, refine,
                                      functools.partial(self._cluster, graphs=graphs),
                                      self.config.chunk_frames)

    def _patch_features(self, images: torch.Tensor,
                        known: Sequence[torch.Tensor | None] | None) -> torch.Tensor:
        """DINOv2 patch features [1,S,N,C]: the known ones reused, the others embedded."""
        known = list(known) if known is not None else [None] * images.shape[0]
        if len(known) != images.shape[0]:
            raise ValueError(f'{len(known)} frame features for {images.shape[0]} images')
        missing = [i for i, features in enumerate(known) if features is None]
        fresh = None
        if missing:
            with self._autocast():
                fresh = self.model.aggregator.embed_patches(images[missing].unsqueeze(0))[0]
        return _fill_missing(known, fresh).unsqueeze(0)

    def _aggregate_one(self, images: torch.Tensor,
                       frame_features: Sequence[torch.Tensor | None] | None = None
                       ) -> _Aggregated:
        """Pass 1's DINOv2 features and aggregator, capturing the cue layers' q/k."""
        layers = self.cue_config.layers
        request = CaptureRequest(q_global_blocks=layers.q_blocks(),
                                 k_global_blocks=layers.k_blocks(), patch_features=True)
        features = self._patch_features(images, frame_features)
        with self._autocast():
            tokens, patch_start_idx, captures = self.model.aggregator(
                images.unsqueeze(0), capture=request, patch_tokens=features)
        return _Aggregated(tokens=tokens, patch_start_idx=patch_start_idx,
                           q={b: t[0] for b, t in captures.q.items()},
                           k={b: t[0] for b, t in captures.k.items()},
                           patch_features=captures.patch_features)

    def _heads_one(self, first: _Aggregated, images: torch.Tensor) -> _HeadsOne:
        """Pass 1's camera and depth heads -> depth, confidence, intrinsics."""
        with self._autocast():
            out = self.model.run_heads(first.tokens, images.unsqueeze(0), first.patch_start_idx,
                                       heads={'camera', 'depth'})
        _, intrinsics = pose_encoding_to_extri_intri(out['pose_enc'][0].float(),
                                                     tuple(images.shape[-2:]))
        return _HeadsOne(depth=out['depth'][0, ..., 0].float(),
                         depth_conf=out['depth_conf'][0].float(),
                         intrinsics=intrinsics.float())

    def _pass_two(self, images: torch.Tensor, masks: torch.Tensor,
                  patch_features: torch.Tensor) -> torch.Tensor:
        dynamic = token_mask(masks, self.patch, self.config.token_mask_threshold)
        kv_mask = KeyValueMask(dynamic=dynamic.unsqueeze(0), frame_blocks=self.frame_blocks,
                               global_blocks=self.global_blocks)
        with self._autocast():
            out = self.model(images, kv_mask=kv_mask, heads={'camera'},
                             patch_tokens=patch_features)
        extrinsics, _ = pose_encoding_to_extri_intri(out['pose_enc'][0].float(),
                                                     tuple(images.shape[-2:]))
        return extrinsics.float()


def _layout_for(num_frames: int, layout: RigLayout | None) -> RigLayout:
    """Return the window's layout (None = one camera), checked against the frame count."""
    if layout is None:
        return RigLayout.single(num_frames)
    layout.check(num_frames)
    return layout


def _fill_missing(known: Sequence[torch.Tensor | None],
                  fresh: torch.Tensor | None) -> torch.Tensor:
    """Stack per-frame tensors: the known ones, and the rows of ``fresh`` where None, in order.

    Args:
        known: S tensors [...] or None.
        fresh: [M,...] for the M None entries (None when there are none).

    Returns:
        [S,...].

    """
    if fresh is not None and len(fresh) == len(known):
        return fresh  # nothing reused: no copy
    rows = iter(() if fresh is None else fresh)
    return torch.stack([next(rows) if item is None else item for item in known])


def _cluster_tensors(points: torch.Tensor, valid: torch.Tensor, uniforms: torch.Tensor, *,
                     config: KMeansConfig, steps: KMeansSteps | None = None
                     ) -> tuple[torch.Tensor]:
    """Labels of :func:`motion.kmeans.kmeans` as a 1-tuple (graph-capturable form).

    ``steps``: the k-means step functions (compiled with dynamic shapes: one compilation for
    every bucket); None = eager.
    """
    return (kmeans(points, config, valid, uniforms, steps=steps)[0],)
