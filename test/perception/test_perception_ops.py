# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Op and host-sync budgets of the planner outputs' device stages (counted on the CPU).

On a GPU these stages cost launches and Python dispatch, not arithmetic, so their op count
and their host syncs are their cost (docs/performance.md section 6): the budgets below pin
what one steady-state window (4 new frames of an 8-frame window) may dispatch, so a change
that adds ops or a sync fails here. Counted with ``tools/op_count.py`` on the benchmark's
windows (synthetic scene through the oracle backend), at a small network size: the counts
do not depend on it. The CPU and CUDA take the same code paths (the instance labelling's
``CPU_PATH_DEVICE_TYPES``), so the CPU's count is CUDA's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vggt4d_ros.perception.batch import stack
from vggt4d_ros.perception.config import GridConfig
from vggt4d_ros.perception.dynamic_points import running_count
from vggt4d_ros.perception.dynamic_points import thin_evenly
from vggt4d_ros.perception.occupancy import _GridConstants
from vggt4d_ros.perception.perception_tracker import _download
from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.tools import bench_perception
from vggt4d_ros.tools.op_count import count_windows
from vggt4d_ros.tools.op_count import OpCounter

# Per steady-state window, the GPU's code paths without CUDA graphs (measured: copy 22 ops,
# points 111, instances 326 (on the box around the dynamic pixels, as the CPU; whole frames
# would be 213 ops and 1 sync, but 2x slower on an H100: docs/performance.md section 10),
# grid 169, host 32 (27 before the copy moved each part at its own width: 5 more views, one
# kernel less); before this budget: copy 27 ops / 6 syncs, points 123 / 2, instances 508 /
# 4, grid 282 / 2, host 34 / 2). The instances stage holds the footprint fits since the box
# fit moved there ('box_fit' centre model, the default: 625 ops, 377 kernels; 326 ops and
# 197 kernels with the surface centre, which fits nothing): eager only; with CUDA graphs
# they are part of the one replay (GRAPH_OPS unchanged). Then the labelling's steps hook
# only from pixels with a smaller label around (two ops a step, no contended atomics:
# instances 625 -> 656 ops, 377 -> 398 kernels) and the points are thinned by a binary
# search in the running count instead of a scatter by rank (points 111 -> 105 ops), the
# count in two levels of scans (``running_count``: 116 ops, short kernels in place of
# one 0.28 ms scan on an H100). The grids' values are computed with the grid's advance and
# reach the host in the one copy of the results (grid 176 ops / 1 sync -> 165 / 0).
OPS = {'copy': 24, 'points': 120, 'instances': 660, 'grid': 168, 'host': 34}
# With CUDA graphs (the default on CUDA; counted on the CPU as ``op_count --graphs``): the
# points stage is the batch's stacking, the graph's input copies and one replay (20 ops),
# the grid stage adds nothing (its values are in the replay and come with the results'
# copy; 19 ops and a sync before to read the grids out), the instances stage is the box of the
# dynamic pixels (their rows pick the bucket: one sync), the graph's 7 input copies and one
# replay of labelling + measurements (22 ops; 34 here: one of the 2 counted windows makes a
# new bucket's constants, ~25 ops once per bucket; before the labelling's graph 214 ops and
# 2 syncs), the host stage adds the convergence flag and the grids to the one copy (36).
GRAPH_OPS = {'points': 22, 'instances': 36, 'grid': 0, 'host': 36}
# With CUDA graphs the instances stage syncs only for the box (the flag comes with the
# results' copy; a labelling not converged in the graph's steps resumes with its syncs).
GRAPH_SYNCS = {'instances': 1}
# The points stage thins without a sync; the instances copy the box out and check the
# labelling's convergence once; the host reads the counts with the results.
SYNCS = {'copy': 1, 'points': 0, 'instances': 2, 'grid': 0, 'host': 2}


@pytest.fixture(scope='module')
def counted():
    args = bench_perception._parse(['--windows', '4', '--height', '120', '--width', '160'])
    outputs, scale = bench_perception._windows(args)
    config = bench_perception._settings(scale)['all outputs (grid stride 8)']
    # outputs[0] has 8 new frames; count_windows warms up on outputs[1], counts the rest.
    windows = outputs[2:]
    assert all(len(out.update.new_indices) == 4 for out in windows)
    return count_windows(outputs[1:], config), len(windows)


