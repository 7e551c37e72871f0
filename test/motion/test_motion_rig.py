# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Multi-camera rigs: per-camera temporal window of the cues on constructed q/k."""

from __future__ import annotations

import pytest
import torch

from vggt4d_ros.motion.coarse import coarse_masks
from vggt4d_ros.motion.coarse import CoarseConfig
from vggt4d_ros.motion.cues import compute_cues
from vggt4d_ros.motion.cues import cue_contrast
from vggt4d_ros.motion.cues import CueConfig
from vggt4d_ros.motion.cues import CueLayers
from vggt4d_ros.motion.cues import cues_from_weights
from vggt4d_ros.motion.cues import rig_window_weights
from vggt4d_ros.motion.cues import usable_cues
from vggt4d_ros.motion.cues import window_weights
from vggt4d_ros.motion.rig import RigLayout

OFFSETS = (-6, -4, -2, 2, 4, 6)
LAYERS = CueLayers(mean_qq_middle=(1, 2), std_qq_deep=(3,), mean_qq_deep=(2, 3),
                   mean_kk_shallow=(0,), std_qk_shallow=(0,))
CONFIG = CueConfig(layers=LAYERS, frame_chunk=5)
HEADS, GRID, DIM = 2, (3, 4), 8
TOKENS = GRID[0] * GRID[1]
STEPS = 6
MOVING_PATCH = 5


def _interleave(per_view: list[torch.Tensor]) -> torch.Tensor:
    """N tensors [T,...] (one per camera) -> [T*N,...] in the rig's step-major order."""
    return torch.stack(per_view, dim=1).flatten(0, 1)


def _as_qk(frames: torch.Tensor) -> tuple[dict, dict]:
    """The same vectors for every captured block (the structure the tests need)."""
    return {layer: frames for layer in range(4)}, {0: frames}


