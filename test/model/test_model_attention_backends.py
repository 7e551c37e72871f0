# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Attention backend choice (sdpa / flash4 / flex / auto): selection, fallback, kernels."""

import dataclasses
import logging
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from vggt4d_ros.model import attention
from vggt4d_ros.model.attention import attend, attend_kept_keys, key_mask, kept_first
from vggt4d_ros.model.attention import select_kernel, unavailable_reason
from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.hooks import KeyValueMask
from vggt4d_ros.model.layers import Attention, Block, kept_key_attention
from vggt4d_ros.model.layers import use_attention_backend
from vggt4d_ros.model.rope import RotaryPositionEmbedding2D
from vggt4d_ros.model.vggt import VGGT

CUDA = torch.cuda.is_available()


def _qkv(batch=2, heads=3, tokens=13, dim=8, device='cpu', dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, heads, tokens, dim, generator=generator).to(device, dtype)
                 for _ in range(3))


def _reference(q, k, v, keep=None):
    """fp64 softmax attention; ``keep`` (``Bool[B,Tk]``) drops keys."""
    q, k, v = (t.double() for t in (q, k, v))
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if keep is not None:
        logits = logits.masked_fill(~keep[:, None, None, :].to(q.device), -math.inf)
    return logits.softmax(-1) @ v


@pytest.fixture(autouse=True)
def _fresh_log_memory():
    attention._logged.clear()
    yield
    attention._logged.clear()