def _assert_within_budget(counter, windows: int, stage: str, ops: int,
                          syncs: dict[str, int] = SYNCS) -> None:
    per_window = counter.stages[stage].scaled(windows)
    assert per_window['ops'] <= ops, counter.stages[stage].by_op.most_common(20)
    assert per_window['syncs'] <= syncs.get(stage, SYNCS[stage]), (
        counter.stages[stage].sync_sites)


@pytest.mark.parametrize('stage', sorted(OPS))
def test_stage_stays_within_its_op_and_sync_budget(counted, stage):
    counter, windows = counted
    _assert_within_budget(counter, windows, stage, OPS[stage])


@pytest.fixture(scope='module')
def counted_graphs():
    args = bench_perception._parse(['--windows', '4', '--height', '120', '--width', '160'])
    outputs, scale = bench_perception._windows(args)
    config = bench_perception._settings(scale)['all outputs (grid stride 8)']
    return count_windows(outputs[1:], config, graphs=True), len(outputs) - 2


@pytest.mark.parametrize('stage', sorted(GRAPH_OPS))
def test_graphed_stage_stays_within_its_op_budget(counted_graphs, stage):
    counter, windows = counted_graphs
    _assert_within_budget(counter, windows, stage, GRAPH_OPS[stage], GRAPH_SYNCS)
    replays = windows if stage in ('points', 'instances') else 0
    assert counter.stages[stage].by_op['graph replay'] == replays


def test_grids_come_to_the_host_with_the_results_copy(counted, counted_graphs):
    for counter, _ in (counted, counted_graphs):
        assert sum(counter.stages['grid'].sync_sites.values()) == 0
        host = counter.stages['host'].sync_sites
        assert not any('occupancy.py' in site for site in host), host


def test_instances_stage_syncs_only_for_the_box_and_the_convergence_check(counted):
    counter, windows = counted
    sites = counter.stages['instances'].sync_sites
    assert sum(sites.values()) == 2 * windows
    checks = sum(n for site, n in sites.items() if site.startswith('equal @ instances.py'))
    boxes = sum(n for site, n in sites.items() if site.startswith('cpu @ instances.py'))
    assert checks == boxes == windows, sites


def test_graphed_instances_sync_only_for_the_box(counted_graphs):
    counter, windows = counted_graphs
    sites = counter.stages['instances'].sync_sites
    assert sum(sites.values()) == windows
    assert all(site.startswith('cpu @ instances.py') for site in sites), sites
    assert counter.stages['host'].scaled(windows)['syncs'] == SYNCS['host']  # counts, copy


def test_counter_sees_ops_kernels_and_each_kind_of_sync():
    x = torch.arange(6.0)
    with OpCounter() as counter:
        y = x.view(2, 3)  # a view: an op, no kernel
        z = y + 1  # a kernel
        counter.lap('compute')
        z.cpu()
        float(z[0, 0])
        x[x > 2]  # boolean mask: data-dependent size
        torch.nonzero(x)
        torch.tensor([1, 2]).to(x.device)  # a blocking upload
        torch.from_numpy(np.ones(2)).to(x.device, non_blocking=True)  # no wait
        torch.tensor([3.0]).item()  # host data: no sync
        torch.equal(x, z.flatten())  # a bool to the host
        counter.lap('syncs')
    compute = counter.stages['compute']
    assert (compute.ops, compute.kernels, compute.syncs) == (2, 1, 0)
    syncs = counter.stages['syncs']
    assert syncs.syncs == 6, syncs.sync_sites
    assert {site.split(' @ ')[0] for site in syncs.sync_sites} == {
        'cpu', '__float__', 'index', 'nonzero', 'upload', 'equal'}


@pytest.mark.parametrize('frames', [1, 3, 4, 5, 9])
@pytest.mark.parametrize('weights', [(3, 1, 20), (1, 2, 5), (7, 7, 6)])
def test_log_odds_lookup_equals_the_frame_by_frame_clamps(frames, weights):
    hit_weight, miss_weight, max_level = weights
    config = GridConfig(width=30, height=20, hit_weight=hit_weight, miss_weight=miss_weight,
                        max_level=max_level)
    consts = _GridConstants(config, torch.device('cpu'))
    assert consts.table is not None
    rng = np.random.default_rng(frames)
    level = torch.from_numpy(rng.integers(-max_level, max_level + 1, 600).astype(np.int16))
    free = torch.from_numpy(rng.random((frames, 600)) < 0.5)
    hit = torch.from_numpy(rng.random((frames, 600)) < 0.4)
    got = consts.log_odds(level.clone(), free, hit)
    expected = level.clone()
    for f in range(frames):  # the definition, as the reference applies it
        expected = torch.clamp(expected - free[f].to(torch.int16) * miss_weight, min=-max_level)
        expected = torch.clamp(expected + hit[f].to(torch.int16) * hit_weight, max=max_level)
    assert got.dtype == torch.int16
    assert torch.equal(got, expected)


