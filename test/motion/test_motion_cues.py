# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Lean Gram-statistic cue maps against the direct (naive) formulas of the release."""

from __future__ import annotations

import pytest
import torch

from vggt4d_ros.motion.cues import compute_cues
from vggt4d_ros.motion.cues import cue_contrast
from vggt4d_ros.motion.cues import CueConfig
from vggt4d_ros.motion.cues import CueLayers
from vggt4d_ros.motion.cues import dynamic_saliency
from vggt4d_ros.motion.cues import window_weights

OFFSETS = (-6, -4, -2, 2, 4, 6)
# Small layer sets so the test stays tiny; the structure is the release's.
LAYERS = CueLayers(mean_qq_middle=(1, 2), std_qq_deep=(3,), mean_qq_deep=(2, 3),
                   mean_kk_shallow=(0,), std_qk_shallow=(0,))


def _random_qk(frames: int, heads: int, tokens: int, dim: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q = {layer: torch.randn(frames, heads, tokens, dim, generator=gen) for layer in range(4)}
    k = {0: torch.randn(frames, heads, tokens, dim, generator=gen)}
    return q, k


def _naive_stat(a, b, ref, sources, layers, kind):
    """The release's formula: full Gram tensor [|W|, L, H, N, N], then reductions."""
    ref_feat = torch.stack([a[layer][ref] for layer in layers]).double()  # [L,H,N,d]
    src_feat = torch.stack([torch.stack([b[layer][s] for layer in layers])
                            for s in sources]).double()  # [W,L,H,N,d]
    gram = ref_feat.unsqueeze(0) @ src_feat.transpose(-2, -1)  # [W,L,H,N,N]
    if kind == 'mean':
        return gram.mean(dim=(0, 1, 2, 4))
    return gram.mean(dim=(0, 1, 2)).std(dim=-1)


def _naive_minmax(x):
    return (x - x.min()) / (x.max() - x.min() + 1e-6)


def _naive_saliency(q, k, grid_hw, layers):
    frames = q[0].shape[0]
    maps = []
    for ref in range(frames):
        sources = [ref + o for o in OFFSETS if 0 <= ref + o < frames]
        a = _naive_minmax(_naive_stat(q, q, ref, sources, layers.mean_qq_middle, 'mean'))
        b = _naive_minmax(_naive_stat(q, q, ref, sources, layers.std_qq_deep, 'std'))
        c = _naive_minmax(_naive_stat(q, q, ref, sources, layers.mean_qq_deep, 'mean'))
        d = _naive_minmax(_naive_stat(k, k, ref, sources, layers.mean_kk_shallow, 'mean'))
        e = _naive_minmax(_naive_stat(q, k, ref, sources, layers.std_qk_shallow, 'std'))
        maps.append(_naive_minmax((1 - a) * (1 - b) * c * (1 - d) * e).view(grid_hw))
    return torch.stack(maps)


@pytest.mark.parametrize('frames', [4, 9])
def test_lean_cues_equal_naive_formulas(frames):
    q, k = _random_qk(frames, heads=3, tokens=12, dim=8)
    cues = compute_cues(q, k, (3, 4), CueConfig(layers=LAYERS, frame_chunk=3))
    expected = _naive_saliency(q, k, (3, 4), LAYERS)
    assert cues.saliency.shape == (frames, 3, 4)
    assert cues.saliency.dtype == torch.float32
    # fp32 lean path vs fp64 naive path; normalisation amplifies rounding a little.
    torch.testing.assert_close(cues.saliency.double(), expected, atol=1e-5, rtol=1e-4)
    for ref in range(frames):
        sources = [ref + o for o in OFFSETS if 0 <= ref + o < frames]
        raw_b = _naive_stat(q, q, ref, sources, LAYERS.std_qq_deep, 'std')
        raw_dk = _naive_stat(k, k, ref, sources, LAYERS.mean_kk_shallow, 'mean')
        torch.testing.assert_close(cues.raw['B'][ref].flatten().double(), raw_b,
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(cues.raw['Dk'][ref].flatten().double(), raw_dk,
                                   atol=1e-5, rtol=1e-5)


def test_default_interface_and_bf16_inputs():
    frames, heads, tokens, dim = 5, 2, 6, 4
    gen = torch.Generator().manual_seed(1)
    needed = CueLayers().q_blocks()
    q = {b: torch.randn(frames, heads, tokens, dim, generator=gen) for b in needed}
    k = {0: torch.randn(frames, heads, tokens, dim, generator=gen)}
    full = dynamic_saliency(q, k, (2, 3))
    half = dynamic_saliency({b: v.bfloat16() for b, v in q.items()},
                            {b: v.bfloat16() for b, v in k.items()}, (2, 3))
    assert full.dtype == half.dtype == torch.float32
    assert full.shape == (frames, 2, 3)
    assert torch.all((full >= 0) & (full <= 1))
    assert torch.allclose(full.amax(dim=(1, 2)), torch.ones(frames), atol=1e-4)
    # bf16 inputs are upcast, so only the input rounding differs.
    assert (full - half).abs().max() < 0.2


def test_deterministic():
    q, k = _random_qk(6, heads=2, tokens=6, dim=4, seed=3)
    first = compute_cues(q, k, (2, 3), CueConfig(layers=LAYERS)).saliency
    second = compute_cues(q, k, (2, 3), CueConfig(layers=LAYERS)).saliency
    assert torch.equal(first, second)


def test_window_weights_release_window_and_short_windows():
    weights = window_weights(10, OFFSETS)
    assert torch.allclose(weights.sum(dim=1), torch.ones(10))
    assert torch.nonzero(weights[0]).flatten().tolist() == [2, 4, 6]
    assert torch.nonzero(weights[5]).flatten().tolist() == [1, 3, 7, 9]
    assert weights.diagonal().abs().sum() == 0
    # S=3: frame 1 has no source at +-2/4/6; 'nearest' uses frames 0 and 2, 'none' nothing.
    nearest = window_weights(3, OFFSETS, 'nearest')
    assert torch.nonzero(nearest[1]).flatten().tolist() == [0, 2]
    assert torch.nonzero(nearest[0]).flatten().tolist() == [2]
    none = window_weights(3, OFFSETS, 'none')
    assert none[1].sum() == 0 and none[0].sum() == 1
    # A single frame has nobody to compare with under any policy.
    assert window_weights(1, OFFSETS, 'nearest').sum() == 0


@pytest.mark.parametrize('frames,policy', [(1, 'nearest'), (2, 'none'), (2, 'nearest'),
                                           (3, 'none'), (3, 'nearest')])
def test_short_windows_never_nan(frames, policy):
    q, k = _random_qk(frames, heads=2, tokens=6, dim=4, seed=frames)
    cues = compute_cues(q, k, (2, 3), CueConfig(layers=LAYERS, empty_window=policy))
    assert torch.isfinite(cues.saliency).all()
    for ref in range(frames):
        if not cues.has_window[ref]:
            assert cues.saliency[ref].abs().sum() == 0
        else:
            assert cues.saliency[ref].max() > 0.99
    if policy == 'none' and frames == 3:
        assert cues.has_window.tolist() == [True, False, True]


def test_constant_tokens_give_finite_zero_saliency():
    q = {b: torch.ones(4, 2, 6, 4) for b in range(4)}
    k = {0: torch.ones(4, 2, 6, 4)}
    cues = compute_cues(q, k, (2, 3), CueConfig(layers=LAYERS))
    assert torch.isfinite(cues.saliency).all()
    assert cues.saliency.abs().max() == 0
    assert (cue_contrast(cues.raw) < 1e-3).all()


def test_cue_contrast_is_scale_free_and_detects_an_outlier_token():
    frames, heads, tokens, dim = 6, 2, 12, 8
    gen = torch.Generator().manual_seed(5)
    base = torch.randn(heads, 1, dim, generator=gen)
    static = base + 1e-2 * torch.randn(frames, heads, tokens, dim, generator=gen)
    q = {b: static.clone() for b in range(4)}
    k = {0: static.clone()}
    quiet = cue_contrast(compute_cues(q, k, (3, 4), CueConfig(layers=LAYERS)).raw)
    scaled = cue_contrast(compute_cues({b: 10 * v for b, v in q.items()}, {0: 10 * k[0]},
                                       (3, 4), CueConfig(layers=LAYERS)).raw)
    torch.testing.assert_close(quiet, scaled, rtol=2e-2, atol=1e-6)
    moving = static.clone()
    moving[:, :, 5] = -base[:, 0] + 0.3 * torch.randn(frames, heads, dim, generator=gen)
    loud = cue_contrast(compute_cues({b: moving for b in range(4)}, {0: moving}, (3, 4),
                                     CueConfig(layers=LAYERS)).raw)
    assert (loud > 20 * quiet).all()


def test_missing_block_is_a_clear_error():
    q, k = _random_qk(4, heads=2, tokens=6, dim=4)
    with pytest.raises(KeyError, match='global block 4'):
        dynamic_saliency(q, k, (2, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_bf16_captures_on_cuda_keep_fp32_accuracy_on_tensor_cores():
    # The std maps' N x N products run as two bf16 GEMMs with fp32 output on CUDA
    # (high + low split of the fp32 window mean); they must match the fp64 formulas as the
    # fp32 path does, not at bf16 precision.
    frames, grid_hw = 8, (8, 10)
    q, k = _random_qk(frames, heads=16, tokens=80, dim=64, seed=5)
    q = {layer: value.bfloat16() for layer, value in q.items()}
    k = {layer: value.bfloat16() for layer, value in k.items()}
    cues = compute_cues({b: v.cuda() for b, v in q.items()}, {b: v.cuda() for b, v in k.items()},
                        grid_hw, CueConfig(layers=LAYERS, frame_chunk=3))
    q64 = {b: v.double() for b, v in q.items()}
    k64 = {b: v.double() for b, v in k.items()}
    for ref in range(frames):
        sources = [ref + o for o in OFFSETS if 0 <= ref + o < frames]
        for name, (a, b, layers) in {'B': (q64, q64, LAYERS.std_qq_deep),
                                     'E': (q64, k64, LAYERS.std_qk_shallow)}.items():
            expected = _naive_stat(a, b, ref, sources, layers, 'std')
            torch.testing.assert_close(cues.raw[name][ref].flatten().double().cpu(), expected,
                                       atol=1e-4, rtol=1e-4)
