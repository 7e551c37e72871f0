# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Two-stream windows (``PipelineConfig.overlap_streams``): same results, other launch order."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.prepare import prepare_model
from vggt4d_ros.motion.refine import RefinePlan
from vggt4d_ros.motion.rig import RigLayout
from vggt4d_ros.motion.streams import SideStream

from test_motion_stage_ops import _OpLog

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
FIELDS = ('depth', 'depth_conf', 'intrinsics', 'extrinsics', 'saliency', 'coarse_masks',
          'refined_masks')
SERIAL_ORDER = ['pass1', 'heads1', 'cues', 'coarse', 'pass2', 'prepare', 'cluster', 'refine']


def _images(frames: int, seed: int) -> torch.Tensor:
    return torch.rand(frames, 3, 56, 70, generator=torch.Generator().manual_seed(seed))


def _assert_same(serial, overlapped) -> None:
    for name in FIELDS:
        assert torch.equal(getattr(serial, name), getattr(overlapped, name)), name


def test_the_option_is_a_no_op_on_the_cpu(model, monkeypatch):
    images = _images(5, 2)
    serial = VGGT4DPipeline(model, PipelineConfig()).run_tensor(images, list(range(5)))

    def no_streams(*args, **kwargs):
        raise AssertionError('stream code ran on the CPU')

    # Any stream or event made, or any tensor handed across streams, fails the test.
    monkeypatch.setattr(torch.cuda, 'Stream', no_streams)
    monkeypatch.setattr(torch.cuda, 'Event', no_streams)
    monkeypatch.setattr(torch.Tensor, 'record_stream', no_streams)
    pipe = VGGT4DPipeline(model, PipelineConfig(overlap_streams=True))
    overlapped = pipe.run_tensor(images, list(range(5)))
    assert serial.coarse_masks.any()
    _assert_same(serial, overlapped)
    assert pipe.side_stages(5) == () and pipe._side_stream is None
    assert list(overlapped.timings)[:len(SERIAL_ORDER)] == SERIAL_ORDER
    assert 'side' not in overlapped.timings


class _Recorder(SideStream):
    """A SideStream without a device that logs what the window asks of it."""

    def __init__(self) -> None:
        super().__init__(None)
        self.log: list[tuple] = []

    @property
    def active(self) -> bool:
        return True

    def follow_main(self) -> None:
        self.log.append(('follow_main',))

    def join(self) -> None:
        self.log.append(('join',))

    def run(self, on_side: bool = True) -> contextlib.AbstractContextManager:
        self.log.append(('run', on_side))
        return super().run(on_side)

    def to_side(self, *items: object) -> None:
        self.log.append(('to_side',) + tuple(type(item).__name__ for item in items))

    def to_main(self, *items: object) -> None:
        self.log.append(('to_main',) + tuple(type(item).__name__ for item in items))


ALL_ON_SIDE = ('heads1', 'prepare', 'cluster')
HEADS_ON_MAIN = ('prepare', 'cluster')  # heads compiled with CUDA graphs


def _recorded_run(model, monkeypatch, stages: tuple[str, ...], config: PipelineConfig):
    """Run a window with ``stages`` on a recording side stream; check it equals the serial one.

    Returns:
        ``(result, recorder, op_log)``.
    """
    images = _images(5, 2)
    serial = VGGT4DPipeline(model, PipelineConfig()).run_tensor(images, list(range(5)))
    recorder = _Recorder()
    monkeypatch.setattr(VGGT4DPipeline, 'side_stages', lambda self, frames: stages)
    monkeypatch.setattr(VGGT4DPipeline, '_streams', lambda self, on_side: recorder)
    log = _OpLog()
    with log:
        overlapped = VGGT4DPipeline(model, config).run_tensor(images, list(range(5)))
    _assert_same(serial, overlapped)
    return overlapped, recorder, log


@pytest.mark.parametrize('stages', [ALL_ON_SIDE, HEADS_ON_MAIN])
def test_overlapped_flow_queues_the_side_work_around_pass_two(model, monkeypatch, stages):
    """The two-stream order and hand-overs, run on the CPU's one stream: same results."""
    overlapped, recorder, log = _recorded_run(model, monkeypatch, stages, PipelineConfig())
    # Issue order on the host: the outlier removal right after the heads (it needs nothing
    # else), the clusters (one host read) after every launch of pass 2, the refinement after
    # the join.
    assert list(overlapped.timings)[:len(SERIAL_ORDER)] == [
        'pass1', 'heads1', 'prepare', 'cues', 'coarse', 'pass2', 'cluster', 'refine']
    # Queued before the main stream's cues and pass 2: no host read may block the host.
    assert log.reads('heads1') == 0 and log.reads('prepare') == 0
    assert log.reads('cluster') == 1
    heads = ([('follow_main',), ('to_side', 'list', 'Tensor'), ('run', True)]
             if 'heads1' in stages else
             [('run', False), ('follow_main',), ('to_side', '_HeadsOne')])
    assert recorder.log == heads + [
        ('run', True),  # prepare: the outlier removal
        ('follow_main',), ('to_side', 'Tensor', 'Tensor'),  # coarse mask, images: before pass 2
        ('run', True),  # cluster
        ('to_main', '_HeadsOne', RefinePlan.__name__), ('join',)]