def test_sdpa_is_the_plain_sdpa_call_bit_for_bit():
    q, k, v = _qkv()
    keep = torch.rand(2, 13) > 0.4
    keep[:, 0] = True
    mask = keep[:, None, None, :]
    assert torch.equal(attend(q, k, v), F.scaled_dot_product_attention(q, k, v))
    assert torch.equal(attend(q, k, v, 'sdpa', mask),
                       F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


@pytest.mark.parametrize('backend', ['auto', 'flash4', 'flex'])
def test_cpu_falls_back_to_sdpa_and_logs_once(backend, caplog):
    q, k, v = _qkv()
    with caplog.at_level(logging.WARNING, logger=attention.LOG.name):
        assert select_kernel(backend, q) == 'sdpa'
        out = attend(q, k, v, backend)
        attend(q, k, v, backend)
    assert torch.equal(out, F.scaled_dot_product_attention(q, k, v))
    warnings = [r for r in caplog.records if 'falls back to sdpa' in r.getMessage()]
    # 'auto' is allowed to pick sdpa silently; an explicit choice says why, once.
    assert len(warnings) == (0 if backend == 'auto' else 1)
    if warnings:
        assert 'cpu device' in warnings[0].getMessage()


def test_unknown_backend_is_rejected():
    q, _, _ = _qkv()
    with pytest.raises(ValueError, match='unknown attention backend'):
        select_kernel('cudnn9', q)
    with pytest.raises(ValueError, match='unknown attention backend'):
        use_attention_backend(Attention(16, 2), 'fast')


def test_unavailable_reasons_name_the_cause(monkeypatch):
    q, _, _ = _qkv()
    assert unavailable_reason('sdpa', q) is None
    assert unavailable_reason('flash4', q) == 'cpu device'
    # Past the device check: the later checks read only dtype, shape, capability, import.
    monkeypatch.setattr(torch.Tensor, 'is_cuda', property(lambda self: True))
    monkeypatch.setattr(attention, '_capability', lambda device: (9, 0))
    assert 'bf16/fp16' in unavailable_reason('flash4', q)
    half = q.to(torch.bfloat16)
    assert unavailable_reason('flash4', half[..., :6]).startswith('head dim 6')
    monkeypatch.setattr(attention, 'flash4_functions', lambda: None)
    assert 'not importable' in unavailable_reason('flash4', half)
    monkeypatch.setattr(attention, '_capability', lambda device: (8, 0))
    assert 'older than Hopper' in unavailable_reason('flash4', half)
    assert unavailable_reason('flex', half) is None


def test_select_kernel_keeps_sdpa_for_masks_that_are_not_key_masks(monkeypatch):
    q, _, _ = _qkv(dtype=torch.bfloat16)
    monkeypatch.setattr(attention, 'unavailable_reason', lambda kernel, q: None)
    keys = torch.ones(2, 1, 1, 13, dtype=torch.bool)
    assert select_kernel('flex', q, keys) == 'flex'
    assert select_kernel('flash4', q, keys[:1]) == 'flash4'  # broadcast over the batch
    assert select_kernel('auto', q) == 'flash4'
    # flash4-global: batch-1 calls (global blocks) on flash4, batched frame calls on SDPA.
    assert select_kernel('flash4-global', q) == 'sdpa'
    assert select_kernel('flash4-global', q[:1]) == 'flash4'
    assert select_kernel('flash4-global', q[:1], keys[:1]) == 'flash4'
    assert select_kernel('flash4', q, torch.ones(2, 1, 13, 13, dtype=torch.bool)) == 'sdpa'
    assert select_kernel('flex', q, torch.zeros(2, 1, 1, 13)) == 'sdpa'  # additive mask


def test_key_mask_reads_batch_key_masks_only():
    keep = torch.rand(3, 1, 1, 7) > 0.5
    assert torch.equal(key_mask(keep, 3, 7), keep[:, 0, 0])
    assert key_mask(keep[:1], 3, 7).shape == (3, 7)
    assert key_mask(keep, 3, 8) is None
    assert key_mask(torch.ones(3, 2, 1, 7, dtype=torch.bool), 3, 7) is None
    assert key_mask(None, 3, 7) is None


def test_kept_first_orders_kept_keys_stably_with_counts():
    keep = torch.tensor([[True, False, True, True, False], [False, False, True, False, True]])
    order, counts = kept_first(keep)
    assert counts.tolist() == [3, 2] and counts.dtype == torch.int32
    assert order[0, :3].tolist() == [0, 2, 3] and order[1, :2].tolist() == [2, 4]
    assert sorted(order[0].tolist()) == list(range(5))


def _varlen_by_definition(q, k, v, seqused_k=None):
    """The documented contract of flash_attn_varlen_func on [B,T,H,D]: keys < seqused_k[b]."""
    outs = []
    for b in range(q.shape[0]):
        used = k.shape[1] if seqused_k is None else int(seqused_k[b])
        qb, kb, vb = (t[b:b + 1].transpose(1, 2) for t in (q, k[:, :used], v[:, :used]))
        outs.append(F.scaled_dot_product_attention(qb, kb, vb).transpose(1, 2))
    return torch.cat(outs), None


def test_flash4_key_mask_gathers_each_rows_kept_keys(monkeypatch):
    """The kept-first gather + seqused_k equals dropping the keys (kernel replaced by its spec)."""
    monkeypatch.setattr(attention, 'flash4_functions',
                        lambda: (_varlen_by_definition, _varlen_by_definition))
    q, k, v = _qkv(batch=3, tokens=11)
    keep = torch.rand(3, 11) > 0.5
    keep[:, 0] = True
    masked = attention.flash4_key_masked_attention(q, k, v, keep)
    torch.testing.assert_close(masked.double(), _reference(q, k, v, keep), atol=1e-5, rtol=0)
    plain = attention.flash4_attention(q, k, v)
    torch.testing.assert_close(plain.double(), _reference(q, k, v), atol=1e-5, rtol=0)
    assert plain.transpose(1, 2).is_contiguous()  # the [B,T,H,D] layout the model reshapes


def test_flex_kernel_drops_masked_keys(monkeypatch):
    """The flex path's score modification (run eagerly on the CPU) equals dropping keys."""
    if attention._flex_function() is None:
        pytest.skip('flex_attention not in this torch')
    uncompiled = {True: attention._flex_masked, False: attention._flex_plain}
    monkeypatch.setattr(attention, '_compiled_flex', uncompiled.get)
    q, k, v = _qkv(tokens=16)
    keep = torch.rand(2, 16) > 0.5
    keep[:, 0] = True
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # eager flex warns that it is unfused
        masked = attention.flex_attention(q, k, v, keep)
        plain = attention.flex_attention(q, k, v)
    torch.testing.assert_close(masked.double(), _reference(q, k, v, keep), atol=1e-5, rtol=0)
    torch.testing.assert_close(plain.double(), _reference(q, k, v), atol=1e-5, rtol=0)


def test_kept_key_op_takes_the_backend_and_matches_dropping_keys():
    q, k, v = _qkv(batch=1, tokens=12)
    keep = torch.rand(12) > 0.4
    keep[0] = True
    index = keep.nonzero().squeeze(1)
    reference = _reference(q, k, v, keep[None])
    for backend in ('sdpa', 'flex', 'auto'):  # flex/auto fall back on the CPU
        out = kept_key_attention(q, k, v, keep, backend)
        torch.testing.assert_close(out.double(), reference, atol=1e-5, rtol=0)
        torch.testing.assert_close(attend_kept_keys(q, k, v, index, backend).double(),
                                   reference, atol=1e-5, rtol=0)
    torch.library.opcheck(kept_key_attention, (q, k, v, keep, 'sdpa'))


def test_switch_reaches_every_attention_module_and_default_is_sdpa():
    torch.manual_seed(0)
    model = VGGT(VGGTConfig.tiny()).eval()
    modules = [m for m in model.modules() if isinstance(m, Attention)]
    assert modules and all(m.backend == 'sdpa' for m in modules)
    assert use_attention_backend(model, 'flex') == len(modules)
    assert all(m.backend == 'flex' for m in modules)


def _small_block():
    torch.manual_seed(0)
    rope = RotaryPositionEmbedding2D()
    block = Block(32, 4, init_values=0.5, qk_norm=True, rope=rope).eval()
    table = rope.build_table((2, 3), 5, 8, torch.device('cpu'), torch.float32)
    keep = torch.rand(3, 11) > 0.3
    keep[:, :5] = True
    return block, table, torch.randn(3, 11, 32), keep


@pytest.mark.parametrize('backend', ['sdpa', 'auto', 'flash4', 'flex', 'flash4-global'])
@torch.no_grad()
def test_backend_choice_traces_without_graph_breaks(backend):
    """The per-call choice (imports and device queries done beforehand) compiles in one graph."""
    block, table, x, keep = _small_block()
    reference = block(x, pos=table, attn_mask=keep[:, None, None, :])
    use_attention_backend(block, backend)
    torch._dynamo.reset()
    compiled = torch.compile(block, backend='eager', fullgraph=True)
    out = compiled(x, pos=table, attn_mask=keep[:, None, None, :])
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)
    kept = compiled(x[:1], pos=table, kv_keep=keep[0])
    torch.testing.assert_close(kept, block(x[:1], pos=table, kv_keep=keep[0]))


