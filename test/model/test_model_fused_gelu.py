# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The fused fc1 + GELU operator and the MLP switch that uses it."""

import pytest
import torch
import torch.nn.functional as F

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.layers import linear_gelu
from vggt4d_ros.model.layers import Mlp
from vggt4d_ros.model.layers import use_fused_gelu
from vggt4d_ros.model.vggt import VGGT


def _inputs(device: str = 'cpu', dtype: torch.dtype = torch.float32):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(37, 16, generator=generator)
    weight = torch.randn(24, 16, generator=generator) * 0.3
    bias = torch.randn(24, generator=generator) * 0.1
    return tuple(t.to(device, dtype) for t in (x, weight, bias))


def test_linear_gelu_is_the_tanh_gelu_of_the_affine_map():
    x, weight, bias = _inputs()
    expected = F.gelu(x @ weight.T + bias, approximate='tanh')
    torch.testing.assert_close(linear_gelu(x, weight, bias), expected)
    # The tanh form is not the exact GELU (so the switch must stay off in fp32).
    assert not torch.allclose(linear_gelu(x, weight, bias), F.gelu(x @ weight.T + bias),
                              atol=1e-6, rtol=0)


def test_linear_gelu_operator_registration():
    torch.library.opcheck(linear_gelu, _inputs())


def test_switch_reaches_every_mlp_and_leaves_fp32_cpu_exact():
    torch.manual_seed(0)
    model = VGGT(VGGTConfig.tiny()).eval()
    mlps = [m for m in model.modules() if isinstance(m, Mlp)]
    assert use_fused_gelu(model) == len(mlps) > 0
    assert all(m.fused_gelu for m in mlps)
    mlp = mlps[0]
    x = torch.randn(3, 5, mlp.fc1.in_features)
    fused = mlp(x)
    use_fused_gelu(model, False)
    torch.testing.assert_close(fused, mlp(x), atol=0, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@torch.no_grad()
def test_cuda_bf16_fused_mlp_matches_the_exact_one_within_rounding():
    torch.manual_seed(0)
    mlp = Mlp(256, hidden_features=1024).cuda()
    x = torch.randn(2, 300, 256, device='cuda')
    exact = mlp(x)  # float32, exact GELU
    mlp.to(torch.bfloat16)
    half = x.to(torch.bfloat16)
    unfused = mlp(half).float()
    mlp.fused_gelu = True
    fused = mlp(half).float()
    scale = exact.abs().max()
    assert (fused - exact).abs().max() <= 1.5 * (unfused - exact).abs().max() + 1e-3 * scale
    compiled = torch.compile(mlp, fullgraph=True)
    torch.testing.assert_close(compiled(half).float(), fused, atol=2e-2, rtol=2e-2)
    with torch.enable_grad():  # training needs a backward: the exact path is used
        assert torch.equal(mlp(half).float(), unfused)
