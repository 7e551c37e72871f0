# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Tests of the camera <-> network pixel mapping."""

import numpy as np
from PIL import Image
import pytest
import torch

from vggt4d_ros.geometry.image_transform import _resize_on_device
from vggt4d_ros.geometry.image_transform import intrinsics_to_camera
from vggt4d_ros.geometry.image_transform import intrinsics_to_network
from vggt4d_ros.geometry.image_transform import map_to_camera
from vggt4d_ros.geometry.image_transform import plan_resize
from vggt4d_ros.geometry.image_transform import to_network


@pytest.mark.parametrize(
    'camera_hw, network_hw',
    [((480, 640), (392, 518)), ((720, 1280), (294, 518)), ((480, 854), (294, 518)),
     ((518, 518), (518, 518))],
)
def test_crop_plan_matches_vggt_sizes(camera_hw, network_hw):
    plan = plan_resize(camera_hw, 'crop')
    assert plan.network_hw == network_hw
    assert plan.network_hw[0] % 14 == 0 and plan.network_hw[1] % 14 == 0


def test_tall_image_is_centre_cropped():
    plan = plan_resize((1000, 500), 'crop')
    assert plan.resized_hw == (1036, 518)
    assert plan.network_hw == (518, 518)
    assert plan.offset_yx == (259, 0)


def test_pad_plan_centres_image():
    plan = plan_resize((480, 640), 'pad')
    assert plan.network_hw == (518, 518)
    assert plan.resized_hw == (392, 518)
    assert plan.offset_yx == (-63, 0)


def test_to_network_matches_pil_bicubic_and_pads_white():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    plan = plan_resize((48, 64), 'pad', target=70)
    net = to_network([image], plan)
    assert net.shape == (1, 3, 70, 70)
    expected = np.asarray(
        Image.fromarray(image).resize((70, 56), Image.Resampling.BICUBIC)
    ).astype(np.float32) / 255.0
    top = -plan.offset_yx[0]
    inner = net[0, :, top:top + 56].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(inner, expected, atol=1e-6)
    assert torch.all(net[0, :, :top] == 1.0)
    assert torch.all(net[0, :, top + 56:] == 1.0)


def test_to_network_rejects_wrong_input():
    plan = plan_resize((48, 64), 'crop', target=70)
    with pytest.raises(ValueError, match='uint8'):
        to_network([np.zeros((48, 64, 3), np.float32)], plan)
    with pytest.raises(ValueError, match='plan expects'):
        to_network([np.zeros((40, 64, 3), np.uint8)], plan)


@pytest.mark.parametrize('mode', ['crop', 'pad'])
def test_intrinsics_round_trip_and_projection(mode):
    plan = plan_resize((300, 200), mode, target=126)
    k_cam = torch.tensor([[250.0, 0.0, 101.5], [0.0, 260.0, 149.0], [0.0, 0.0, 1.0]])
    k_net = intrinsics_to_network(k_cam, plan)
    torch.testing.assert_close(intrinsics_to_camera(k_net, plan), k_cam)
    # A 3D point must land on corresponding pixels in both images.
    point = torch.tensor([0.3, -0.2, 2.0])
    uv_cam = (k_cam @ point)[:2] / point[2]
    uv_net = (k_net @ point)[:2] / point[2]
    matrix = torch.from_numpy(plan.camera_to_network_matrix()).float()
    # Affine map acts on continuous coordinates of pixel corners: shift by the half pixel.
    mapped = (matrix @ torch.cat([uv_cam + 0.5, torch.ones(1)]))[:2] - 0.5
    torch.testing.assert_close(mapped, uv_net)


def test_map_to_camera_inverts_crop_for_masks():
    camera_hw = (60, 40)
    plan = plan_resize(camera_hw, 'crop', target=28)
    assert plan.offset_yx[0] > 0  # tall image: rows are cropped
    mask_cam = np.zeros(camera_hw, np.uint8)
    mask_cam[20:40, 10:30] = 255
    rgb = np.repeat(mask_cam[..., None], 3, axis=2)
    net = to_network([rgb], plan)[:, 0] > 0.5
    back = map_to_camera(net, plan, mode='nearest')
    assert back.shape == (1,) + camera_hw and back.dtype == torch.bool
    agree = (back[0].numpy() == (mask_cam > 0)).mean()
    assert agree > 0.97
    # Rows cropped away come back as the fill value.
    assert not back[0, 0].any()


def test_map_to_camera_bilinear_keeps_float_values_and_channels():
    plan = plan_resize((30, 40), 'crop', target=28)
    values = torch.full((2,) + plan.network_hw + (3,), 2.5)
    back = map_to_camera(values, plan, mode='bilinear', fill=-1.0)
    assert back.shape == (2, 30, 40, 3)
    inside = back[back != -1.0]
    torch.testing.assert_close(inside, torch.full_like(inside, 2.5))
    with pytest.raises(ValueError):
        map_to_camera(torch.zeros(1, 5, 5), plan)


def test_torch_resize_matches_pil_within_two_levels():
    yy, xx = np.mgrid[0:120, 0:160]
    smooth = ((np.sin(xx / 7.0) + np.cos(yy / 5.0)) * 60 + 128).astype(np.uint8)
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    plan = plan_resize((120, 160), 'crop', target=126)
    for image in (np.repeat(smooth[..., None], 3, axis=2), noise):
        pil = np.asarray(Image.fromarray(image).resize(
            (plan.resized_hw[1], plan.resized_hw[0]), Image.Resampling.BICUBIC)).astype(float)
        # The torch branch that CUDA uses, run on the CPU.
        ours = _resize_on_device([image], plan, torch.device('cpu'))[0]
        ours = ours.permute(1, 2, 0).numpy() * 255.0
        diff = np.abs(ours - pil)
        assert diff.max() <= 2.0
        assert (diff > 0).mean() < 0.01


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_to_network_on_cuda_matches_cpu():
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8) for _ in range(2)]
    plan = plan_resize((96, 128), 'pad', target=126)
    cpu = to_network(frames, plan)
    gpu = to_network(frames, plan, device='cuda').cpu()
    assert gpu.shape == cpu.shape
    assert (gpu - cpu).abs().max() <= 2.0 / 255 + 1e-6
