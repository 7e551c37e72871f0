# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Fast paths of the post-processing: seeded draws, bucketing, CUDA-graph replay, compile."""

from __future__ import annotations

import pytest
import torch

from vggt4d_ros.model.aggregator import Aggregator
from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.hooks import KeyValueMask
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.motion.coarse import coarse_mask_tensors
from vggt4d_ros.motion.coarse import coarse_masks
from vggt4d_ros.motion.coarse import CoarseConfig
from vggt4d_ros.geometry.image_transform import plan_resize
from vggt4d_ros.motion.graphs import bucket_ladder
from vggt4d_ros.motion.graphs import bucket_size
from vggt4d_ros.motion.graphs import _Recorded
from vggt4d_ros.motion.graphs import GraphedFunction
from vggt4d_ros.motion.kmeans import _sample_proportional
from vggt4d_ros.motion.kmeans import kmeans
from vggt4d_ros.motion.kmeans import KMeansConfig
from vggt4d_ros.motion.kmeans import seed_uniforms
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.prepare import prepare_model
from vggt4d_ros.motion.refine import candidate_kmeans

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def test_proportional_sampling_never_draws_zero_weights_and_follows_the_weights():
    weights = torch.tensor([[0.0, 1.0, 0.0, 3.0, 0.0]])
    uniforms = torch.rand(1, 20000, generator=torch.Generator().manual_seed(0))
    uniforms[0, :3] = torch.tensor([0.0, 0.25, 1.0 - 1e-9])  # the edges of the CDF
    picks = _sample_proportional(weights, uniforms)[0]
    assert set(picks.tolist()) <= {1, 3}
    assert picks[0] == 1 and picks[1] == 3 and picks[2] == 3
    share = (picks == 3).float().mean()
    assert abs(float(share) - 0.75) < 0.02


def test_seed_uniforms_are_seeded_and_kmeans_can_take_them():
    assert torch.equal(seed_uniforms(8, 2, 42), seed_uniforms(8, 2, 42))
    assert not torch.equal(seed_uniforms(8, 2, 42), seed_uniforms(8, 2, 43))
    points = torch.randn(2, 60, 3, generator=torch.Generator().manual_seed(3))
    config = KMeansConfig(clusters=8, iterations=5)
    inside, _ = kmeans(points, config)
    given, _ = kmeans(points, config, uniforms=seed_uniforms(8, 2, config.seed))
    assert torch.equal(inside, given)


def test_bucket_size_covers_the_count_with_bounded_padding():
    sizes = set()
    for count in (0, 1, 1024, 1025, 5000, 70000, 400000):
        size = bucket_size(count)
        assert size >= count and size % 1024 == 0
        assert size <= max(1024, 1.25 * count + 1024)
        sizes.add(size)
    assert bucket_size(5000) == bucket_size(5001)


def test_graphed_function_runs_eagerly_on_cpu():
    calls = []

    def double(x: torch.Tensor, *, scale: int) -> tuple[torch.Tensor]:
        calls.append(scale)
        return (x * scale,)

    graphed = GraphedFunction(double)
    out = graphed(torch.ones(3), scale=2)
    assert torch.equal(out[0], torch.full((3,), 2.0)) and calls == [2]
    assert graphed.captures == 0


def test_compiling_aggregator_takes_the_masked_path_without_a_host_read(monkeypatch):
    mask = KeyValueMask(dynamic=torch.zeros(1, 2, 4, dtype=torch.bool))
    assert not Aggregator._masks_needed(mask)  # eager: empty mask -> unmasked path
    monkeypatch.setattr(torch.compiler, 'is_compiling', lambda: True)
    monkeypatch.setattr(KeyValueMask, 'is_empty',
                        lambda self: pytest.fail('host read while compiling'))
    assert Aggregator._masks_needed(mask)
    assert not Aggregator._masks_needed(
        KeyValueMask(dynamic=mask.dynamic, frame_blocks=(), global_blocks=()))