def _parallax_views(gen: torch.Generator) -> list[torch.Tensor]:
    """Two static cameras [T,heads,N,d] with structured content.

    Camera 1 sees the scene from elsewhere: other content in half of its patches (surfaces
    that parallax reveals), so any comparison between the two cameras differs strongly even
    though nothing moves. Tokens carry 1e-3 noise per frame.
    """
    base = torch.randn(HEADS, 1, DIM, generator=gen)
    scene = base + 0.1 * torch.randn(HEADS, TOKENS, DIM, generator=gen)
    other = scene.clone()
    other[:, ::2] = torch.randn(HEADS, TOKENS // 2, DIM, generator=gen)
    return [content + 1e-3 * torch.randn(STEPS, HEADS, TOKENS, DIM, generator=gen)
            for content in (scene, other)]


# One block per map, so that each map can see the moving object the way the release's
# layer groups do (spec section 2.4).
MOVING_LAYERS = CueLayers(mean_qq_middle=(1,), std_qq_deep=(3,), mean_qq_deep=(2,),
                          mean_kk_shallow=(0,), std_qk_shallow=(0,))
MOVING_CONFIG = CueConfig(layers=MOVING_LAYERS, frame_chunk=5)


def _moving_views(gen: torch.Generator) -> list[tuple[dict, dict]]:
    """Per camera (q, k): block -> [T,heads,N,d] of near-uniform content, one base each.

    Camera 0's patch 5 holds an object whose tokens change from step to step, with the
    release's signature: low key-key and middle query-query similarity to the window, high
    deep query-query similarity, low deep spatial spread, high shallow q-k spread. Camera 1
    sees nothing move.
    """
    cameras = []
    for _ in range(2):
        base = torch.randn(HEADS, 1, DIM, generator=gen)

        def still() -> torch.Tensor:
            return base + 1e-2 * torch.randn(STEPS, HEADS, TOKENS, DIM, generator=gen)

        cameras.append(({block: still() for block in range(4)}, {0: still()}))
    q, k = cameras[0]
    base = q[0].mean(dim=(0, 2))  # [heads,d]

    def moving(scale: float, spread: float) -> torch.Tensor:
        return scale * base + spread * torch.randn(STEPS, HEADS, DIM, generator=gen)

    q[0][:, :, MOVING_PATCH] = moving(-3.0, 0.3)  # E: wide q-k spread
    q[1][:, :, MOVING_PATCH] = moving(-1.0, 0.3)  # A: low middle q-q mean
    q[2][:, :, MOVING_PATCH] = moving(2.0, 0.3)  # Cd: high deep q-q mean
    q[3][:, :, MOVING_PATCH] = moving(0.0, 0.01)  # B: low deep spread
    k[0][:, :, MOVING_PATCH] = moving(-1.0, 0.3)  # Dk: low k-k mean
    return cameras


def _interleave_qk(cameras: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """Per-camera (q, k) dicts -> one rig (q, k), step-major."""
    q = {block: _interleave([cam[0][block] for cam in cameras]) for block in cameras[0][0]}
    k = {block: _interleave([cam[1][block] for cam in cameras]) for block in cameras[0][1]}
    return q, k


def test_rig_layout_order_and_errors():
    layout = RigLayout(num_views=2, num_steps=3)
    assert layout.num_frames == 6
    assert layout.view_of_frame == [0, 1, 0, 1, 0, 1]
    assert layout.step_of_frame == [0, 0, 1, 1, 2, 2]
    assert layout.frames_of_view(1) == [1, 3, 5] and layout.frames_of_step(2) == [4, 5]
    assert layout.view_index().tolist() == layout.view_of_frame
    assert RigLayout.single(4) == RigLayout(1, 4) == RigLayout.for_frames(4, 1)
    assert RigLayout.for_frames(8, 4) == RigLayout(4, 2)
    with pytest.raises(ValueError, match='whole steps'):
        RigLayout.for_frames(7, 2)
    with pytest.raises(ValueError, match='rig layout'):
        layout.check(5)
    with pytest.raises(ValueError):
        RigLayout(0, 3)
    with pytest.raises(IndexError):
        layout.frame(3, 0)


@pytest.mark.parametrize('views,steps', [(1, 8), (2, 4), (4, 2), (3, 7)])
def test_rig_window_pairs_the_same_camera_only(views, steps):
    layout = RigLayout(views, steps)
    weights = rig_window_weights(layout, OFFSETS)
    single = window_weights(steps, OFFSETS)
    view = layout.view_index()
    step = torch.tensor(layout.step_of_frame)
    assert (weights[view.view(-1, 1) != view.view(1, -1)] == 0).all()  # no cross-camera pair
    for frame in range(layout.num_frames):
        # Row (t, v) is the single-camera window of step t, placed on camera v's frames.
        mine = view == view[frame]
        assert torch.equal(weights[frame, mine], single[step[frame]])
    if views == 1:
        assert torch.equal(weights, single)  # N = 1: the release's matrix exactly


def test_static_scene_seen_by_two_cameras_gives_no_cross_camera_cue():
    gen = torch.Generator().manual_seed(0)
    cameras = _parallax_views(gen)
    layout = RigLayout(num_views=2, num_steps=STEPS)
    q, k = _as_qk(_interleave(cameras))
    rig = compute_cues(q, k, GRID, CONFIG, layout)
    # Reference: every frame compared with itself, i.e. "nothing changed".
    same = cues_from_weights(q, k, GRID, torch.eye(layout.num_frames), CONFIG)
    # Counter-check: the other camera at the same step, the pairing the rig window forbids.
    swap = torch.arange(layout.num_frames) ^ 1
    cross = cues_from_weights(q, k, GRID, torch.eye(layout.num_frames)[swap], CONFIG)
    rig_cue = (rig.saliency - same.saliency).abs().amax()
    cross_cue = (cross.saliency - same.saliency).abs().amax()
    # Static: the rig's cue is the no-motion cue up to the 1e-3 token noise (it scales with
    # it); pairing the cameras reads parallax as motion.
    assert rig_cue < 0.1
    assert cross_cue > 0.4
    # Each camera's cue does not depend on the other camera at all.
    for view, frames in enumerate(cameras):
        alone = compute_cues(*_as_qk(frames), GRID, CONFIG)
        ours = rig.saliency[layout.frames_of_view(view)]
        torch.testing.assert_close(ours, alone.saliency, atol=1e-6, rtol=1e-6)
        for name, raw in alone.raw.items():
            torch.testing.assert_close(rig.raw[name][layout.frames_of_view(view)], raw,
                                       atol=1e-6, rtol=1e-6)


def _features(layout: RigLayout, gen: torch.Generator) -> torch.Tensor:
    """DINOv2-like features [S,N,C]: camera 0's moving patch is its own appearance cluster."""
    features = 0.05 * torch.randn(layout.num_frames, TOKENS, 16, generator=gen)
    features[:, :, 0] += torch.arange(TOKENS, dtype=torch.float32) % 4  # a few static classes
    object_frames = layout.frames_of_view(0)
    features[object_frames, MOVING_PATCH, 1] += 10.0
    return features


def test_moving_object_in_one_camera_is_found_in_that_camera_only():
    gen = torch.Generator().manual_seed(1)
    cameras = _moving_views(gen)
    layout = RigLayout(num_views=2, num_steps=STEPS)
    rig = compute_cues(*_interleave_qk(cameras), GRID, MOVING_CONFIG, layout)
    contrast = cue_contrast(rig.raw)
    moving_view = torch.tensor(layout.view_of_frame) == 0
    assert contrast[moving_view].min() > 10 * contrast[~moving_view].max()
    flat = rig.saliency[moving_view].flatten(1)
    assert (flat.argmax(dim=1) == MOVING_PATCH).all()
    # The still camera's cue is exactly its single-camera cue: the motion next to it in the
    # rig does not leak into it.
    alone = compute_cues(*cameras[1], GRID, MOVING_CONFIG)
    torch.testing.assert_close(rig.saliency[~moving_view], alone.saliency, atol=1e-6, rtol=1e-6)
    # Through the per-frame gate and the rig-wide coarse stage: masks in camera 0 only,
    # on the moving patch.
    gate = float((contrast[moving_view].min() * contrast[~moving_view].max()).sqrt())
    usable = usable_cues(rig, gate)
    assert usable.tolist() == moving_view.tolist()
    saliency = rig.saliency * usable.view(-1, 1, 1)
    coarse = coarse_masks(saliency, _features(layout, gen), (3 * 14, 4 * 14),
                          CoarseConfig(clusters=8))
    masks = coarse.masks & usable.view(-1, 1, 1)
    assert not masks[~moving_view].any()
    patch_row, patch_col = divmod(MOVING_PATCH, GRID[1])
    for frame in layout.frames_of_view(0):
        centre = masks[frame, patch_row * 14 + 7, patch_col * 14 + 7]
        assert centre, f'frame {frame} misses the moving patch'
        assert masks[frame].float().mean() < 0.3


def _naive_std(a: dict, b: dict, ref: int, sources: list[int], layers: tuple) -> torch.Tensor:
    """The release's std statistic from the full [W,L,H,N,N] Gram tensor (fp64)."""
    ref_feat = torch.stack([a[layer][ref] for layer in layers]).double()
    src_feat = torch.stack([torch.stack([b[layer][s] for layer in layers])
                            for s in sources]).double()
    return (ref_feat.unsqueeze(0) @ src_feat.transpose(-2, -1)).mean(dim=(0, 1, 2)).std(dim=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('views,steps', [(2, 4), (4, 2)])
def test_bf16_tensor_core_path_pairs_the_same_camera_on_cuda(views, steps):
    # The bf16 high + low split on tensor cores is unchanged by the rig window: the std maps
    # of every frame match the fp64 formulas over that camera's own steps.
    layout = RigLayout(views, steps)
    gen = torch.Generator().manual_seed(7)
    q = {b: torch.randn(layout.num_frames, 16, 80, 64, generator=gen).bfloat16()
         for b in range(4)}
    k = {0: torch.randn(layout.num_frames, 16, 80, 64, generator=gen).bfloat16()}
    cues = compute_cues({b: v.cuda() for b, v in q.items()}, {b: v.cuda() for b, v in k.items()},
                        (8, 10), CONFIG, layout)
    weights = rig_window_weights(layout, OFFSETS)
    for ref in range(layout.num_frames):
        sources = torch.nonzero(weights[ref]).flatten().tolist()
        assert all(layout.view_of_frame[s] == layout.view_of_frame[ref] for s in sources)
        for name, (a, b, layers) in {'B': (q, q, LAYERS.std_qq_deep),
                                     'E': (q, k, LAYERS.std_qk_shallow)}.items():
            expected = _naive_std(a, b, ref, sources, layers)
            torch.testing.assert_close(cues.raw[name][ref].flatten().double().cpu(), expected,
                                       atol=1e-4, rtol=1e-4)
