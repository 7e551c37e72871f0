# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Long windows: chunked stages equal the whole-window ones, and memory grows linearly in S."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.motion.cues import compute_cues
from vggt4d_ros.motion.cues import CueConfig
from vggt4d_ros.motion.cues import CueLayers
from vggt4d_ros.motion.cues import cues_from_weights
from vggt4d_ros.motion.cues import rig_window_weights
from vggt4d_ros.motion.cues import window_weights
from vggt4d_ros.motion.cues import WindowBand
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.refine import refine_masks
from vggt4d_ros.motion.refine import RefineConfig
from vggt4d_ros.motion.rig import RigLayout

OFFSETS = (-6, -4, -2, 2, 4, 6)
LAYERS = CueLayers(mean_qq_middle=(1, 2), std_qq_deep=(3,), mean_qq_deep=(2, 3),
                   mean_kk_shallow=(0,), std_qk_shallow=(0,))
RESULT_FIELDS = ('depth', 'depth_conf', 'intrinsics', 'extrinsics', 'saliency', 'coarse_masks',
                 'refined_masks')


def _random_qk(frames: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q = {layer: torch.randn(frames, 2, 12, 8, generator=gen) for layer in range(4)}
    k = {0: torch.randn(frames, 2, 12, 8, generator=gen)}
    return q, k


def _images(frames: int, height: int, width: int, seed: int = 3) -> torch.Tensor:
    return torch.rand(frames, 3, height, width, generator=torch.Generator().manual_seed(seed))


# --- the banded window ---------------------------------------------------------------------


@pytest.mark.parametrize('views,steps', [(1, 40), (2, 20), (1, 3)])
def test_band_is_the_dense_window_and_its_blocks_stay_near_the_diagonal(views, steps):
    layout = RigLayout(views, steps)
    band = WindowBand.for_layout(layout, OFFSETS)
    dense = rig_window_weights(layout, OFFSETS)
    assert torch.equal(band.dense(), dense)
    assert torch.equal(WindowBand.from_dense(dense).dense(), dense)
    assert torch.equal(band.has_window(), dense.sum(1) > 0)
    frames = layout.num_frames
    for start in range(0, frames, 7):
        stop = min(start + 7, frames)
        lo, hi, block = band.block(start, stop)
        assert torch.equal(block, dense[start:stop, lo:hi])
        assert dense[start:stop].sum() == pytest.approx(block.sum().item())  # nothing outside
        if frames > 7:
            # 6 steps either side: a chunk reads at most its own frames and 12 steps more.
            assert hi - lo <= stop - start + 12 * views


def test_band_of_a_long_window_never_builds_the_square_matrix():
    band = WindowBand.for_layout(RigLayout.single(500), OFFSETS)
    lo, hi, block = band.block(240, 256)
    assert (lo, hi) == (234, 262) and block.shape == (16, 28)
    assert all(len(sources) <= len(OFFSETS) for sources in band.sources)


# --- chunked equals whole-window -----------------------------------------------------------


def test_chunked_cue_maps_equal_the_whole_window_ones():
    frames = 24
    q, k = _random_qk(frames)
    whole = compute_cues(q, k, (3, 4), CueConfig(layers=LAYERS, frame_chunk=frames))
    chunked = compute_cues(q, k, (3, 4), CueConfig(layers=LAYERS, frame_chunk=5))
    dense = cues_from_weights(q, k, (3, 4), window_weights(frames, OFFSETS),
                              CueConfig(layers=LAYERS, frame_chunk=frames))
    for name in whole.raw:
        torch.testing.assert_close(chunked.raw[name], whole.raw[name], rtol=1e-6, atol=1e-6)
        assert torch.equal(dense.raw[name], whole.raw[name])
    torch.testing.assert_close(chunked.saliency, whole.saliency, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('mode', ['cluster', 'gradient'])
def test_chunked_refinement_equals_the_whole_window(mode):
    frames, height, width = 12, 28, 42
    gen = torch.Generator().manual_seed(5)
    depth = 2 + torch.rand(frames, height, width, generator=gen)
    images = torch.rand(frames, 3, height, width, generator=gen)
    coarse = torch.rand(frames, height, width, generator=gen) > 0.6
    poses = torch.eye(4).repeat(frames, 1, 1)
    poses[:, 0, 3] = torch.linspace(0, 0.3, frames)
    intr = torch.tensor([[30.0, 0, width / 2], [0, 30.0, height / 2], [0, 0, 1]])
    intr = intr.expand(frames, 3, 3).clone()
    # A small budget makes the chunked path split the views of every reference frame.
    config = RefineConfig(mode=mode, point_budget=4 * height * width)
    whole = refine_masks(images, depth, coarse, poses, intr, config)
    chunked = refine_masks(images, depth, coarse, poses, intr, config, frame_chunk=5)
    assert torch.equal(chunked.labels, whole.labels)
    assert torch.equal(chunked.raw_masks, whole.raw_masks)
    assert torch.equal(chunked.masks, whole.masks)
    torch.testing.assert_close(chunked.scores, whole.scores, rtol=1e-5, atol=1e-6)
    assert whole.raw_masks.any() and not whole.raw_masks.all()


def test_chunked_window_equals_the_whole_window(model):
    frames = 24
    images = _images(frames, 28, 42)
    base = PipelineConfig(refine=RefineConfig(point_budget=2000))
    whole = VGGT4DPipeline(model, replace(base, chunk_frames=None,
                                          cues=CueConfig(frame_chunk=frames)))
    chunked = VGGT4DPipeline(model, replace(base, chunk_frames=5, cues=CueConfig(frame_chunk=5)))
    assert chunked.is_long_window(frames) and not whole.is_long_window(frames)
    expected = whole.run_tensor(images, list(range(frames)))
    result = chunked.run_tensor(images, list(range(frames)))
    for name in RESULT_FIELDS:
        ours, reference = getattr(result, name), getattr(expected, name)
        if ours.dtype == torch.bool:
            assert torch.equal(ours, reference), name
        else:
            torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6, msg=name)
    assert expected.coarse_masks.any() and expected.refined_masks.any()


# --- memory linear in S --------------------------------------------------------------------


class _AllocationTracker(TorchDispatchMode):
    """Every tensor an operator returns: (bytes of its storage, shape, operator).

    Storage bytes, not element counts: an ``expand`` view of a small tensor has a large shape
    but allocates nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int, tuple[int, ...], str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.device.type != 'meta':
                self.records.append((leaf.untyped_storage().nbytes(), tuple(leaf.shape),
                                     str(func)))
        return out

    def largest(self) -> tuple[int, tuple[int, ...], str]:
        return max(self.records)


def _track(model: VGGT, config: PipelineConfig, frames: int) -> _AllocationTracker:
    images = _images(frames, 28, 42)
    pipe = VGGT4DPipeline(model, config)
    tracker = _AllocationTracker()
    with torch.no_grad(), tracker:
        pipe.run_tensor(images, list(range(frames)))
    return tracker


# Long-window settings at the tiny model's scale: 8-frame chunks everywhere, and a projection
# budget of a chunk's candidate-view pairs. Few Lloyd iterations: the shapes are the same
# with 30, the CPU time is not.
SMALL, LARGE = 24, 48
LONG = PipelineConfig(chunk_frames=8, cues=CueConfig(frame_chunk=8),
                      refine=RefineConfig(point_budget=8 * 28 * 42, kmeans_iterations=3))


def test_no_buffer_grows_faster_than_the_window(model):
    """Doubling S at most doubles the largest buffer, and no [S,S] matrix appears."""
    short_run = _track(model, LONG, SMALL)
    long_run = _track(model, LONG, LARGE)
    ratio = long_run.largest()[0] / short_run.largest()[0]
    assert ratio <= 2.2, (short_run.largest(), long_run.largest())
    square = [record for record in long_run.records
              if sum(1 for dim in record[1] if dim == LARGE) >= 2]
    assert not square, square[:5]


def test_the_tracker_sees_the_quadratic_buffers_of_the_unchunked_path(model):
    """The same check fails on the whole-window path: it is able to fail."""
    whole = replace(LONG, chunk_frames=None, cues=CueConfig(frame_chunk=10_000),
                    refine=RefineConfig(kmeans_iterations=3))
    short_run = _track(model, whole, SMALL)
    long_run = _track(model, whole, LARGE)
    ratio = long_run.largest()[0] / short_run.largest()[0]
    assert ratio > 3.0, (short_run.largest(), long_run.largest())


# --- the benchmark -------------------------------------------------------------------------


def test_memory_estimate_counts_the_full_models_pass_one_buffers():
    from vggt4d_ros.tools.bench_long_window import estimate_memory

    estimate = estimate_memory(VGGTConfig.full(), 500, 392, 518)
    patches, tokens = 28 * 37, 500 * (5 + 28 * 37)
    # 11 query blocks (0, 3-7, 17-21) and 1 key block, bf16 patch tokens of 1024 channels.
    assert estimate.captures == 12 * 500 * patches * 1024 * 2
    assert estimate.kept_layers == 4 * tokens * 2048 * 2
    assert 30 * 2 ** 30 < estimate.total < 40 * 2 ** 30
    # Linear in S: the same parts for twice the frames, but the weights, twice as large.
    double = estimate_memory(VGGTConfig.full(), 1000, 392, 518)
    assert double.total - double.weights == 2 * (estimate.total - estimate.weights)


def test_long_window_benchmark_runs_the_tiny_model_on_cpu(capsys):
    from vggt4d_ros.tools.bench_long_window import main

    main(['--tiny', '--device', 'cpu', '--frames', '10', '--height', '28', '--width', '42',
          '--chunk-frames', '4', '--warmup-frames', '0', '--refine-mode', 'off'])
    out = capsys.readouterr().out
    assert 'VGGT4D long window, tiny model' in out
    row = [line for line in out.splitlines() if line.startswith('| 10 |')][-1]
    assert 'out of memory' not in row and len(row.split('|')) == 17


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_chunked_window_on_cuda_agrees_with_the_graphed_whole_window(model):
    """On CUDA the long path runs without graphs; results agree with the graphed short path."""
    frames, device = 24, torch.device('cuda')
    net = VGGT(VGGTConfig.tiny()).eval()
    net.load_state_dict(model.state_dict())
    net = net.to(device)
    images = _images(frames, 28, 42).to(device)
    whole = VGGT4DPipeline(net, PipelineConfig(chunk_frames=None), device=device)
    chunked = VGGT4DPipeline(net, PipelineConfig(chunk_frames=5, cues=CueConfig(frame_chunk=5)),
                             device=device)
    assert chunked.record_refinement_graphs(frames, (28, 42)) == 0
    expected = whole.run_tensor(images, list(range(frames)))
    result = chunked.run_tensor(images, list(range(frames)))
    assert chunked._cluster_graph.captures == 0 and chunked._coarse_graph.captures == 0
    torch.testing.assert_close(result.saliency, expected.saliency, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(result.depth, expected.depth)
    for name in ('coarse_masks', 'refined_masks'):
        ours, reference = getattr(result, name), getattr(expected, name)
        union = (ours | reference).sum().item()
        assert union == 0 or (ours & reference).sum().item() / union >= 0.99, name
