# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The speed tools of issue 17 run end to end on the CPU with the tiny model."""

import pytest
import torch
from torch import nn

from vggt4d_ros.model.fp8 import Fp8Linear
from vggt4d_ros.model.layers import Block
from vggt4d_ros.tools import bench_fast_mode
from vggt4d_ros.tools import bench_pipeline

TINY = ['--config', 'tiny', '--device', 'cpu', '--height', '56', '--width', '70',
        '--dtype', 'fp32', '--warmup', '0', '--repeats', '1']


def test_fast_mode_tool_reports_deviation_for_each_variant_and_scaling(capsys):
    rows = bench_fast_mode.main(TINY + ['--frames', '3', '--scaling', 'row'])
    pairs = [(r['weights'], r['scaling']) for r in rows]
    assert pairs == [('random', 'row'), ('outliers', 'row')]
    for row in rows:
        assert 0.0 <= row['coarse_iou'] <= 1.0 and 0.0 <= row['refined_iou'] <= 1.0
        assert row['pose_enc'] > 0.0  # quantisation changes the result
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| 3 |')]
    assert len(table) == 2 + 2  # one exact row per variant, one fast row per scaling


@torch.no_grad()
def test_outlier_channels_change_the_gemm_inputs_not_the_function():
    torch.manual_seed(0)
    block = Block(64, 4, init_values=0.5, qk_norm=True).eval()
    nn.init.normal_(block.norm1.bias, std=0.1)
    x = torch.randn(2, 9, 64)
    qkv, fc1 = block.attn.qkv(block.norm1(x)), block.mlp.fc1(block.norm2(x))
    plain_input = block.norm1(x)
    channels = torch.tensor([3, 40])
    bench_fast_mode._outlier_channels(block, channels, 30.0)
    torch.testing.assert_close(block.norm1(x)[..., channels], 30.0 * plain_input[..., channels])
    torch.testing.assert_close(block.attn.qkv(block.norm1(x)), qkv, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(block.mlp.fc1(block.norm2(x)), fc1, atol=1e-5, rtol=1e-4)


def test_outlier_variant_has_heavy_tailed_weights_and_set_layer_scales():
    args = bench_fast_mode.parse_args(TINY + ['--outlier-layer-scale', '0.25'])
    plain = bench_fast_mode.build_model(args, 'random').aggregator.global_blocks[1]
    heavy = bench_fast_mode.build_model(args, 'outliers').aggregator.global_blocks[1]

    def kurtosis(weight: torch.Tensor) -> float:
        centred = weight.detach().double().flatten() - weight.double().mean()
        return float((centred ** 4).mean() / (centred ** 2).mean() ** 2)

    assert kurtosis(plain.mlp.fc2.weight) < 3.5 < 6.0 < kurtosis(heavy.mlp.fc2.weight)
    assert torch.all(heavy.ls1.gamma == 0.25) and torch.all(heavy.ls2.gamma == 0.25)


# flex and auto fall back to SDPA on the CPU as flash4 does (same code path).
@pytest.mark.parametrize('flags', [['--attention', 'sdpa'], ['--attention', 'flash4'],
                                   ['--precision', 'fast', '--fp8-scaling', 'tensor']])
def test_pipeline_tool_runs_each_choice_on_the_cpu(flags, capsys):
    bench_pipeline.main(TINY + ['--frames', '2'] + flags)
    out = capsys.readouterr().out
    assert f'attention={flags[1] if flags[0] == "--attention" else "sdpa"}' in out
    assert [line for line in out.splitlines() if line.startswith('| 2 |')]


def test_pipeline_tool_builds_the_fast_model():
    args = bench_pipeline.parse_args(TINY + ['--precision', 'fast'])
    pipe = bench_pipeline.build_pipeline(args)
    assert any(isinstance(m, Fp8Linear) for m in pipe.model.modules())


def test_pipeline_tool_times_serial_and_overlapped_windows(capsys):
    bench_pipeline.main(TINY + ['--frames', '2', '--repeats', '2', '--overlap-streams', 'both',
                                '--main-priority', 'default', 'high',
                                '--overlap-start', 'pass1', 'coarse'])
    out = capsys.readouterr().out
    assert 'overlap_streams=both' in out
    rows = [line.split(' |')[0] for line in out.splitlines() if line.startswith('| 2')]
    assert rows == ['| 2', '| 2 overlap', '| 2 overlap hi', '| 2 overlap @coarse',
                    '| 2 overlap hi @coarse']
    # The CPU runs every row serially (no stage marked); the results are compared.
    assert '*' not in out.split('| window |')[1].split('\n\n')[0]
    assert '2: serial runs repeat bit for bit' in out
    assert '2 overlap: overlapped result identical to the serial one' in out
    assert '2 overlap hi: overlapped result identical to the serial one' in out
    assert '2 overlap @coarse: overlapped result identical to the serial one' in out


def test_pipeline_tool_reports_differing_results():
    args = bench_pipeline.parse_args(TINY + ['--frames', '2', '--repeats', '2'])
    pipe = bench_pipeline.build_pipeline(args)
    layout = bench_pipeline.layouts([2], [1])[0]
    _, (first, last) = bench_pipeline.bench_one(pipe, layout, args)
    assert bench_pipeline.differing_fields(first, last) == []
    last.refined_masks = ~last.refined_masks
    assert bench_pipeline.differing_fields(first, last) == ['refined_masks']