@CUDA
def test_graph_replay_equals_eager_coarse_masks():
    gen = torch.Generator().manual_seed(0)
    frames, hp, wp = 4, 6, 7
    saliency = torch.rand(frames, hp, wp, generator=gen).cuda()
    features = torch.randn(frames, hp * wp, 32, generator=gen).cuda()
    config = CoarseConfig(clusters=16)
    uniforms = seed_uniforms(16, 1, config.seed).cuda()
    eager = coarse_masks(saliency, features, (hp * 14, wp * 14), config)
    graphed = GraphedFunction(coarse_mask_tensors)
    for _ in range(2):  # record, then replay
        out = graphed(saliency, features, uniforms, image_hw=(hp * 14, wp * 14), config=config)
        assert torch.equal(out[3], eager.masks) and torch.equal(out[4], eager.labels)
        torch.testing.assert_close(out[0], eager.smoothed, atol=0, rtol=0)
    assert graphed.captures == 1 and not graphed.failed


@CUDA
def test_cuda_graph_pipeline_equals_eager_pipeline():
    torch.manual_seed(0)
    model = VGGT(VGGTConfig.tiny()).eval()
    images = torch.rand(6, 3, 56, 70, generator=torch.Generator().manual_seed(1))
    results = []
    for graphs in (False, True, True):
        config = PipelineConfig(cuda_graphs=graphs)
        pipe = VGGT4DPipeline(prepare_model(model, config, 'cuda'), config, device='cuda')
        results.append(pipe.run_tensor(images, list(range(6))))
    for name in ('saliency', 'coarse_masks', 'refined_masks', 'extrinsics'):
        for other in results[1:]:
            assert torch.equal(getattr(results[0], name), getattr(other, name)), name


def test_graph_path_of_the_pipeline_matches_the_plain_path_on_cpu(monkeypatch):
    """The graphed path's plumbing (seed draws, bucket padding) runs eagerly on the CPU."""
    torch.manual_seed(0)
    model = VGGT(VGGTConfig.tiny()).eval()
    images = torch.rand(5, 3, 56, 70, generator=torch.Generator().manual_seed(2))
    plain = VGGT4DPipeline(model, PipelineConfig()).run_tensor(images, list(range(5)))
    monkeypatch.setattr(VGGT4DPipeline, '_graphs_on', lambda self: True)
    graphed = VGGT4DPipeline(model, PipelineConfig()).run_tensor(images, list(range(5)))
    assert plain.coarse_masks.any()
    for name in ('saliency', 'coarse_masks', 'refined_masks', 'extrinsics'):
        assert torch.equal(getattr(plain, name), getattr(graphed, name)), name


def test_refinement_buckets_fit_in_the_kept_graphs():
    # Every candidate count of a 392x518 frame maps to one of few power-of-two buckets, and
    # all of them stay recorded, so a live stream stops recording graphs after warm-up.
    from vggt4d_ros.motion.pipeline import CLUSTER_GRAPHS
    sizes = {bucket_size(count, ratio=2.0) for count in range(1, 392 * 518 + 1, 97)}
    assert len(sizes) <= CLUSTER_GRAPHS
    assert all(size >= count for size, count in
               ((bucket_size(c, ratio=2.0), c) for c in (1, 1024, 1025, 150_000)))


def test_bucket_ladder_lists_every_bucket_a_count_can_reach():
    for ratio, limit in ((2.0, 392 * 518), (1.25, 50_000), (2.0, 1024), (2.0, 1025)):
        reached = sorted({bucket_size(count, ratio=ratio) for count in range(1, limit + 1)})
        assert bucket_ladder(limit, ratio=ratio) == reached


