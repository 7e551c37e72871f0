# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""FP8 fast mode: quantisation, the emulated and real FP8 GEMM, model preparation."""

import pytest
import torch
from torch import nn

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.fp8 import E4M3, E4M3_MAX, fp8_matmul, Fp8Linear, linear_rows
from vggt4d_ros.model.fp8 import quantise, quantise_linears
from vggt4d_ros.model.layers import Attention, Mlp
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.motion.pipeline import PipelineConfig, VGGT4DPipeline
from vggt4d_ros.motion.prepare import prepare_model

CUDA = torch.cuda.is_available()
FP8_GPU = CUDA and torch.cuda.get_device_capability() >= (8, 9)


def _linear(inputs=64, outputs=48, seed=0):
    torch.manual_seed(seed)
    layer = nn.Linear(inputs, outputs)
    nn.init.normal_(layer.bias, std=0.1)
    return layer


def _relative(value, reference):
    return ((value.double() - reference.double()).norm() / reference.double().norm()).item()


@pytest.mark.parametrize('scaling', ['row', 'tensor'])
def test_quantise_round_trip_is_within_e4m3_precision(scaling):
    x = torch.randn(40, 64) * torch.logspace(-2, 1, 40)[:, None]
    x8, scale = quantise(x, scaling)
    assert x8.dtype == E4M3 and scale.dtype == torch.float32
    assert scale.shape == ((40, 1) if scaling == 'row' else ())
    assert x8.float().abs().max() <= E4M3_MAX
    back = x8.float() * scale
    # e4m3 keeps 3 mantissa bits: relative step 2^-3, rounding error <= 2^-4 of the value
    # (plus the subnormal floor of small values in a shared scale).
    floor = scale * 2.0 ** -9
    assert ((back - x).abs() <= x.abs() * 2.0 ** -4 + floor).all()
    with pytest.raises(ValueError, match='unknown FP8 scaling'):
        quantise(x, 'channel')


def test_row_scaling_keeps_small_rows_precise_where_tensor_scaling_does_not():
    x = torch.randn(8, 64)
    x[0] *= 1e5  # one outlier token: the others fall into e4m3 subnormals under its scale
    row = quantise(x, 'row')
    tensor = quantise(x, 'tensor')
    small = slice(1, None)
    error_row = _relative(row[0][small].float() * row[1][small], x[small])
    error_tensor = _relative(tensor[0][small].float() * tensor[1], x[small])
    assert error_row < 0.05 < error_tensor


@pytest.mark.parametrize('scaling', ['row', 'tensor'])
def test_fp8_linear_is_close_to_the_linear_layer(scaling):
    layer = _linear()
    x = torch.randn(3, 17, 64)
    fast = Fp8Linear(layer, scaling)
    out = fast(x)
    assert out.shape == (3, 17, 48) and out.dtype == x.dtype
    error = _relative(out, layer(x))
    assert 1e-4 < error < 0.08  # quantised (not the fp32 product), but close


@pytest.mark.skipif(not hasattr(torch, '_scaled_mm'), reason='no torch._scaled_mm')
@pytest.mark.parametrize('scaling', ['row', 'tensor'])
def test_emulation_is_the_scaled_mm_product(scaling):
    """The fp32 emulation computes what torch._scaled_mm computes (where the CPU has it)."""
    x8, x_scale = quantise(torch.randn(32, 64), scaling)
    w8, w_scale = quantise(torch.randn(48, 64), scaling)
    emulated = fp8_matmul(x8, x_scale, w8, w_scale, torch.float32, emulate=True)
    try:
        real = fp8_matmul(x8, x_scale, w8, w_scale, torch.float32, emulate=False)
    except (RuntimeError, NotImplementedError) as error:
        pytest.skip(f'torch._scaled_mm does not run on this CPU build: {error}')
    torch.testing.assert_close(real, emulated, atol=1e-4, rtol=1e-2)


@torch.no_grad()
def test_fp8_linear_traces_in_one_graph():
    fast = Fp8Linear(_linear(), 'row')
    x = torch.randn(5, 64)
    torch._dynamo.reset()
    compiled = torch.compile(fast, backend='eager', fullgraph=True)
    torch.testing.assert_close(compiled(x), fast(x), atol=0, rtol=0)


def test_rows_slice_equals_the_full_output():
    layer = _linear(64, 96)
    x = torch.randn(2, 5, 64)
    fast = Fp8Linear(layer, 'row')
    torch.testing.assert_close(linear_rows(fast, x, 32, 96), fast(x)[..., 32:96])
    torch.testing.assert_close(linear_rows(layer, x, 0, 32), layer(x)[..., :32])


