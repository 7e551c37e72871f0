# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The engine with its output stage (``output_stage.run_async``) against the in-line engine.

The oracle backend over the synthetic scene (ground truth per window with per-window Sim(3)
noise) feeds both; the planner outputs and the sink's calls must be the same, window k's
outputs run on the stage's thread, the worker goes on to window k+1's masks meanwhile, a stage
error reaches the worker, and an input reset is reported before the next window's masks. The real
VGGT4D pipeline (tiny, random weights) checks the device hand-over on CPU and CUDA.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticOracleView
from vggt4d_ros.replay.synthetic import SyntheticScene
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.output_stage import OutputStageConfig
from vggt4d_ros.runtime.window import replay_window
from vggt4d_ros.runtime.window import WindowConfig

SCENE = SceneConfig(num_frames=30, fps=15.0, seed=17, supersample=1)
WINDOW = replay_window(WindowConfig(window_size=6, stride=3))
ASYNC = OutputStageConfig(run_async=True, queue_depth=1)
IN_LINE = OutputStageConfig(run_async=False)
#: Seconds a wait may take on a busy 2-core machine before it counts as a hang.
DEADLINE_S = 120.0


def oracle() -> OracleBackend:
    scene = SyntheticScene(SCENE)
    k = SCENE.intrinsics()
    return OracleBackend(SyntheticOracleView(scene), network_hw=(SCENE.height, SCENE.width),
                         seed=17, start_ns=SCENE.start_ns, focal_factor=k[0, 0] / SCENE.width)


def scene_frames() -> list[tuple[np.ndarray, int]]:
    """(rgb, stamp) of every frame of the scene."""
    scene = SyntheticScene(SCENE)
    return [(frame.rgb, SCENE.stamp_ns(index)) for index, frame in enumerate(scene.frames())]


class Recorder:
    """Sink recording every call: its kind, thread and what perception produced."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []
        self.outputs: list = []

    def masks_ready(self, window, masks) -> None:
        self.calls.append(('masks', threading.current_thread().name,
                           tuple(m.stamp_ns for m in masks)))

    def before_perception(self, output) -> None:
        self.calls.append(('before', threading.current_thread().name,
                           tuple(f.stamp_ns for f in output.frames)))

    def window_mapped(self, output) -> None:
        self.calls.append(('mapped', threading.current_thread().name,
                           tuple(f.stamp_ns for f in output.frames)))
        self.outputs.append(output)

    def warning(self, warning) -> None:
        self.calls.append(('warning', threading.current_thread().name, warning.kind))


def run(stage: OutputStageConfig, frames, sink=None, flush: bool = True):
    sink = sink or Recorder()
    engine = PerceptionEngine(oracle(), WINDOW, perception=PerceptionConfig(), sink=sink,
                              output_stage=stage)
    try:
        for rgb, stamp in frames:
            engine.push(rgb, stamp, 'camera')
        if flush:
            engine.flush()
    finally:
        engine.close()
    return sink, engine


def perception_content(output) -> tuple:
    """Everything perception produced for a window, as comparable numpy arrays."""
    p = output.perception
    clouds = [(c.stamp_ns, c.points, c.rgb, c.object_ids) for c in p.clouds]
    tracks = [(t.track_id, np.asarray(t.position), np.asarray(t.velocity)) for t in p.tracks]
    grids = None if p.grids is None else (p.grids.static, p.grids.dynamic, p.grids.combined)
    return p.stamp_ns, clouds, tracks, grids


def assert_same(a, b, exact: bool = True) -> None:
    """Equal structure and values; floats bit for bit, or within rounding if not ``exact``."""
    if isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y, exact)
    elif isinstance(a, np.ndarray) and not exact and np.issubdtype(a.dtype, np.floating):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def test_stage_outputs_equal_in_line_outputs_in_the_same_order():
    frames = scene_frames()
    in_line, _ = run(IN_LINE, frames)
    staged, engine = run(ASYNC, frames)
    assert len(staged.outputs) == len(in_line.outputs) >= 8
    assert any(len(c.points) for out in staged.outputs for c in out.perception.clouds)
    assert any(out.perception.tracks for out in staged.outputs)
    for a, b in zip(staged.outputs, in_line.outputs):
        assert_same(perception_content(a), perception_content(b))
        assert a.static_map is None
    # The same calls per method, in order; window_mapped and before_perception on the stage.
    for kind in ('masks', 'before', 'mapped'):
        assert [c[2] for c in staged.calls if c[0] == kind] == \
            [c[2] for c in in_line.calls if c[0] == kind]
    threads = {kind: {c[1] for c in staged.calls if c[0] == kind}
               for kind in ('masks', 'before', 'mapped')}
    assert threads['before'] == threads['mapped'] == {'vggt4d_outputs'}
    assert 'vggt4d_outputs' not in threads['masks']
    assert {c[1] for c in in_line.calls} == {threading.current_thread().name}
    assert engine.stage.stats.jobs == len(staged.outputs) and not engine.stage.alive


class BlockingSink(Recorder):
    """window_mapped of the first window waits until the second window's masks were seen."""

    def __init__(self) -> None:
        super().__init__()
        self.second_masks = threading.Event()
        self.released_by_masks: bool | None = None

    def masks_ready(self, window, masks) -> None:
        super().masks_ready(window, masks)
        if sum(c[0] == 'masks' for c in self.calls) == 2:
            self.second_masks.set()

    def window_mapped(self, output) -> None:
        if not self.outputs:
            self.released_by_masks = self.second_masks.wait(DEADLINE_S)
        super().window_mapped(output)


