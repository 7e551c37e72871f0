# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The window pipeline on the tiny model (CPU): shapes, determinism, pass 2, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vggt4d_ros.geometry.image_transform import plan_resize
from vggt4d_ros.model import layers
from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.motion.cues import CueLayers
from vggt4d_ros.motion.pipeline import layers_for_depth
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import token_mask
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.prepare import prepare_model
from vggt4d_ros.motion.refine import RefineConfig
from vggt4d_ros.motion.rig import RigLayout

HEIGHT, WIDTH = 56, 70
# Camera frames of HEIGHT x WIDTH resized to 70 x 84 (not VGGT's 518 wide): the frame reuse
# tests compare the reuse path with fresh runs, which holds at any network size, and 30
# patches a frame instead of ~1100 keep the tiny model's windows cheap on CPU.
SMALL_PLAN = plan_resize((HEIGHT, WIDTH), target=84)


def _images(frames: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(frames, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(seed))


def test_window_result_shapes_and_dtypes(model):
    pipe = VGGT4DPipeline(model, PipelineConfig())
    result = pipe.run_tensor(_images(6), list(range(6)))
    frames, hp, wp = 6, HEIGHT // 14, WIDTH // 14
    assert result.num_frames == frames
    assert result.depth.shape == (frames, HEIGHT, WIDTH) and result.depth.dtype == torch.float32
    assert result.depth_conf.shape == (frames, HEIGHT, WIDTH)
    assert result.intrinsics.shape == (frames, 3, 3)
    assert result.extrinsics.shape == (frames, 3, 4)
    assert result.saliency.shape == (frames, hp, wp)
    assert result.coarse_masks.dtype == torch.bool and result.refined_masks.dtype == torch.bool
    for name in ('pass1', 'cues', 'coarse', 'pass2', 'refine', 'total'):
        assert result.timings[name] >= 0
    assert torch.isfinite(result.saliency).all()
    assert result.coarse_masks.any()  # random weights still produce some dynamic patches
    # Refinement only keeps coarse pixels (up to the closing/dilation border).
    grown = torch.nn.functional.max_pool2d(result.coarse_masks.float().unsqueeze(1), 9, 1, 4)
    assert not (result.refined_masks & ~(grown.squeeze(1) > 0)).any()


def test_run_from_uint8_frames(model):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (30, 40, 3), dtype=np.uint8) for _ in range(4)]
    pipe = VGGT4DPipeline(model, PipelineConfig(refine_enabled=False))
    result = pipe.run(frames, [10, 20, 30, 40])
    assert result.stamps_ns == [10, 20, 30, 40]
    assert result.images.shape[-1] == 518 and result.images.shape[-2] % 14 == 0
    assert result.masks_at_camera().shape == (4, 30, 40)
    assert 'preprocess' in result.timings
    assert torch.equal(result.refined_masks, result.coarse_masks)


def test_two_runs_are_identical(model):
    pipe = VGGT4DPipeline(model, PipelineConfig())
    first = pipe.run_tensor(_images(5), list(range(5)))
    second = pipe.run_tensor(_images(5), list(range(5)))
    for name in ('depth', 'extrinsics', 'saliency', 'coarse_masks', 'refined_masks'):
        assert torch.equal(getattr(first, name), getattr(second, name)), name


def test_token_mask_is_any_pixel_max_pool():
    masks = torch.zeros(2, 28, 42, dtype=torch.bool)
    masks[0, 15, 30] = True  # one pixel of patch (1, 2)
    tokens = token_mask(masks)
    assert tokens.shape == (2, 6)
    assert tokens[0].tolist() == [False, False, False, False, False, True]
    assert not tokens[1].any()


def _explicit_bias_forward(original):
    """Attention.forward with every key/value removal replaced by a -inf additive bias."""

    def forward(self, x, pos=None, attn_mask=None, return_qk=False, kv_index=None,
                kv_keep=None):
        tokens = x.shape[1]
        keep = None
        if kv_keep is not None:
            keep = kv_keep.view(1, 1, 1, tokens)
        elif kv_index is not None:
            keep = torch.zeros(tokens, dtype=torch.bool, device=x.device)
            keep[kv_index] = True
            keep = keep.view(1, 1, 1, tokens)
        elif attn_mask is not None:
            keep = attn_mask
        bias = None
        if keep is not None:
            bias = torch.zeros(keep.shape, dtype=x.dtype, device=x.device)
            bias = bias.masked_fill(~keep, float('-inf'))
        return original(self, x, pos=pos, attn_mask=bias, return_qk=return_qk)

    return forward


