# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""GPU checks (skipped without CUDA): device parity, masked SDPA kernels, full-size memory."""

import pytest
import torch

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.hooks import CaptureRequest, KeyValueMask
from vggt4d_ros.model.vggt import VGGT

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def _tiny(device: str) -> VGGT:
    torch.manual_seed(0)
    return VGGT(VGGTConfig.tiny()).eval().to(device)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_cuda_matches_cpu_and_masks_work_in_bf16() -> None:
    torch.manual_seed(1)
    images = torch.rand(2, 4, 3, 56, 70)
    dynamic = torch.rand(2, 4, 20) < 0.3
    cpu, gpu = _tiny('cpu'), _tiny('cuda')
    with torch.no_grad():
        ref = cpu(images, kv_mask=KeyValueMask(dynamic=dynamic), heads={'camera', 'depth'})
        out = gpu(images.cuda(), kv_mask=KeyValueMask(dynamic=dynamic.cuda()),
                  heads={'camera', 'depth'})
        assert _rel(out['depth'].cpu(), ref['depth']) < 1e-3
        gpu.to(torch.bfloat16)
        for batch in (1, 2):  # key-index path and boolean-mask path
            half = gpu(images[:batch].cuda(), kv_mask=KeyValueMask(dynamic=dynamic[:batch].cuda()),
                       heads={'camera', 'depth'})
            assert _rel(half['depth'].cpu(), ref['depth'][:batch]) < 0.05


def test_full_model_bf16_eight_frames_fits_the_official_memory() -> None:
    torch.cuda.empty_cache()
    with torch.device('cuda'):
        model = VGGT(VGGTConfig.full()).eval()
    model.to(torch.bfloat16)
    images = torch.rand(8, 3, 392, 518, device='cuda')
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        out = model(images, heads={'camera', 'depth', 'point'})
        first = model(images, capture=CaptureRequest((0, 3, 4, 5, 6, 7, 17, 18, 19, 20, 21), (0,)),
                      heads={'camera', 'depth'})
        dynamic = torch.rand(1, 8, 28 * 37, device='cuda') < 0.2
        second = model(images, kv_mask=KeyValueMask(dynamic=dynamic), heads={'camera'},
                       patch_tokens=first['captures'].patch_features)
    peak_gib = torch.cuda.max_memory_allocated() / 2**30
    assert out['depth'].shape == (1, 8, 392, 518, 1)
    assert torch.isfinite(second['pose_enc']).all()
    assert peak_gib < 9.65, peak_gib