@torch.no_grad()
def test_flex_path_traces_in_one_graph(monkeypatch):
    """With flex allowed (as on CUDA) the score modification traces inside the model's graph."""
    if attention._flex_function() is None:
        pytest.skip('flex_attention not in this torch')
    block, table, x, keep = _small_block()
    reference = block(x, pos=table, attn_mask=keep[:, None, None, :])
    monkeypatch.setattr(attention, 'unavailable_reason', lambda kernel, q: None)
    use_attention_backend(block, 'flex')
    torch._dynamo.reset()
    compiled = torch.compile(block, backend='eager', fullgraph=True)
    out = compiled(x, pos=table, attn_mask=keep[:, None, None, :])
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- CUDA: each kernel vs fp32

def _cuda_kernels():
    kernels = ['sdpa', 'flex']
    if CUDA and attention.flash4_functions() is not None \
            and torch.cuda.get_device_capability()[0] >= 9:
        kernels.append('flash4')
    return kernels


def _cuda_backends():
    """The CUDA kernels plus the mixed backend where FlashAttention-4 runs."""
    kernels = _cuda_kernels()
    return kernels + (['flash4-global'] if 'flash4' in kernels else [])


def _bf16_bound(q, k, v, keep=None):
    """Error of bf16 SDPA (cuDNN / flash) against fp64, the tolerance each kernel must meet."""
    reference = _reference(q, k, v, keep)
    mask = None if keep is None else keep[:, None, None, :]
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return reference, (sdpa.double() - reference).abs().max().item()