def test_worker_runs_the_next_windows_masks_while_the_stage_delivers_the_last_one():
    sink, _ = run(ASYNC, scene_frames()[:12], BlockingSink())
    assert sink.released_by_masks is True
    kinds = [c[0] for c in sink.calls if c[0] in ('masks', 'mapped')]
    assert kinds.index('mapped') > 1  # window 1's outputs came after window 2's masks
    assert kinds.count('mapped') == kinds.count('masks')


class FailingSink(Recorder):
    def window_mapped(self, output) -> None:
        super().window_mapped(output)
        if len(self.outputs) == 1:
            raise ValueError('publisher gone')


def test_stage_error_reaches_the_worker_and_later_windows_are_delivered():
    sink = FailingSink()
    engine = PerceptionEngine(oracle(), WINDOW, perception=PerceptionConfig(), sink=sink,
                              output_stage=ASYNC)
    raised = []
    for rgb, stamp in scene_frames():
        try:
            engine.push(rgb, stamp, 'camera')
        except ValueError as error:
            raised.append(str(error))
    try:
        engine.flush()
    except ValueError as error:  # the failure surfaced only at the end
        raised.append(str(error))
    engine.close()
    assert raised == ['publisher gone']
    masks = [c[2] for c in sink.calls if c[0] == 'masks']
    assert [c[2] for c in sink.calls if c[0] == 'mapped'] == masks


def test_input_reset_warning_comes_before_the_masks_of_the_window_after_it():
    frames = scene_frames()
    # The stream jumps back to its start after 15 frames (a bag loop).
    looped = frames[:15] + frames[:12]
    orders = []
    for stage in (IN_LINE, ASYNC):
        sink, _ = run(stage, looped)
        order = [(c[0], c[2]) for c in sink.calls if c[0] in ('masks', 'warning')]
        assert order.count(('warning', 'time_backwards')) == 1
        after = order[order.index(('warning', 'time_backwards')) + 1]
        assert after[0] == 'masks' and after[1][0] == frames[0][1]
        assert {c[1] for c in sink.calls if c[0] == 'warning'} == {
            threading.current_thread().name}
        orders.append(order)
    assert orders[0] == orders[1]


def test_static_map_snapshot_is_the_map_right_after_its_window():
    maps = []
    for stage in (IN_LINE, ASYNC):
        sink = Recorder()
        engine = PerceptionEngine(oracle(), WINDOW, perception=PerceptionConfig(), sink=sink,
                                  output_stage=stage)
        engine.static_map_due = lambda update: True
        for rgb, stamp in scene_frames():
            engine.push(rgb, stamp, 'camera')
        engine.flush()
        engine.close()
        maps.append([out.static_map for out in sink.outputs])
        final = engine.static_map()
        np.testing.assert_array_equal(maps[-1][-1][0], final[0])
    sizes = [len(points) for points, _ in maps[0]]
    assert sizes[-1] > sizes[0]  # the map grew: snapshots differ from window to window
    assert_same(maps[0], maps[1])