def _assert_pass_two_is_an_explicit_bias(pipe, images, masks, monkeypatch) -> None:
    """Pass 2 with ``masks`` equals a forward with a -inf bias on the dynamic keys, and masks."""
    first = pipe._aggregate_one(images)
    ours = pipe._pass_two(images, masks, first.patch_features)
    unmasked = pipe._pass_two(images, torch.zeros_like(masks), first.patch_features)
    monkeypatch.setattr(layers.Attention, 'forward',
                        _explicit_bias_forward(layers.Attention.forward))
    reference = pipe._pass_two(images, masks, first.patch_features)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours, unmasked, atol=1e-4)


def test_masked_pass_two_equals_explicit_minus_inf_bias(model, monkeypatch):
    pipe = VGGT4DPipeline(model, PipelineConfig())
    images = _images(4)
    masks = torch.zeros(4, HEIGHT, WIDTH, dtype=torch.bool)
    masks[:, 10:30, 20:50] = True
    masks[2, :, :14] = True
    _assert_pass_two_is_an_explicit_bias(pipe, images, masks, monkeypatch)


def test_empty_mask_pass_two_reproduces_pass_one_poses(model):
    """Pass 2 reuses pass 1's patch features; with nothing masked it is the same forward."""
    pipe = VGGT4DPipeline(model, PipelineConfig())
    images = _images(4)
    with torch.no_grad():
        plain = model(images, heads={'camera'})['pose_enc'][0]
    first = pipe._aggregate_one(images)
    second = pipe._pass_two(images, torch.zeros(4, HEIGHT, WIDTH, dtype=torch.bool),
                            first.patch_features)
    from vggt4d_ros.geometry.pose_encoding import pose_encoding_to_extri_intri
    expected, _ = pose_encoding_to_extri_intri(plain, (HEIGHT, WIDTH))
    torch.testing.assert_close(second, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('frames', [1, 2, 3])
def test_short_windows_are_finite(model, frames):
    pipe = VGGT4DPipeline(model, PipelineConfig())
    result = pipe.run_tensor(_images(frames), list(range(frames)))
    assert torch.isfinite(result.saliency).all()
    assert torch.isfinite(result.extrinsics).all()
    if frames == 1:  # nobody to compare with: no cue, no mask
        assert not result.coarse_masks.any() and not result.refined_masks.any()


def test_no_window_policy_masks_only_frames_with_a_cue(model):
    from vggt4d_ros.motion.cues import CueConfig
    config = PipelineConfig(cues=CueConfig(empty_window='none'))
    result = VGGT4DPipeline(model, config).run_tensor(_images(3), [0, 1, 2])
    assert result.saliency[1].abs().sum() == 0
    assert not result.coarse_masks[1].any()


def test_static_scene_gate_empties_every_mask(model):
    still = _images(1).expand(6, -1, -1, -1).clone()  # the same frame six times
    gated = VGGT4DPipeline(model, PipelineConfig(min_cue_contrast=1e9))
    result = gated.run_tensor(still, list(range(6)))
    assert not result.coarse_masks.any() and not result.refined_masks.any()
    assert result.saliency.abs().sum() == 0
    open_gate = VGGT4DPipeline(model, PipelineConfig(min_cue_contrast=0.0))
    assert open_gate.run_tensor(still, list(range(6))).coarse_masks.any()


def test_gradient_refinement_mode_runs(model):
    config = PipelineConfig(refine=RefineConfig(mode='gradient'))
    result = VGGT4DPipeline(model, config).run_tensor(_images(4), list(range(4)))
    assert result.refined_masks.shape == (4, HEIGHT, WIDTH)


def test_layers_for_depth():
    release = CueLayers()
    assert layers_for_depth(release, 24) is release
    tiny = layers_for_depth(release, 4)
    assert tiny.mean_qq_middle == (0, 1) and tiny.std_qq_deep == (3,)
    assert tiny.mean_qq_deep == (2, 3) and tiny.mean_kk_shallow == (0,)


def test_mismatched_stamps_and_sizes_are_errors(model):
    pipe = VGGT4DPipeline(model, PipelineConfig())
    with pytest.raises(ValueError, match='stamps'):
        pipe.run_tensor(_images(3), [1, 2])
    with pytest.raises(ValueError, match='multiple of 14'):
        pipe.run_tensor(torch.rand(2, 3, 50, 70), [1, 2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_pipeline_is_deterministic_and_close_to_cpu(model):
    cpu = VGGT4DPipeline(model, PipelineConfig()).run_tensor(_images(6), list(range(6)))
    gpu_model = VGGT(VGGTConfig.tiny()).eval()
    gpu_model.load_state_dict(model.state_dict())
    pipe = VGGT4DPipeline(prepare_model(gpu_model, PipelineConfig(), 'cuda'), PipelineConfig(),
                          device='cuda')
    first = pipe.run_tensor(_images(6), list(range(6)))
    second = pipe.run_tensor(_images(6), list(range(6)))
    for name in ('depth', 'extrinsics', 'saliency', 'coarse_masks', 'refined_masks'):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert first.refined_masks.device.type == 'cuda'
    torch.testing.assert_close(first.saliency.cpu(), cpu.saliency, atol=1e-3, rtol=1e-3)
    for name in ('pass1', 'heads1', 'cues', 'coarse', 'prepare', 'pass2', 'cluster',
                 'refine'):
        assert first.timings[name] > 0


def _camera_frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8) for _ in range(count)]


# The out-of-memory tests' camera frames at 42 x 56 in the network (not 518 wide): cheap.
CAMERA_PLAN = plan_resize((40, 56), target=56)


def test_out_of_memory_is_retried_once_after_releasing_memory(model, monkeypatch):
    pipe = VGGT4DPipeline(model, PipelineConfig(refine_enabled=False))
    expected = pipe.run(_camera_frames(4), [0, 1, 2, 3], plan=CAMERA_PLAN)
    original = pipe._run_frames
    calls = []

    def fail_first(frames, stamps_ns, plan, layout):
        calls.append(len(frames))
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError('CUDA out of memory (simulated)')
        return original(frames, stamps_ns, plan, layout)

    monkeypatch.setattr(pipe, '_run_frames', fail_first)
    result = pipe.run(_camera_frames(4), [0, 1, 2, 3], plan=CAMERA_PLAN)
    assert calls == [4, 4] and pipe.oom_retries == 1
    torch.testing.assert_close(result.extrinsics, expected.extrinsics)
    assert torch.equal(result.refined_masks, expected.refined_masks)


def test_out_of_memory_twice_reaches_the_caller(model, monkeypatch):
    pipe = VGGT4DPipeline(model, PipelineConfig(refine_enabled=False))

    def always_fail(frames, stamps_ns, plan, layout):
        raise torch.cuda.OutOfMemoryError('CUDA out of memory (simulated)')

    monkeypatch.setattr(pipe, '_run_frames', always_fail)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        pipe.run(_camera_frames(4), [0, 1, 2, 3], plan=CAMERA_PLAN)
    assert pipe.oom_retries == 1


def _uint8_stream(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(count)]


def test_sliding_windows_reuse_shared_frames(model):
    frames = _uint8_stream(7)
    reuse = VGGT4DPipeline(model, PipelineConfig())
    fresh = VGGT4DPipeline(model, PipelineConfig(reuse_frame_features=False))
    for start in (0, 2):  # windows [0..4] and [2..6] share frames 2, 3 and 4
        window, stamps = frames[start:start + 5], list(range(start, start + 5))
        ours = reuse.run(window, stamps, plan=SMALL_PLAN)
        reference = fresh.run(window, stamps, plan=SMALL_PLAN)
        torch.testing.assert_close(ours.images, reference.images)
        torch.testing.assert_close(ours.depth, reference.depth)
        torch.testing.assert_close(ours.extrinsics, reference.extrinsics)
        assert torch.equal(ours.refined_masks, reference.refined_masks)
        assert reference.refined_masks.any()  # the comparison is not between empty masks
    assert reuse.reused_frames == 3 and fresh.reused_frames == 0


def test_reuse_needs_the_same_array_and_stamp(model):
    frames = _uint8_stream(5)
    pipe = VGGT4DPipeline(model, PipelineConfig())
    pipe.run(frames, list(range(5)), plan=SMALL_PLAN)
    # Same stamps, new arrays (e.g. a replay restarted): nothing is reused.
    copies = [frame.copy() for frame in frames]
    copies[0][:] = 0
    result = pipe.run(copies, list(range(5)), plan=SMALL_PLAN)
    assert pipe.reused_frames == 0
    torch.testing.assert_close(result.images[0], torch.zeros_like(result.images[0]))
    # Same arrays under other stamps: nothing is reused either.
    pipe.run(copies, list(range(10, 15)), plan=SMALL_PLAN)
    assert pipe.reused_frames == 0
    pipe.run(copies, list(range(10, 15)), plan=SMALL_PLAN)
    assert pipe.reused_frames == 5
    pipe.release_memory()
    pipe.run(copies, list(range(10, 15)), plan=SMALL_PLAN)
    assert pipe.reused_frames == 5


def test_the_pipeline_leaves_its_model_alone_and_prepare_model_readies_it():
    model = VGGT(VGGTConfig.tiny())
    mlps = [m for m in model.modules() if isinstance(m, layers.Mlp)]
    with pytest.raises(ValueError, match='prepare_model'):
        VGGT4DPipeline(model, PipelineConfig())  # still in training mode
    model.eval()
    VGGT4DPipeline(model, PipelineConfig(fused_gelu=True))
    assert not any(m.fused_gelu for m in mlps)  # not patched by the pipeline
    config = PipelineConfig(fused_gelu=True, compile_model=True)  # compiles on CUDA only
    ready = prepare_model(VGGT(VGGTConfig.tiny()), config, 'cpu', weights_dtype=torch.float64)
    assert not ready.training
    assert all(m.fused_gelu for m in ready.modules() if isinstance(m, layers.Mlp))
    assert next(ready.parameters()).dtype == torch.float64
    assert not hasattr(ready.aggregator, '_compiled_call_impl') or \
        ready.aggregator._compiled_call_impl is None
    VGGT4DPipeline(ready, config)


def test_a_model_on_another_device_is_refused():
    # 'meta' stands for any device the CPU model is not on (checked before anything runs).
    with pytest.raises(ValueError, match='prepare_model'):
        VGGT4DPipeline(VGGT(VGGTConfig.tiny()).eval(), PipelineConfig(), device='meta')


def test_single_view_layout_is_todays_window_bit_for_bit(model):
    pipe = VGGT4DPipeline(model, PipelineConfig())
    default = pipe.run_tensor(_images(6), list(range(6)))
    explicit = pipe.run_tensor(_images(6), list(range(6)), layout=RigLayout.single(6))
    assert default.layout == explicit.layout == RigLayout(num_views=1, num_steps=6)
    assert default.view_index == [0] * 6 and default.step_index == list(range(6))
    for name in ('depth', 'depth_conf', 'intrinsics', 'extrinsics', 'saliency', 'coarse_masks',
                 'refined_masks'):
        assert torch.equal(getattr(default, name), getattr(explicit, name)), name


def test_rig_window_runs_all_views_together(model):
    layout = RigLayout(num_views=2, num_steps=3)
    pipe = VGGT4DPipeline(model, PipelineConfig())
    result = pipe.run_tensor(_images(6), [0, 0, 1, 1, 2, 2], layout=layout)
    assert result.layout == layout and result.num_views == 2
    assert result.view_index == [0, 1, 0, 1, 0, 1]
    assert result.refined_masks.shape == (6, HEIGHT, WIDTH)
    assert torch.isfinite(result.extrinsics).all() and torch.isfinite(result.saliency).all()
    with pytest.raises(ValueError, match='rig layout'):
        pipe.run_tensor(_images(5), list(range(5)), layout=layout)


@pytest.mark.parametrize('frames,dynamic_frames', [(6, (1, 3, 5)), (6, (0, 5)), (5, (2,))])
def test_masked_pass_two_drops_dynamic_keys_of_every_view(model, monkeypatch, frames,
                                                          dynamic_frames):
    # Any frame count, dynamic patches in any subset of the views: each frame's dynamic keys
    # are removed exactly as an explicit -inf bias would remove them.
    pipe = VGGT4DPipeline(model, PipelineConfig())
    images = _images(frames, seed=frames)
    masks = torch.zeros(frames, HEIGHT, WIDTH, dtype=torch.bool)
    for index, frame in enumerate(dynamic_frames):
        masks[frame, 14 * index:14 * index + 20, 14:40] = True
    _assert_pass_two_is_an_explicit_bias(pipe, images, masks, monkeypatch)


def test_rig_reuse_keys_frames_by_view_and_stamp(model):
    # Two cameras with one stamp per step: a window slid by one step reuses the two shared
    # steps of BOTH cameras (keyed by stamp alone, one camera's entry would be lost).
    frames = _uint8_stream(8)
    layout = RigLayout(num_views=2, num_steps=3)
    reuse = VGGT4DPipeline(model, PipelineConfig())
    fresh = VGGT4DPipeline(model, PipelineConfig(reuse_frame_features=False))
    for step in (0, 1):
        window = frames[2 * step:2 * step + 6]
        stamps = [s for s in range(step, step + 3) for _ in range(2)]
        ours = reuse.run(window, stamps, plan=SMALL_PLAN, layout=layout)
        reference = fresh.run(window, stamps, plan=SMALL_PLAN, layout=layout)
        torch.testing.assert_close(ours.images, reference.images)
        torch.testing.assert_close(ours.extrinsics, reference.extrinsics)
        assert torch.equal(ours.refined_masks, reference.refined_masks)
        assert reference.refined_masks.any()
    assert reuse.reused_frames == 4