class _NewShapes:
    """Stands in for the pipeline's graphed k-means on the CPU: counts new input shapes."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.captures = 0

    def __call__(self, points, valid, uniforms, **static):
        if tuple(points.shape) not in self.shapes:
            self.shapes.append(tuple(points.shape))
            self.captures += 1
        return (torch.zeros(points.shape[:2], dtype=torch.long),)


def test_warm_up_records_the_graph_of_every_bucket_a_window_can_reach(monkeypatch):
    pipeline = VGGT4DPipeline(VGGT(VGGTConfig.tiny()).eval(), PipelineConfig())
    assert pipeline.record_refinement_graphs(8, (480, 640)) == 0  # CPU: no graphs to record
    monkeypatch.setattr(VGGT4DPipeline, '_graphs_on', lambda self: True)
    pipeline._cluster_graph = spy = _NewShapes()
    assert pipeline.record_refinement_graphs(8, (480, 640)) == spy.captures
    height, width = plan_resize((480, 640)).network_hw
    ladder = bucket_ladder(height * width, ratio=2.0)
    assert spy.shapes == [(8, size, 3) for size in ladder]
    # Any candidate count of a live window now replays a recorded graph.
    km = candidate_kmeans(pipeline.refine_config)
    for count in (1, 1023, 1025, 70_000, height * width):
        labels = pipeline._cluster(torch.rand(8, count, 3), torch.ones(8, count, dtype=torch.bool),
                                   km)
        assert labels.shape == (8, count)
    assert spy.captures == len(ladder)
    off = VGGT4DPipeline(VGGT(VGGTConfig.tiny()).eval(), PipelineConfig(refine_enabled=False))
    off._cluster_graph = _NewShapes()
    assert off.record_refinement_graphs(8, (480, 640)) == 0


@CUDA
def test_recorded_refinement_graphs_serve_live_windows_without_recording():
    model = prepare_model(VGGT(VGGTConfig.tiny()), PipelineConfig(), 'cuda')
    pipeline = VGGT4DPipeline(model, PipelineConfig(), device='cuda')
    recorded = pipeline.record_refinement_graphs(4, (56, 70))
    height, width = plan_resize((56, 70)).network_hw
    assert recorded == len(bucket_ladder(height * width, ratio=2.0)) > 1
    km = candidate_kmeans(pipeline.refine_config)
    generator = torch.Generator('cuda').manual_seed(0)
    points = torch.randn(4, 3000, 3, device='cuda', generator=generator)
    valid = torch.ones(4, 3000, dtype=torch.bool, device='cuda')
    labels = pipeline._cluster(points, valid, km)
    assert pipeline._cluster_graph.captures == recorded
    uniforms = seed_uniforms(km.clusters, 4, km.seed).cuda()
    eager = kmeans(points, km, valid, uniforms, dynamic=True)[0]
    assert torch.equal(labels, eager)


class _FlakyCapture(GraphedFunction):
    """Captures that fail ``flaky`` times, then 'record' (eager outputs stand in for a replay)."""

    def __init__(self, fn, flaky: int, **kwargs) -> None:
        super().__init__(fn, **kwargs)
        self.flaky = flaky

    @staticmethod
    def _on_cuda(tensors) -> bool:
        return True  # take the recording path on the CPU

    def _record(self, tensors, static):
        if self.flaky:
            self.flaky -= 1
            raise RuntimeError('operation not permitted when stream is capturing (simulated)')
        return _Recorded(graph=_FakeGraph(), inputs=[t.clone() for t in tensors],
                         outputs=tuple(self.fn(*tensors, **static)))


class _FakeGraph:
    def replay(self) -> None:
        pass


def test_a_failed_capture_runs_eagerly_and_is_tried_again_up_to_a_bound():
    def double(x: torch.Tensor) -> tuple[torch.Tensor]:
        return (2 * x,)

    graphed = _FlakyCapture(double, flaky=1)
    x = torch.arange(3.0)
    assert torch.equal(graphed(x)[0], 2 * x)  # the failed capture's call: eager, right
    assert graphed.capture_failures == 1 and not graphed.failed and not graphed._graphs
    graphed(x)  # tried again: recorded
    assert len(graphed._graphs) == 1 and graphed.capture_failures == 1
    never = _FlakyCapture(double, flaky=10, max_failures=3)
    for _ in range(5):
        assert torch.equal(never(x)[0], 2 * x)
    assert never.failed and never.capture_failures == 3  # given up: no more attempts