class StaticBuffers:
    """A backend whose results live in buffers the next window overwrites (as CUDA graphs do).

    ``ran`` counts windows; ``second_ran`` is set once the second window's results are in
    the buffers.
    """

    def __init__(self) -> None:
        self.inner = oracle()
        self.buffers: dict[str, torch.Tensor] = {}
        self.ran = 0
        self.second_ran = threading.Event()

    def run(self, frames, stamps_ns):
        result = self.inner.run(frames, stamps_ns)
        for name in ('images', 'depth', 'depth_conf', 'refined_masks', 'intrinsics'):
            fresh = getattr(result, name)
            buffer = self.buffers.get(name)
            if buffer is None or buffer.shape != fresh.shape:
                buffer = self.buffers[name] = torch.empty_like(fresh)
            buffer.copy_(fresh)
            setattr(result, name, buffer)
        self.ran += 1
        if self.ran == 2:
            self.second_ran.set()
        return result


class HoldFirstPerception(Recorder):
    """before_perception of the first window waits until the backend ran the second one."""

    def __init__(self, backend: StaticBuffers) -> None:
        super().__init__()
        self.backend = backend
        self.waited: bool | None = None

    def before_perception(self, output) -> None:
        super().before_perception(output)
        if self.waited is None:
            self.waited = self.backend.second_ran.wait(DEADLINE_S)


def test_stage_reads_its_own_copies_when_the_backend_reuses_its_buffers():
    frames = scene_frames()[:18]
    results = []
    for stage in (IN_LINE, ASYNC):
        backend = StaticBuffers()
        sink = HoldFirstPerception(backend) if stage.run_async else Recorder()
        engine = PerceptionEngine(backend, WINDOW, perception=PerceptionConfig(), sink=sink,
                                  output_stage=stage)
        for rgb, stamp in frames:
            engine.push(rgb, stamp, 'camera')
        engine.flush()
        engine.close()
        if stage.run_async:
            assert sink.waited is True  # window 1's perception ran after window 2's backend
        results.append([perception_content(out) for out in sink.outputs])
    assert len(results[0]) >= 4
    assert any(len(cloud[1]) for content in results[0] for cloud in content[1])
    assert_same(results[1], results[0])


# ---------------------------------------------------------------- real pipeline, device copies
DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs CUDA'))]


@pytest.mark.parametrize('device', DEVICES)
def test_pipeline_windows_back_to_back_give_the_in_line_perception(device):
    """Two windows of the real pipeline (tiny, random weights) back to back, stage vs in line.

    On CUDA the stage reads device copies on its own stream while the worker already runs the
    next window (CUDA graphs on): its planner outputs must equal the in-line engine's.
    """
    from vggt4d_ros.motion.pipeline import PipelineConfig
    from vggt4d_ros.runtime.backend import build_backend
    from vggt4d_ros.runtime.config import BackendConfig

    loaded = build_backend(BackendConfig(allow_random_weights=True, model_config='tiny',
                                         device=device, network_width=140, warmup=False),
                           PipelineConfig())
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (96, 160 + 4 * 12, 3), dtype=np.uint8)
    frames = [(np.ascontiguousarray(base[:, 4 * i:4 * i + 160]), 1_000_000_000 + i * 50_000_000)
              for i in range(12)]
    window = replay_window(WindowConfig(window_size=8, stride=4))
    results = []
    for stage in (IN_LINE, ASYNC):
        sink = Recorder()
        torch.manual_seed(0)
        engine = PerceptionEngine(loaded.backend, window, perception=PerceptionConfig(),
                                  sink=sink, output_stage=stage)
        try:
            for rgb, stamp in frames:
                # A copy: the pipeline reuses a frame's features only for the same array.
                engine.push(rgb.copy(), stamp, 'camera')
            engine.flush()
        finally:
            engine.close()
        results.append(sink.outputs)
    assert len(results[0]) == len(results[1]) >= 2
    # CUDA adds floats with atomics (index_add_, scatter sums) in an order that changes from
    # run to run: two runs of the same engine differ in the last bits there (seen on an H100,
    # docs/performance.md section 13). A stream race would give other data, not rounding.
    exact = device == 'cpu'
    for staged, in_line in zip(results[1], results[0]):
        assert_same(perception_content(staged), perception_content(in_line), exact)
        assert_same([f.mask for f in staged.frames], [f.mask for f in in_line.frames])
