# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What the refinement stages dispatch for a short single-camera window (CPU op counting).

On the GPU the ``cluster`` and ``refine`` stages are a few hundred microsecond kernels each:
their time is the host's launch time, so extra operators, host reads or a lost CUDA-graph path
show up as milliseconds there (docs/performance.md section 7). These tests count the aten
operators a window dispatches (``TorchDispatchMode``), which is the same on every device.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.refine import close_then_dilate
from vggt4d_ros.motion.refine import cluster_candidates
from vggt4d_ros.motion.refine import find_candidates
from vggt4d_ros.motion.refine import finish_refinement
from vggt4d_ros.motion.refine import RefineConfig
from vggt4d_ros.motion.rig import RigLayout
from vggt4d_ros.tools.bench_refine import make_window

#: Operators that read a device value back to the host (a synchronisation on CUDA).
HOST_READS = frozenset({'_local_scalar_dense', 'nonzero', 'masked_select', 'unique',
                        '_unique2', 'equal', 'is_nonzero'})
STAGE_MARK = '_record_function_enter_new'


class _OpLog(TorchDispatchMode):
    """Aten operator names, attributed to the pipeline stage last entered (``stage:<name>``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage = 'outside'
        self.ops: dict[str, list[str]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        name = func.overloadpacket.__name__
        if name == STAGE_MARK and args and str(args[0]).startswith('stage:'):
            self.stage = str(args[0])[len('stage:'):]
        self.ops.setdefault(self.stage, []).append(name)
        return func(*args, **(kwargs or {}))

    def reads(self, stage: str) -> int:
        return sum(op in HOST_READS for op in self.ops.get(stage, []))


def _warm_morphology() -> None:
    """Fill the morphology's cache of kernel rectangles (host tensors, read once per size)."""
    config = RefineConfig()
    close_then_dilate(torch.zeros(1, 8, 8, dtype=torch.bool), config.close_kernel,
                      config.dilate_kernel)


def _finish_ops(frame_chunks: tuple[int | None, ...]) -> list[tuple[list[str], torch.Tensor]]:
    """Ops and masks of ``finish_refinement`` on a fixed 8-frame single-camera window."""
    window = make_window(8, 56, 70, 0, torch.device('cpu'), coverage=0.12)
    config = RefineConfig()
    found = find_candidates(window.depth, window.coarse, window.intrinsics, config)
    plan = cluster_candidates(found, window.images, config)
    inputs = (plan, window.images, window.depth, window.coarse, window.cam_to_world,
              window.intrinsics, config)
    _warm_morphology()
    runs = []
    for frame_chunk in frame_chunks:
        log = _OpLog()
        with log:
            result = finish_refinement(*inputs, frame_chunk)
        runs.append((log.ops['outside'], result.masks))
    return runs


def test_short_window_refinement_adds_no_chunking_copies():
    """8 frames, chunk 32: no fill for the test count, no concatenation of cluster totals."""
    (short, short_masks), (whole, whole_masks), (chunked, chunked_masks) = _finish_ops(
        (32, None, 4))
    assert torch.equal(short_masks, whole_masks) and torch.equal(short_masks, chunked_masks)
    assert short == whole
    counts = Counter(short)
    # The one concatenation left is the projection's (coarse mask + RGB, one grid_sample).
    assert counts['cat'] == 1 and counts['full'] == 0
    assert not any(op in HOST_READS for op in short)
    # The counter sees what chunking adds: per-chunk totals concatenated.
    assert Counter(chunked)['cat'] > counts['cat']


@pytest.fixture()
def graphed_pipeline(model, monkeypatch):
    """Tiny-model pipeline on the CPU taking its CUDA-graph branches, with call spies.

    ``GraphedFunction`` runs its function eagerly on CPU tensors, so the branch is the one a
    CUDA window takes, minus the replay.
    """
    pipeline = VGGT4DPipeline(model, PipelineConfig(), 'cpu')
    monkeypatch.setattr(pipeline, '_graphs_on', lambda: True)
    calls = Counter()
    graph = pipeline._cluster_graph
    original_call = type(graph).__call__

    def spy(self, *tensors, **static):  # noqa: ANN001, ANN002, ANN003
        if self is graph:
            calls['cluster_graph'] += 1
        return original_call(self, *tensors, **static)

    monkeypatch.setattr(type(graph), '__call__', spy)
    original_pairs = RigLayout.temporal_pairs

    def pairs_spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        calls['temporal_pairs'] += 1
        return original_pairs(self, *args, **kwargs)

    monkeypatch.setattr(RigLayout, 'temporal_pairs', pairs_spy)
    return pipeline, calls


def test_eight_frame_window_clusters_in_the_graph_and_refines_without_host_reads(
        graphed_pipeline):
    pipeline, calls = graphed_pipeline
    images = torch.rand(8, 3, 56, 70, generator=torch.Generator().manual_seed(1))
    _warm_morphology()
    log = _OpLog()
    with log:
        result = pipeline.run_tensor(images, list(range(8)))
    assert result.coarse_masks.any(), 'precondition: the window has refinement candidates'
    assert not pipeline.is_long_window(8)
    # The 3D k-means goes through the graphed function once (the short-window path).
    assert calls['cluster_graph'] == 1
    # One camera: the release's pairs (every other frame), no rig pair mask built.
    assert calls['temporal_pairs'] == 0
    # The candidate count is the refinement's only host read; the pose half reads nothing.
    assert log.reads('prepare') == 0
    assert log.reads('cluster') == 1
    assert log.reads('refine') == 0
    assert 'refine' in log.ops and 'cluster' in log.ops


def test_long_window_clusters_eagerly(model, monkeypatch):
    """The negative control: frames > chunk_frames skip the graph (tested path differs)."""
    pipeline = VGGT4DPipeline(model, PipelineConfig(chunk_frames=4), 'cpu')
    monkeypatch.setattr(pipeline, '_graphs_on', lambda: True)
    graph = pipeline._cluster_graph
    calls = Counter()
    original_call = type(graph).__call__

    def spy(self, *tensors, **static):  # noqa: ANN001, ANN002, ANN003
        calls[id(self)] += 1
        return original_call(self, *tensors, **static)

    monkeypatch.setattr(type(graph), '__call__', spy)
    images = torch.rand(8, 3, 56, 70, generator=torch.Generator().manual_seed(1))
    result = pipeline.run_tensor(images, list(range(8)))
    assert result.coarse_masks.any()
    assert pipeline.is_long_window(8)
    assert calls[id(graph)] == 0
