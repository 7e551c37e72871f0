# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""RoPE 2D, attention blocks, key/value masking and q/k capture at block level."""

import math

import pytest
import torch

from vggt4d_ros.model.layers import Attention, Block
from vggt4d_ros.model.rope import grid_positions, RotaryPositionEmbedding2D


def test_grid_positions_specials_at_zero_patches_shifted() -> None:
    pos = grid_positions((2, 3), num_special=5, device=torch.device('cpu'))
    assert pos.shape == (11, 2)
    assert torch.equal(pos[:5], torch.zeros(5, 2, dtype=pos.dtype))
    assert pos[5].tolist() == [1, 1]
    assert pos[7].tolist() == [1, 3]
    assert pos[8].tolist() == [2, 1]
    assert pos[-1].tolist() == [2, 3]


def _rope_by_pairs(x: torch.Tensor, pos: torch.Tensor, base: float) -> torch.Tensor:
    """Independent RoPE: rotate channel pairs (j, j + D/4) of each half by pos * freq_j."""
    out = x.clone()
    dim = x.shape[-1]
    half, quarter = dim // 2, dim // 4
    for axis in range(2):
        offset = axis * half
        for j in range(quarter):
            theta = pos[:, axis].double() * base ** (-2.0 * j / half)
            c, s = theta.cos().to(x.dtype), theta.sin().to(x.dtype)
            a = x[..., offset + j]
            b = x[..., offset + j + quarter]
            out[..., offset + j] = a * c - b * s
            out[..., offset + j + quarter] = b * c + a * s
    return out


def test_rope_matches_pairwise_rotation() -> None:
    torch.manual_seed(0)
    rope = RotaryPositionEmbedding2D(frequency=100.0)
    table = rope.build_table((3, 4), 5, 16, torch.device('cpu'), torch.float64)
    x = torch.randn(2, 3, 17, 16, dtype=torch.float64)
    pos = grid_positions((3, 4), 5, torch.device('cpu'))
    assert torch.allclose(rope(x, table), _rope_by_pairs(x, pos, 100.0), atol=1e-12)


def test_rope_tables_are_cached_and_specials_unrotated() -> None:
    rope = RotaryPositionEmbedding2D()
    a = rope.build_table((2, 2), 5, 8, torch.device('cpu'), torch.float32)
    b = rope.build_table((2, 2), 5, 8, torch.device('cpu'), torch.float32)
    assert a[0] is b[0]
    assert torch.equal(a[0][:5], torch.ones(5, 8)) and torch.equal(a[1][:5], torch.zeros(5, 8))


def _block_inputs(seed: int = 0):
    torch.manual_seed(seed)
    rope = RotaryPositionEmbedding2D()
    block = Block(32, 4, init_values=0.5, qk_norm=True, rope=rope).eval()
    table = rope.build_table((2, 3), 5, 8, torch.device('cpu'), torch.float32)
    x = torch.randn(3, 11, 32)
    return block, table, x


def _reference_block(block: Block, x, table, keep=None):
    """Re-derive the block with explicit softmax (optionally dropping keys by index)."""
    attn: Attention = block.attn
    h = block.norm1(x)
    batch, tokens, channels = h.shape
    qkv = attn.qkv(h).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    q, k = attn.rope(attn.q_norm(q), table), attn.rope(attn.k_norm(k), table)
    outs = []
    for b in range(batch):
        idx = torch.arange(tokens) if keep is None else keep[b].nonzero()[:, 0]
        logits = q[b] @ k[b][:, idx].transpose(-1, -2) / math.sqrt(attn.head_dim)
        outs.append(logits.softmax(-1) @ v[b][:, idx])
    out = torch.stack(outs).transpose(1, 2).reshape(batch, tokens, channels)
    x = x + block.ls1(attn.proj(out))
    return x + block.ls2(block.mlp(block.norm2(x))), q, k


def test_block_matches_explicit_attention_and_returns_used_qk() -> None:
    block, table, x = _block_inputs()
    with torch.no_grad():
        out, q, k = block(x, pos=table, return_qk=True)
        ref, q_ref, k_ref = _reference_block(block, x, table)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(q, q_ref, atol=1e-6) and torch.allclose(k, k_ref, atol=1e-6)
    assert torch.equal(block(x, pos=table), out)


def test_masked_block_equals_removing_keys() -> None:
    block, table, x = _block_inputs(1)
    keep = torch.rand(3, 11) > 0.4
    keep[:, :5] = True
    with torch.no_grad():
        out = block(x, pos=table, attn_mask=keep[:, None, None, :])
        ref, _, _ = _reference_block(block, x, table, keep)
        unmasked = block(x, pos=table)
    assert torch.allclose(out, ref, atol=1e-5)
    assert not torch.allclose(out, unmasked, atol=1e-3)


@pytest.mark.parametrize('qk_norm', [False, True])
def test_attention_key_names(qk_norm: bool) -> None:
    names = set(Attention(16, 2, qk_norm=qk_norm).state_dict())
    expected = {'qkv.weight', 'qkv.bias', 'proj.weight', 'proj.bias'}
    if qk_norm:
        expected |= {'q_norm.weight', 'q_norm.bias', 'k_norm.weight', 'k_norm.bias'}
    assert names == expected