@pytest.mark.skipif(not CUDA, reason='needs CUDA')
@pytest.mark.parametrize('kernel', _cuda_kernels())
@pytest.mark.parametrize('shape', [(8, 16, 1041), (1, 16, 2082)])
@torch.no_grad()
def test_cuda_kernel_matches_fp64_reference_to_bf16_rounding(kernel, shape):
    batch, heads, tokens = shape
    q, k, v = _qkv(batch, heads, tokens, 64, device='cuda', dtype=torch.bfloat16)
    assert select_kernel(kernel, q) == kernel
    reference, bound = _bf16_bound(q, k, v)
    out = attend(q, k, v, kernel)
    assert out.shape == q.shape and out.dtype == torch.bfloat16
    assert (out.double() - reference).abs().max().item() <= 2 * bound + 1e-3
    # Key masks (pass 2's frame blocks) and kept keys (its global blocks).
    keep = torch.rand(batch, tokens, device='cuda') > 0.15
    keep[:, :5] = True
    reference, bound = _bf16_bound(q, k, v, keep)
    masked = attend(q, k, v, kernel, keep[:, None, None, :])
    assert select_kernel(kernel, q, keep[:, None, None, :]) == kernel
    assert (masked.double() - reference).abs().max().item() <= 2 * bound + 1e-3
    if batch == 1:
        index = keep[0].nonzero().squeeze(1)
        kept = attend_kept_keys(q, k, v, index, kernel)
        assert (kept.double() - reference).abs().max().item() <= 2 * bound + 1e-3
        op = kept_key_attention(q, k, v, keep[0], kernel)
        assert (op.double() - reference).abs().max().item() <= 2 * bound + 1e-3


@pytest.mark.skipif(not CUDA, reason='needs CUDA')
@pytest.mark.parametrize('kernel', _cuda_kernels())
@torch.no_grad()
def test_cuda_block_with_each_backend_eager_and_compiled(kernel):
    torch.manual_seed(0)
    rope = RotaryPositionEmbedding2D()
    block = Block(1024, 16, init_values=0.5, qk_norm=True, rope=rope).cuda().eval()
    table = rope.build_table((28, 37), 5, 64, torch.device('cuda'), torch.float32)
    x = torch.randn(2, 1041, 1024, device='cuda')
    exact = block(x, pos=table)  # fp32, SDPA
    block.to(torch.bfloat16)
    half, table16 = x.to(torch.bfloat16), (table[0].bfloat16(), table[1].bfloat16())
    sdpa = block(half, pos=table16).float()
    use_attention_backend(block, kernel)
    out = block(half, pos=table16).float()
    bound = (sdpa - exact).abs().max().item()
    assert (out - exact).abs().max().item() <= 2 * bound + 1e-3
    compiled = torch.compile(block, fullgraph=True)
    torch.testing.assert_close(compiled(half, pos=table16).float(), out, atol=5e-2, rtol=5e-2)


@pytest.mark.skipif('flash4' not in _cuda_kernels(), reason='needs flash_attn.cute on sm_90+')
def test_cuda_flash4_operators_register_cleanly():
    q, k, v = _qkv(2, 4, 64, 64, device='cuda', dtype=torch.bfloat16)
    keep = torch.rand(2, 64, device='cuda') > 0.3
    keep[:, 0] = True
    torch.library.opcheck(attention.flash4_attention, (q, k, v))
    torch.library.opcheck(attention.flash4_key_masked_attention, (q, k, v, keep))


@pytest.mark.skipif(not CUDA, reason='needs CUDA')
@pytest.mark.parametrize('kernel', _cuda_backends())
@torch.no_grad()
def test_cuda_masked_pass_with_each_backend_matches_fp32(kernel):
    """Pass 2 as the pipeline runs it (frame key masks, kept global keys), small model in bf16."""
    torch.manual_seed(0)
    # VGGT's head dimension (64) on the tiny model's depth.
    config = dataclasses.replace(VGGTConfig.tiny(), embed_dim=128, num_heads=2)
    model = VGGT(config).cuda().eval()
    images = torch.rand(1, 4, 3, 56, 70, device='cuda')
    dynamic = torch.rand(1, 4, 20, device='cuda') > 0.7
    mask = KeyValueMask(dynamic, frame_blocks=(0, 1), global_blocks=(0, 1))
    exact = model.aggregator(images, kv_mask=mask)[0][-1].float()  # fp32, SDPA
    model.to(torch.bfloat16)
    sdpa = model.aggregator(images, kv_mask=mask)[0][-1].float()
    use_attention_backend(model, kernel)
    out = model.aggregator(images, kv_mask=mask)[0][-1].float()
    bound = (sdpa - exact).abs().max().item()
    assert (out - exact).abs().max().item() <= 2 * bound + 1e-3
