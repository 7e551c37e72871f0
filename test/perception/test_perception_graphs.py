# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The CUDA graphs (points + grid; the instances: labels, measurements) give the eager results.

On CUDA (skipped elsewhere): a tracker with ``cuda_graphs`` and one without run the
benchmark's synthetic windows, a first window of 8 new frames then windows of 4 (a second
recording), a map reset (new segment) and a perception reset; the clouds, colours, ids, the
three grids and the counters must be equal bit for bit, the tracks to float rounding (the
measurements' float64 ``index_add_`` adds with atomics on CUDA: its summation order varies
from run to run, eager or replayed). The captured functions must not sync
(``torch.cuda.set_sync_debug_mode('error')`` around the recorded functions' warm-up runs and
captures; a sync in a capture fails it, which ``GraphedFunction.failed`` shows). On
the CPU: the graph-ready function is pure (static inputs -> outputs, the state only through
its arguments), the tracker's results do not depend on the switch (bit for bit), and the
graphs' path run eagerly on the CPU (the instances' bucketed labelling with its device-side
convergence flag, resumed on the host when the fixed steps do not converge) gives the eager
path's results bit for bit, unconverged counts included.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from vggt4d_ros.perception.batch import stack_frames
from vggt4d_ros.perception.config import InstanceConfig
from vggt4d_ros.perception import instances
from vggt4d_ros.perception.observation import observations_from_window
from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.tools import bench_perception

SETTINGS = ('all outputs (grid stride 8)', 'cloud + tracks (grids off)')


def _windows(device: str, height: int = 120, width: int = 160, windows: int = 7):
    args = bench_perception._parse(['--windows', str(windows), '--height', str(height),
                                    '--width', str(width), '--device', device])
    return bench_perception._windows(args)


def _run(tracker: PerceptionTracker, outputs) -> list[dict]:
    """Every output of the windows; a map reset (segment + 1) from window 3, a reset at 5."""
    record = []
    for k, out in enumerate(outputs):
        frames = observations_from_window(out.result, out.update)
        if k >= 3:
            frames = [replace(f, segment=f.segment + 1) for f in frames]
        if k == 5:
            tracker.reset()
        result = tracker.update(frames)
        record.append({
            'clouds': [(c.stamp_ns, c.points, c.rgb, c.object_ids) for c in result.clouds],
            'tracks': [sorted(vars(t).items()) for t in result.tracks],
            'grids': None if result.grids is None else (
                result.grids.stamp_ns, result.grids.static, result.grids.dynamic,
                result.grids.combined),
            'stats': sorted(vars(tracker.stats).items()),
            'grid_stats': None if tracker.grid is None else sorted(
                vars(tracker.grid.stats).items()),
        })
    return record


def _assert_equal(a, b, path: str = '', rounding: bool = False) -> None:
    """Equal bit for bit; floats under a 'tracks' key to float rounding where ``rounding``."""
    rounding_here = rounding and '/tracks' in path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_equal(a[key], b[key], f'{path}/{key}', rounding)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f'{path}[{k}]', rounding)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, path
        if rounding_here and a.dtype.kind == 'f':
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=path)
        else:
            assert np.array_equal(a, b, equal_nan=True), path
    elif rounding_here and isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, (path, a, b)