def test_stacking_window_slices_is_a_view_and_anything_else_a_copy():
    window = torch.rand(8, 5, 6)
    frames = [window[k] for k in (4, 5, 6, 7)]
    view = stack(frames)
    assert view.untyped_storage().data_ptr() == window.untyped_storage().data_ptr()
    assert torch.equal(view, window[4:])
    shared = torch.rand(5, 6)
    assert torch.equal(stack([shared] * 3), shared.expand(3, 5, 6))
    scattered = [window[k] for k in (0, 2, 3)]  # not equally spaced
    copy = stack(scattered)
    assert copy.untyped_storage().data_ptr() != window.untyped_storage().data_ptr()
    assert torch.equal(copy, window[[0, 2, 3]])
    filled = stack([None, window[1]], lambda: torch.zeros(5, 6))
    assert torch.equal(filled[0], torch.zeros(5, 6)) and torch.equal(filled[1], window[1])


@pytest.mark.parametrize('limit', [1, 2, 7, 64, 1000])
def test_thinning_takes_numpy_linspace_entries_without_a_sync(limit):
    rng = np.random.default_rng(limit)
    size = 997
    counts = [0, 1, 2, limit - 1, limit, limit + 1, 3 * limit + 5, 500, size]
    selected = np.zeros((len(counts), size), bool)
    for row, n in enumerate(counts):
        n = max(0, min(n, size))
        selected[row, np.sort(rng.choice(size, n, replace=False))] = True
    with OpCounter() as counter:
        index, count, used = thin_evenly(torch.from_numpy(selected), limit)
        counter.lap('thin')
    assert counter.stages['thin'].syncs == 0
    slots = min(limit, size)
    assert index.shape == (len(counts), slots)
    for row in range(len(counts)):
        positions = np.flatnonzero(selected[row])
        n = len(positions)
        expected = positions[np.arange(n) if n <= slots
                             else np.linspace(0, n - 1, slots).round().astype(np.int64)]
        assert int(count[row]) == len(expected)
        np.testing.assert_array_equal(index[row, :len(expected)].numpy(), expected)
        assert not index[row, len(expected):].any()
        np.testing.assert_array_equal(used[row].numpy(), np.arange(slots) < len(expected))


def test_download_returns_every_part_at_its_width_from_one_copy():
    window = torch.arange(60, dtype=torch.float64).view(3, 4, 5)
    parts = [torch.arange(7, dtype=torch.uint8), window[:, :2].float(),  # float32
             window[:, :2], torch.arange(6, dtype=torch.int32).view(2, 3),
             torch.zeros((0, 3), dtype=torch.int64), window[:, 1:3, ::2]]  # strided view
    with OpCounter() as counter:
        host = _download(parts)
        counter.lap('download')
    assert counter.stages['download'].syncs == 1  # the one copy
    for part, array in zip(parts, host):
        assert array.dtype == part.numpy().dtype and array.shape == tuple(part.shape)
        np.testing.assert_array_equal(array, part.numpy())
        assert array.base is not None  # a view of the one buffer, no copy per part


def test_bench_profile_reports_the_torch_ops_and_the_host_functions():
    args = bench_perception._parse(['--windows', '3', '--height', '120', '--width', '160'])
    outputs, scale = bench_perception._windows(args)
    config = bench_perception._settings(scale)['cloud + tracks (grids off)']
    report = bench_perception._profile(outputs[1:], PerceptionTracker(config), 'cpu', 5)
    assert 'aten::' in report  # the torch profiler's table
    assert 'Ordered by: internal time' in report  # cProfile's, the host's Python functions
    assert 'device kernels' not in report  # only on CUDA


@pytest.mark.parametrize('size', [1, 1023, 1024, 1025, 5000])
def test_running_count_equals_one_cumulative_sum(size):
    rng = np.random.default_rng(size)
    selected = torch.from_numpy(rng.random((3, size)) < 0.3)
    selected[1] = False  # a row without an entry
    running = running_count(selected)
    assert running.dtype == torch.int32 and running.is_contiguous()
    np.testing.assert_array_equal(running.numpy(), np.cumsum(selected.numpy(), axis=1))
