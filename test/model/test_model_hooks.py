# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Aggregator-level q/k capture, key/value masking and patch-feature reuse (tiny config)."""

import math

import pytest
import torch

from vggt4d_ros.model import layers
from vggt4d_ros.model.aggregator import Aggregator
from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.hooks import CaptureRequest, KeyValueMask

GRID = (4, 5)


@pytest.fixture(scope='module')
def aggregator() -> Aggregator:
    torch.manual_seed(0)
    model = Aggregator(VGGTConfig.tiny()).eval()
    # Random LayerScale/special tokens large enough that every block matters.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('gamma') or name in ('camera_token', 'register_token'):
                param.copy_(torch.randn_like(param) * 0.5)
    return model


@pytest.fixture(scope='module')
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, 3, 3, GRID[0] * 14, GRID[1] * 14)


def _dynamic(images: torch.Tensor, fraction: float = 0.3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    batch, frames = images.shape[:2]
    return torch.rand(batch, frames, GRID[0] * GRID[1], generator=generator) < fraction


def _run(model, images, **kwargs):
    with torch.no_grad():
        return model(images, **kwargs)


def test_capture_is_what_attention_used(aggregator, images) -> None:
    seen = {}

    def grab_input(module, args, kwargs):
        seen['x'], seen['pos'] = args[0], kwargs['pos']

    handle = aggregator.global_blocks[2].register_forward_pre_hook(grab_input, with_kwargs=True)
    try:
        request = CaptureRequest(q_global_blocks=(0, 2), k_global_blocks=(2,))
        tokens, start, captures = _run(aggregator, images, capture=request)
    finally:
        handle.remove()
    assert set(captures.q) == {0, 2} and set(captures.k) == {2}
    batch, frames = images.shape[:2]
    n = GRID[0] * GRID[1]
    heads, head_dim = 4, 16
    assert captures.q[2].shape == (batch, frames, heads, n, head_dim)
    # Independent recomputation of q/k from the block input (after QK-norm and RoPE).
    attn = aggregator.global_blocks[2].attn
    with torch.no_grad():
        h = aggregator.global_blocks[2].norm1(seen['x'])
        qkv = attn.qkv(h).reshape(batch, -1, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        q = attn.rope(attn.q_norm(qkv[0]), seen['pos'])
        k = attn.rope(attn.k_norm(qkv[1]), seen['pos'])
        v = qkv[2]
        # Attention recomputed from the captured patch q/k plus the specials must match too.
        logits = q @ k.transpose(-1, -2) / math.sqrt(head_dim)
        out = attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(batch, -1, 64))
    per_frame = 5 + n
    q_ref = q.reshape(batch, heads, frames, per_frame, head_dim)[:, :, :, 5:].transpose(1, 2)
    k_ref = k.reshape(batch, heads, frames, per_frame, head_dim)[:, :, :, 5:].transpose(1, 2)
    assert torch.allclose(captures.q[2], q_ref, atol=1e-6)
    assert torch.allclose(captures.k[2], k_ref, atol=1e-6)
    block = aggregator.global_blocks[2]
    with torch.no_grad():
        mid = seen['x'] + block.ls1(out)
        block_out = mid + block.ls2(block.mlp(block.norm2(mid)))
    global_half = tokens[2][..., 64:].reshape(batch, -1, 64)
    assert torch.allclose(global_half, block_out, atol=1e-5)
    assert torch.equal(captures.patch_features, aggregator.embed_patches(images))


def test_capture_does_not_change_outputs(aggregator, images) -> None:
    plain, _, captures = _run(aggregator, images)
    assert captures is None
    request = CaptureRequest(q_global_blocks=(0, 1, 3), k_global_blocks=(0,))
    captured, _, _ = _run(aggregator, images, capture=request)
    for a, b in zip(plain, captured):
        assert torch.equal(a, b)


def test_empty_mask_is_bit_identical(aggregator, images) -> None:
    plain, _, _ = _run(aggregator, images)
    empty = KeyValueMask(dynamic=torch.zeros(2, 3, GRID[0] * GRID[1], dtype=torch.bool))
    no_blocks = KeyValueMask(dynamic=_dynamic(images), frame_blocks=range(0),
                             global_blocks=range(0))
    for mask in (empty, no_blocks):
        masked, _, _ = _run(aggregator, images, kv_mask=mask)
        for a, b in zip(plain, masked):
            assert torch.equal(a, b)


def _sdpa_by_removing_keys(original):
    """Reference like the official pass 2: gather the kept keys/values per batch element."""
    def sdpa(q, k, v, attn_mask=None, **kwargs):
        if attn_mask is None:
            return original(q, k, v, **kwargs)
        keep = attn_mask.expand(q.shape[0], 1, 1, k.shape[-2])[:, 0, 0]
        outs = []
        for b in range(q.shape[0]):
            idx = keep[b].nonzero()[:, 0]
            outs.append(original(q[b:b + 1], k[b:b + 1, :, idx], v[b:b + 1, :, idx]))
        return torch.cat(outs)
    return sdpa


@pytest.mark.parametrize('batch', [1, 2])
def test_mask_equals_key_removal(aggregator, images, monkeypatch, batch: int) -> None:
    # batch 1 drops keys by index in global blocks; batch 2 uses a boolean SDPA mask.
    images = images[:batch]
    mask = KeyValueMask(dynamic=_dynamic(images), frame_blocks=range(2), global_blocks=range(2))
    ours, _, _ = _run(aggregator, images, kv_mask=mask)
    plain, _, _ = _run(aggregator, images)
    monkeypatch.setattr(layers.F, 'scaled_dot_product_attention',
                        _sdpa_by_removing_keys(layers.F.scaled_dot_product_attention))
    reference, _, _ = _run(aggregator, images, kv_mask=mask)
    for a, b, c in zip(ours, reference, plain):
        assert torch.allclose(a, b, atol=1e-5)
        assert not torch.allclose(a, c, atol=1e-3)


def test_mask_acts_only_in_masked_blocks(aggregator, images) -> None:
    dynamic = _dynamic(images)
    plain, _, _ = _run(aggregator, images)
    only_global0, _, _ = _run(
        aggregator, images,
        kv_mask=KeyValueMask(dynamic=dynamic, frame_blocks=(), global_blocks=(0,)))
    # Frame block 0 runs before the masked global block 0: unchanged; everything after differs.
    assert torch.equal(only_global0[0][..., :64], plain[0][..., :64])
    assert not torch.allclose(only_global0[0][..., 64:], plain[0][..., 64:], atol=1e-3)
    only_frame1, _, _ = _run(
        aggregator, images,
        kv_mask=KeyValueMask(dynamic=dynamic, frame_blocks=(1,), global_blocks=()))
    assert torch.equal(only_frame1[0], plain[0])
    assert not torch.allclose(only_frame1[1][..., :64], plain[1][..., :64], atol=1e-3)


def test_patch_token_reuse_is_bit_identical(aggregator, images) -> None:
    plain, _, captures = _run(aggregator, images, capture=CaptureRequest())
    reused, _, _ = _run(aggregator, images, patch_tokens=captures.patch_features)
    for a, b in zip(plain, reused):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match='patch_tokens'):
        _run(aggregator, images, patch_tokens=captures.patch_features[:, :2])


def test_mask_shape_is_checked(aggregator, images) -> None:
    with pytest.raises(ValueError, match='kv_mask.dynamic has shape'):
        _run(aggregator, images, kv_mask=KeyValueMask(dynamic=_dynamic(images)[:, :, :-1]))


def test_index_path_equals_boolean_mask_path(aggregator, images) -> None:
    # One window takes the key-index path in global blocks, two windows the boolean mask.
    dynamic = _dynamic(images)
    single, _, _ = _run(aggregator, images[:1], kv_mask=KeyValueMask(dynamic=dynamic[:1]))
    double, _, _ = _run(aggregator, images, kv_mask=KeyValueMask(dynamic=dynamic))
    for a, b in zip(single, double):
        assert torch.allclose(a[0], b[0], atol=1e-5)