def test_dtype_moves_keep_the_e4m3_weight_and_fp32_scales():
    fast = Fp8Linear(_linear(), 'row')
    before = fast.weight_fp8.clone()
    fast.to(torch.bfloat16)
    assert fast.weight_fp8.dtype == E4M3 and torch.equal(fast.weight_fp8.float(), before.float())
    assert fast.weight_scale.dtype == torch.float32 and fast.bias.dtype == torch.bfloat16
    out = fast(torch.randn(4, 64, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16


def test_quantise_linears_replaces_only_gemm_sized_layers():
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10), nn.Linear(10, 16))
    assert quantise_linears(model) == 1
    assert isinstance(model[0], Fp8Linear)
    assert type(model[2]) is nn.Linear and type(model[3]) is nn.Linear
    assert quantise_linears(model) == 0  # idempotent


def _tiny_model():
    torch.manual_seed(0)
    return VGGT(VGGTConfig.tiny()).eval()


def test_exact_mode_leaves_the_model_untouched():
    model = prepare_model(_tiny_model(), PipelineConfig(), 'cpu')
    assert not any(isinstance(m, Fp8Linear) for m in model.modules())
    assert all(m.backend == 'sdpa' for m in model.modules() if isinstance(m, Attention))


def test_fast_mode_quantises_the_aggregator_blocks_and_runs_a_window():
    config = PipelineConfig(precision='fast', attention='auto')
    model = prepare_model(_tiny_model(), config, 'cpu')
    aggregator = model.aggregator
    quantised = [m for m in model.modules() if isinstance(m, Fp8Linear)]
    depth = aggregator.config.depth
    assert len(quantised) == 2 * depth * 4  # qkv, proj, fc1, fc2 per frame/global block
    blocks = list(aggregator.frame_blocks) + list(aggregator.global_blocks)
    assert all(isinstance(b.mlp.fc1, Fp8Linear) for b in blocks)
    assert not any(isinstance(m, Fp8Linear) for m in aggregator.patch_embed.modules())
    assert all(m.backend == 'auto' for m in model.modules() if isinstance(m, Attention))
    # The fused GELU never applies to an FP8 fc1.
    assert not any(m._fuse(torch.zeros(1, m.fc2.in_features)) for m in model.modules()
                   if isinstance(m, Mlp))
    pipeline = VGGT4DPipeline(model, config)
    result = pipeline.run_tensor(torch.rand(3, 3, 56, 70), [0, 1, 2])
    assert torch.isfinite(result.depth).all() and torch.isfinite(result.extrinsics).all()
    assert result.refined_masks.shape == (3, 56, 70)


def test_fast_mode_deviates_from_exact_but_stays_close():
    images = torch.rand(1, 2, 3, 56, 70)
    exact_model = prepare_model(_tiny_model(), PipelineConfig(), 'cpu')
    fast_model = prepare_model(_tiny_model(), PipelineConfig(precision='fast'), 'cpu')
    with torch.no_grad():
        exact, _, _ = exact_model.aggregator(images)
        fast, _, _ = fast_model.aggregator(images)
    last = len(exact) - 1
    error = _relative(fast[last], exact[last])
    assert 1e-5 < error < 0.1


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError, match='precision'):
        prepare_model(_tiny_model(), PipelineConfig(precision='int4'), 'cpu')


@pytest.mark.skipif(not FP8_GPU, reason='needs a CUDA GPU with FP8 (compute capability 8.9+)')
@pytest.mark.parametrize('scaling', ['row', 'tensor'])
@torch.no_grad()
def test_cuda_scaled_mm_matches_the_emulation(scaling):
    layer = _linear(1024, 3072).cuda().to(torch.bfloat16)
    x = torch.randn(8328, 1024, device='cuda', dtype=torch.bfloat16)
    fast = Fp8Linear(layer, scaling)
    real = fast(x).float()
    fast.emulate = True
    emulated = fast(x).float()
    assert _relative(real, emulated) < 5e-3  # bf16 output rounding and summation order
    assert _relative(real, layer(x).float()) < 0.08
    compiled = torch.compile(fast, fullgraph=True)
    fast.emulate = None
    assert _relative(compiled(x).float(), real) < 5e-3


@pytest.mark.skipif(not FP8_GPU, reason='needs a CUDA GPU with FP8 (compute capability 8.9+)')
@torch.no_grad()
def test_cuda_fast_mode_window_runs_compiled():
    torch.manual_seed(0)
    config = PipelineConfig(precision='fast', compile_model=True)
    model = prepare_model(VGGT(VGGTConfig.tiny()).to(torch.bfloat16), config, 'cuda')
    pipeline = VGGT4DPipeline(model, config, 'cuda', torch.bfloat16)
    result = pipeline.run_tensor(torch.rand(4, 3, 56, 70, device='cuda'), [0, 1, 2, 3])
    assert torch.isfinite(result.depth).all() and torch.isfinite(result.extrinsics).all()