def test_side_work_after_the_coarse_stage(model, monkeypatch):
    """``overlap_start='coarse'``: heads and outlier removal queued after the coarse stage."""
    overlapped, recorder, log = _recorded_run(model, monkeypatch, ALL_ON_SIDE,
                                              PipelineConfig(overlap_start='coarse'))
    assert list(overlapped.timings)[:len(SERIAL_ORDER)] == [
        'pass1', 'cues', 'coarse', 'heads1', 'prepare', 'pass2', 'cluster', 'refine']
    assert log.reads('heads1') == 0 and log.reads('prepare') == 0
    assert recorder.log == [
        ('follow_main',), ('to_side', 'list', 'Tensor'), ('run', True),  # heads: after coarse
        ('run', True),  # prepare
        ('follow_main',), ('to_side', 'Tensor', 'Tensor'),
        ('run', True),  # cluster
        ('to_main', '_HeadsOne', RefinePlan.__name__), ('join',)]


def test_side_stages_follow_the_settings(model):
    pipe = VGGT4DPipeline(model, PipelineConfig(overlap_streams=True, chunk_frames=8))
    assert pipe.side_stages(8) == ()  # CPU
    pipe.device = torch.device('cuda')  # the decision only: nothing runs here
    assert pipe.side_stages(8) == ('heads1', 'prepare', 'cluster')
    assert pipe.side_stages(9) == ()  # a long window runs serially
    cases = {(('profile', True),): (),
             (('overlap_streams', False),): (),
             (('refine_enabled', False),): ('heads1',),
             (('compile_model', True), ('compile_mode', 'reduce-overhead')): ('prepare',
                                                                              'cluster'),
             (('compile_model', True), ('compile_mode', 'max-autotune-no-cudagraphs')): (
                 'heads1', 'prepare', 'cluster')}
    for changes, expected in cases.items():
        pipe.config = dataclasses.replace(pipe.config, **dict(changes))
        assert pipe.side_stages(8) == expected, changes
        pipe.config = PipelineConfig(overlap_streams=True, chunk_frames=8)


def test_side_stream_without_a_stream_does_nothing():
    lanes = SideStream(None)
    assert not lanes.active
    lanes.follow_main()
    lanes.join()
    lanes.to_side(torch.zeros(2), [torch.ones(1), None], {'a': torch.ones(1)})
    lanes.to_main(None)
    with lanes.run():
        value = torch.ones(2) + 1
    assert torch.equal(value, torch.full((2,), 2.0))


@CUDA
@pytest.mark.parametrize('refine_enabled, views, start', [
    (True, 1, 'pass1'), (False, 1, 'pass1'), (True, 2, 'pass1'), (True, 1, 'coarse')])
def test_overlapped_window_is_bit_identical_to_the_serial_window(refine_enabled, views, start):
    torch.manual_seed(0)
    net = VGGT(VGGTConfig.tiny()).eval()
    with torch.no_grad():  # every block matters (as the motion fixture)
        for name, param in net.aggregator.named_parameters():
            if name.endswith('gamma') or name in ('camera_token', 'register_token'):
                param.copy_(torch.randn_like(param) * 0.5)
    config = PipelineConfig(refine_enabled=refine_enabled)
    net = prepare_model(net, config, 'cuda')
    expected = ('heads1', 'prepare', 'cluster') if refine_enabled else ('heads1',)

    def windows(pipe: VGGT4DPipeline) -> list:
        # The same window twice (the refinement's k-means graph recorded, then replayed),
        # then another one; the side stream is reused from window to window.
        layout = RigLayout.for_frames(6, views)
        runs = [pipe.run_tensor(_images(6, seed), layout.step_of_frame, layout=layout)
                for seed in (1, 1, 3)]
        torch.cuda.synchronize()
        return runs

    shared = VGGT4DPipeline(net, config, device='cuda')
    assert shared.side_stages(6) == ()
    serial = windows(shared)
    assert 'side' not in serial[-1].timings
    # The same pipeline overlapped: graphs recorded on the main stream replay on the side.
    shared.config = dataclasses.replace(config, overlap_streams=True, overlap_start=start)
    fresh = VGGT4DPipeline(net, shared.config, device='cuda')  # graphs recorded on the side
    for pipe in (shared, fresh):
        assert pipe.side_stages(6) == expected
        overlapped = windows(pipe)
        assert 'side' in overlapped[-1].timings
        assert all(overlapped[-1].timings[name] >= 0 for name in expected)
        for one, other in zip(serial, overlapped):
            _assert_same(one, other)
    assert serial[0].coarse_masks.any() and not serial[0].coarse_masks.all()
