# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Tiny VGGT forward: outputs, head selection, precision modes, compile-friendliness."""

import pytest
import torch

from vggt4d_ros.model.aggregator import Aggregator
from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.hooks import CaptureRequest, KeyValueMask
from vggt4d_ros.model.vggt import VGGT

S, H, W = 3, 56, 70
N = (H // 14) * (W // 14)


@pytest.fixture(scope='module')
def model() -> VGGT:
    torch.manual_seed(0)
    return VGGT(VGGTConfig.tiny()).eval()


@pytest.fixture(scope='module')
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(S, 3, H, W)


def test_default_outputs_have_official_shapes(model, images) -> None:
    with torch.no_grad():
        out = model(images)
    assert out['pose_enc'].shape == (1, S, 9)
    assert len(out['pose_enc_list']) == 4
    assert torch.equal(out['pose_enc_list'][-1], out['pose_enc'])
    assert out['depth'].shape == (1, S, H, W, 1)
    assert out['depth_conf'].shape == (1, S, H, W)
    assert out['world_points'].shape == (1, S, H, W, 3)
    assert out['world_points_conf'].shape == (1, S, H, W)
    assert out['images'].shape == (1, S, 3, H, W)
    assert (out['depth'] > 0).all() and (out['depth_conf'] >= 1).all()
    assert 'track' not in out and 'captures' not in out
    for key in ('pose_enc', 'depth', 'world_points'):
        assert out[key].dtype == torch.float32 and torch.isfinite(out[key]).all()


def test_batched_input_and_tracks(model, images) -> None:
    batch = torch.stack([images, images.flip(-1)])
    queries = torch.tensor([[10.0, 12.0], [30.0, 40.0]]).expand(2, 2, 2)
    with torch.no_grad():
        out = model(batch, queries)
    assert out['depth'].shape == (2, S, H, W, 1)
    assert out['track'].shape == (2, S, 2, 2)
    assert out['vis'].shape == (2, S, 2) and out['conf'].shape == (2, S, 2)


def test_head_selection(model, images) -> None:
    with torch.no_grad():
        out = model(images, heads={'camera'})
        both = model(images)
    assert set(out) == {'pose_enc', 'pose_enc_list', 'images'}
    # Camera head alone: the last global block computes the camera tokens only (other GEMM
    # shapes, so equal up to fp32 rounding).
    torch.testing.assert_close(out['pose_enc'], both['pose_enc'], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='unknown heads'):
        model(images, heads={'normals'})


def test_captures_through_model(model, images) -> None:
    request = CaptureRequest(q_global_blocks=(0, 3), k_global_blocks=(0,))
    with torch.no_grad():
        out = model(images, capture=request, heads={'camera'})
    captures = out['captures']
    assert captures.q[3].shape == (1, S, 4, N, 16)
    assert captures.k[0].shape == (1, S, 4, N, 16)
    assert captures.patch_features.shape == (1, S, N, 64)
    mask = KeyValueMask(dynamic=torch.rand(1, S, N) < 0.3)
    with torch.no_grad():
        second = model(images, kv_mask=mask, patch_tokens=captures.patch_features,
                       heads={'camera', 'depth'})
    assert not torch.allclose(second['pose_enc'], out['pose_enc'])


def test_first_frame_defines_the_special_tokens(model, images) -> None:
    with torch.no_grad():
        a = model(images, heads={'camera'})['pose_enc']
        b = model(images[[1, 0, 2]], heads={'camera'})['pose_enc']
    # Reordering changes which frame gets the first-frame tokens, so poses change.
    assert not torch.allclose(a[:, 0], b[:, 1], atol=1e-4)


def test_bf16_weights_give_sane_outputs(images) -> None:
    torch.manual_seed(0)
    reference = VGGT(VGGTConfig.tiny()).eval()
    torch.manual_seed(0)
    half = VGGT(VGGTConfig.tiny()).eval().to(torch.bfloat16)
    with torch.no_grad():
        ref = reference(images, heads={'camera', 'depth'})
        out = half(images, heads={'camera', 'depth'})
    assert out['depth'].dtype == torch.bfloat16
    for key in ('pose_enc', 'depth'):
        error = (out[key].float() - ref[key]).norm() / ref[key].norm()
        assert error < 0.05, (key, float(error))


def test_autocast_keeps_heads_in_fp32(model, images) -> None:
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(images, heads={'camera', 'depth'})
    assert out['pose_enc'].dtype == torch.float32
    assert out['depth'].dtype == torch.float32


def test_aggregator_has_no_graph_breaks(images) -> None:
    aggregator = Aggregator(VGGTConfig.tiny()).eval()
    request = CaptureRequest(q_global_blocks=(1,), k_global_blocks=(0,))
    with torch.no_grad():
        explanation = torch._dynamo.explain(aggregator)(images[None], capture=request)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    # Pass 2: only the emptiness check of the mask (one host read) may split the graph.
    mask = KeyValueMask(dynamic=torch.rand(1, S, N) < 0.3)
    with torch.no_grad():
        explanation = torch._dynamo.explain(aggregator)(images[None], kv_mask=mask)
    assert explanation.graph_break_count <= 1, explanation.break_reasons


def test_dino_pos_embed_interpolation() -> None:
    aggregator = Aggregator(VGGTConfig.tiny())
    dino = aggregator.patch_embed
    assert dino.pos_embed.shape == (1, 9 * 9 + 1, 64)
    assert torch.equal(dino.interpolated_pos_embed((9, 9)), dino.pos_embed)
    resized = dino.interpolated_pos_embed((4, 5))
    assert resized.shape == (1, 21, 64)
    assert torch.equal(resized[:, 0], dino.pos_embed[:, 0])
    # A constant embedding stays constant under (antialiased, normalised) bicubic resizing.
    with torch.no_grad():
        dino.pos_embed.fill_(0.25)
    assert torch.allclose(dino.interpolated_pos_embed((4, 5)), torch.full((1, 21, 64), 0.25))


def test_bf16_aggregator_with_fp32_heads(images) -> None:
    torch.manual_seed(0)
    reference = VGGT(VGGTConfig.tiny()).eval()
    torch.manual_seed(0)
    mixed = VGGT(VGGTConfig.tiny()).eval()
    mixed.aggregator.to(torch.bfloat16)
    with torch.no_grad():
        ref = reference(images, heads={'camera', 'depth'})
        out = mixed(images, heads={'camera', 'depth'})
    assert out['depth'].dtype == torch.float32 and out['pose_enc'].dtype == torch.float32
    assert (out['depth'] - ref['depth']).norm() / ref['depth'].norm() < 0.05


def test_single_frame_window(model) -> None:
    with torch.no_grad():
        out = model(torch.rand(1, 3, 28, 42), heads={'camera', 'depth'})
    assert out['pose_enc'].shape == (1, 1, 9)
    assert out['depth'].shape == (1, 1, 28, 42, 1)


def _scaled_up(model: VGGT) -> VGGT:
    """A copy whose LayerScales and special tokens are large, so every block matters."""
    bold = VGGT(model.config).eval()
    bold.load_state_dict(model.state_dict())
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in bold.aggregator.named_parameters():
            if name.endswith('gamma') or name in ('camera_token', 'register_token'):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    return bold


def test_block_forward_queries_equals_full_forward() -> None:
    aggregator = Aggregator(VGGTConfig.tiny()).eval()
    block = aggregator.global_blocks[-1]
    generator = torch.Generator().manual_seed(2)
    tokens = torch.randn(2, 3 * 25, 64, generator=generator)
    table = aggregator.rope.build_table((4, 5), 5, 16, tokens.device, tokens.dtype)
    table = (table[0].repeat(3, 1), table[1].repeat(3, 1))
    index = torch.tensor([0, 25, 50, 7])
    with torch.no_grad():
        full = block(tokens, pos=table)
        subset = block.forward_queries(tokens, index, pos=table)
    torch.testing.assert_close(subset, full[:, index], rtol=1e-5, atol=1e-6)


def test_camera_only_pass_matches_full_pass_with_and_without_kv_mask(model, images) -> None:
    bold = _scaled_up(model)
    mask = KeyValueMask(dynamic=torch.rand(1, S, N, generator=torch.Generator().manual_seed(3))
                        < 0.3)
    poses = []
    with torch.no_grad():
        for kv_mask in (None, mask):
            camera = bold(images, heads={'camera'}, kv_mask=kv_mask)
            full = bold(images, heads={'camera', 'depth'}, kv_mask=kv_mask)
            torch.testing.assert_close(camera['pose_enc'], full['pose_enc'],
                                       rtol=1e-5, atol=1e-5)
            poses.append(camera['pose_enc'])
        tokens, _, _ = bold.aggregator(images.unsqueeze(0), camera_only=True)
    assert not torch.allclose(poses[0], poses[1], atol=1e-4)  # the mask does matter
    assert tokens[-1].shape == (1, S, 1, 128)
    assert all(layer is None for layer in tokens[:-1])


def test_kept_key_attention_equals_a_boolean_key_mask() -> None:
    from vggt4d_ros.model.layers import kept_key_attention
    generator = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 4, 30, 16, generator=generator) for _ in range(3))
    keep = torch.rand(30, generator=generator) > 0.4
    keep[0] = True
    masked = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=keep.view(1, 1, 1, -1))
    torch.testing.assert_close(kept_key_attention(q, k, v, keep), masked,
                               rtol=1e-5, atol=1e-6)
    # Fake (shape) and real implementations agree, as torch.compile relies on.
    torch.library.opcheck(kept_key_attention, (q, k, v, keep),
                          test_utils=('test_schema', 'test_faketensor'))