def _no_sync(fn):
    """``fn`` with CUDA's sync check raising on any host sync inside it."""
    def checked(*args, **kwargs):
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode('error')
        try:
            return fn(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return checked


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('setting', SETTINGS)
def test_graph_replay_equals_eager_bit_for_bit_without_a_sync(setting):
    outputs, scale = _windows('cuda', 392, 518)
    config = bench_perception._settings(scale)[setting]
    assert config.cuda_graphs
    assert len(outputs[0].update.new_indices) == 8 and len(outputs[1].update.new_indices) == 4
    eager = _run(PerceptionTracker(replace(config, cuda_graphs=False)), outputs)
    tracker = PerceptionTracker(config)
    graphs = {}
    for name in ('_graphed', '_graphed_instances'):
        graphs[name] = graphed = getattr(tracker, name)
        # The recorded function, in its eager warm-up and its capture (the recording's own
        # torch.cuda.synchronize and the replays' device copies are not the function's).
        graphed.fn = _no_sync(graphed.fn)
    replayed = _run(tracker, outputs)
    for name, graphed in graphs.items():
        assert not graphed.failed, name
    assert graphs['_graphed'].captures >= 2  # 8 new frames, then 4: one recording each
    assert graphs['_graphed_instances'].captures >= 2
    _assert_equal(eager, replayed, rounding=True)


def test_graph_ready_function_is_pure():
    outputs, scale = _windows('cpu', windows=3)
    config = bench_perception._settings(scale)['all outputs (grid stride 8)']
    tracker = PerceptionTracker(config)
    for out in outputs[:2]:  # a grid state that is not empty
        tracker.update(observations_from_window(out.result, out.update))
    frames = observations_from_window(outputs[2].result, outputs[2].update)
    tracker.grid.begin_batch([f.step_ns for f in frames], torch.device('cpu'))
    inputs = stack_frames(frames, config.output_from_world).tensors()
    held = tracker.grid.state
    kept = [t.clone() for t in inputs + held]
    runs = []
    for _ in range(2):
        state = tuple(t.clone() for t in held)
        runs.append(tracker._pixel_stages(*inputs, *state))
    # The inputs and the mapper's own state are not touched: the state goes in and out.
    for before, after in zip(kept, inputs + tracker.grid.state):
        assert torch.equal(before, after)
    for first, second in zip(*runs):
        assert first.dtype == second.dtype and torch.equal(first, second)
    # The point fields, output_from_camera, the grids' values, the state.
    assert len(runs[0]) == 12 + len(held)
    assert runs[0][-1].sum() > 0  # the grid's counters moved: the state was advanced
    # The values are the grids of the new state at the batch's last stamp (what ``grids``
    # reads out after the batch).
    tracker.grid.state = tuple(t.clone() for t in runs[0][-len(held):])
    assert torch.equal(runs[0][11], tracker.grid.values(tracker.grid.state, frames[-1].step_ns))
    assert (runs[0][11] != 0).any()


@pytest.mark.parametrize('setting', SETTINGS)
def test_results_do_not_depend_on_the_switch_on_the_cpu(setting):
    outputs, scale = _windows('cpu', windows=5)
    config = bench_perception._settings(scale)[setting]
    on = _run(PerceptionTracker(config), outputs)
    off = _run(PerceptionTracker(replace(config, cuda_graphs=False)), outputs)
    _assert_equal(on, off)


@pytest.mark.parametrize('fixed, bound', [(None, 64), (1, 64), (1, 1), (3, 5)])
def test_graphs_path_on_the_cpu_equals_the_eager_path(monkeypatch, fixed, bound):
    """The graphs' path run eagerly: bucketed labelling, flag in the download, resumed.

    1 or 3 fixed steps do not converge on these scenes (resumed, or cut off by the bound).
    """
    if fixed is not None:
        monkeypatch.setattr(instances, '_FIXED_STEPS', fixed)
    outputs, scale = _windows('cpu', windows=5)
    config = bench_perception._settings(scale)['cloud + tracks (grids off)']
    config = replace(config, instances=InstanceConfig(max_label_iterations=bound))
    graphed = PerceptionTracker(config)
    graphed._graph_device_types += ('cpu',)
    calls = []
    resumed = graphed._resumed
    graphed._resumed = lambda *args: calls.append(1) or resumed(*args)
    eager = _run(PerceptionTracker(replace(config, cuda_graphs=False)), outputs)
    _assert_equal(eager, _run(graphed, outputs))
    assert bool(calls) == (fixed is not None)
    assert graphed.stats.unconverged == (len(outputs) if bound == 1 else 0)
