# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Stage-3 refinement on an analytic scene: a textured wall, a translating camera, a moving box."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vggt4d_ros.geometry.unproject import backproject
from vggt4d_ros.geometry.unproject import PIXEL_CENTRE
from vggt4d_ros.motion.refine.morphology import ellipse_kernel
from vggt4d_ros.motion.kmeans import kmeans
from vggt4d_ros.motion.kmeans import KMeansConfig
from vggt4d_ros.motion.refine import close_then_dilate
from vggt4d_ros.motion.refine import find_candidates
from vggt4d_ros.motion.refine import find_inliers
from vggt4d_ros.motion.refine import keep_coarse
from vggt4d_ros.motion.refine import prepare_refinement
from vggt4d_ros.motion.refine import refine_masks
from vggt4d_ros.motion.refine import RefineConfig
from vggt4d_ros.motion.refine import statistical_inliers

HEIGHT, WIDTH, FOCAL = 48, 64, 40.0
WALL_Z, BOX_Z, BOX_HALF = 5.0, 3.0, 0.4
# A coarse false positive on the static wall, in the even frames only (a flickering cue).
PATCH = (slice(4, 12), slice(46, 60))


def _scene(frames: int = 5):
    """Depth, images, poses, intrinsics and the true box masks of the analytic scene."""
    intr = torch.tensor([[FOCAL, 0, WIDTH / 2], [0, FOCAL, HEIGHT / 2], [0, 0, 1.0]])
    v, u = torch.meshgrid(torch.arange(HEIGHT) + 0.5, torch.arange(WIDTH) + 0.5, indexing='ij')
    ray_x, ray_y = (u - WIDTH / 2) / FOCAL, (v - HEIGHT / 2) / FOCAL
    depth, images, poses, boxes = [], [], [], []
    for i in range(frames):
        cam_x = 0.2 * i
        box_x = -0.3 + 0.6 * i  # the box moves faster than the camera
        hit_x, hit_y = cam_x + BOX_Z * ray_x, BOX_Z * ray_y
        box = ((hit_x - box_x).abs() <= BOX_HALF) & (hit_y.abs() <= BOX_HALF)
        wall_x, wall_y = cam_x + WALL_Z * ray_x, WALL_Z * ray_y
        wall_rgb = torch.stack([0.5 + 0.3 * torch.sin(2 * wall_x), 0.5 + 0.3 * torch.cos(wall_y),
                                0.4 + 0.2 * torch.sin(wall_x + wall_y)])
        box_rgb = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1).expand(3, HEIGHT, WIDTH)
        depth.append(torch.where(box, BOX_Z, WALL_Z))
        images.append(torch.where(box, box_rgb, wall_rgb))
        pose = torch.eye(4)
        pose[0, 3] = cam_x
        poses.append(pose)
        boxes.append(box)
    return (torch.stack(depth), torch.stack(images), torch.stack(poses),
            intr.expand(frames, 3, 3).clone(), torch.stack(boxes))


def _coarse(boxes: torch.Tensor) -> torch.Tensor:
    coarse = boxes.clone()
    coarse[::2, PATCH[0], PATCH[1]] = True
    return coarse


def test_backproject_uses_pixel_centres():
    depth, _, poses, intr, _ = _scene(2)
    points = backproject(depth, intr, poses, pixel_offset=PIXEL_CENTRE)
    assert points.shape == (2, HEIGHT, WIDTH, 3)
    # Pixel (0,0) centre is at (0.5,0.5): X = cam_x + z (0.5 - cx)/f.
    expected_x = 0.2 + WALL_Z * (0.5 - WIDTH / 2) / FOCAL
    assert abs(points[1, 0, 0, 0].item() - expected_x) < 1e-5
    assert torch.allclose(points[..., 2], depth)


@pytest.mark.parametrize('mode', ['cluster', 'gradient'])
def test_refinement_keeps_the_moving_box_and_drops_the_static_patch(mode):
    depth, images, poses, intr, boxes = _scene()
    out = refine_masks(images, depth, _coarse(boxes), poses, intr, RefineConfig(mode=mode))
    raw = out.raw_masks
    assert raw.shape == boxes.shape and raw.dtype == torch.bool
    inter = (raw & boxes).sum().item()
    union = (raw | boxes).sum().item()
    assert inter / union > 0.9
    assert not raw[:, PATCH[0], PATCH[1]].any()
    assert (out.masks | ~raw).all()  # morphology only grows the raw mask here
    assert not out.masks[:, PATCH[0], PATCH[1]].any()


def _rigid_poses(frames: int, seed: int = 3) -> torch.Tensor:
    """Random rotations (QR of a Gaussian, det +1) and translations, [S,4,4]."""
    generator = torch.Generator().manual_seed(seed)
    poses = torch.eye(4).repeat(frames, 1, 1)
    for i in range(frames):
        q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator))
        q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
        if torch.det(q) < 0:
            q[:, 0] = -q[:, 0]
        poses[i, :3, :3] = q
        poses[i, :3, 3] = torch.randn(3, generator=generator) * 3
    return poses


def test_inliers_first_then_the_coarse_mask_give_the_candidates():
    # The pipeline's side stream removes outliers before the coarse mask exists
    # (find_inliers) and applies the mask later (keep_coarse).
    depth, _, _, intr, boxes = _scene(3)
    depth[:, 20, 30] = 40.0  # isolated far points: outliers
    coarse = _coarse(boxes)
    kept = find_inliers(depth, intr)
    assert torch.equal(kept.candidates, kept.inliers.reshape(3, -1))
    assert not kept.inliers[:, 20, 30].any() and kept.inliers.any()
    split = keep_coarse(kept, coarse)
    whole = find_candidates(depth, coarse, intr)
    assert split.candidates.any() and not torch.equal(split.candidates, kept.candidates)
    for name in ('valid_depth', 'inliers', 'points', 'candidates'):
        assert torch.equal(getattr(split, name), getattr(whole, name)), name


def test_pose_free_half_equals_outlier_removal_and_clusters_on_world_points():
    # Release order: back-project with the pass-2 poses, then outlier removal and k-means on
    # world points. The pipeline does both on camera-frame points before pass 2 ends; rigid
    # motions keep every distance, so inliers and clusters must be the same.
    depth, images, _, intr, boxes = _scene(4)
    generator = torch.Generator().manual_seed(0)
    depth = depth * (1 + 0.05 * torch.rand(depth.shape, generator=generator))
    depth[:, 20, 30] = 40.0  # isolated far points: outliers
    coarse = _coarse(boxes)
    coarse[:, 30:, :20] = True
    poses = _rigid_poses(4)
    config = RefineConfig()
    plan = prepare_refinement(images, depth, coarse, intr, config)

    world = backproject(depth, intr, poses, pixel_offset=PIXEL_CENTRE)
    valid = torch.isfinite(depth) & (depth > 0)
    world_inliers = statistical_inliers(world, valid, config)
    assert not world_inliers[:, 20, 30].any()
    assert torch.equal(plan.inliers, world_inliers)

    world_candidates = world.reshape(4, -1, 3).gather(
        1, plan.index.unsqueeze(-1).expand(-1, -1, 3))
    km = KMeansConfig(config.clusters, config.kmeans_iterations, None, config.seed)
    world_labels = kmeans(world_candidates, km, plan.valid)[0]
    assert plan.valid.sum() > 1000
    assert torch.equal(plan.labels, world_labels)
    # The camera-frame candidates really are the world ones seen from each camera.
    moved = torch.einsum('sij,scj->sci', poses[:, :3, :3], plan.points) + poses[:, None, :3, 3]
    assert torch.allclose(moved, world_candidates, atol=1e-4)


def test_refinement_is_deterministic():
    depth, images, poses, intr, boxes = _scene(4)
    first = refine_masks(images, depth, _coarse(boxes), poses, intr)
    second = refine_masks(images, depth, _coarse(boxes), poses, intr)
    assert torch.equal(first.masks, second.masks)
    assert torch.equal(first.labels, second.labels)


def test_statistical_outlier_removal_exact_and_image_search_agree():
    depth, _, poses, intr, _ = _scene(2)
    depth = depth.clone()
    spikes = [(10, 10), (30, 50), (40, 5)]
    for row, col in spikes:
        depth[:, row, col] = 40.0  # isolated points far behind the wall
    points = backproject(depth, intr, poses, pixel_offset=PIXEL_CENTRE)
    valid = torch.ones_like(depth, dtype=torch.bool)
    exact = statistical_inliers(points, valid, RefineConfig(neighbour_search='exact'))
    image = statistical_inliers(points, valid, RefineConfig(neighbour_search='image'))
    for row, col in spikes:
        assert not exact[:, row, col].any() and not image[:, row, col].any()
    assert (exact == image).float().mean() > 0.99
    assert exact.float().mean() > 0.9


def test_morphology_matches_opencv():
    gen = np.random.default_rng(0)
    mask = gen.random((3, 30, 40)) > 0.8
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    assert np.array_equal(ellipse_kernel(5, torch.device('cpu')).numpy(), kernel)
    expected = []
    for frame in mask.astype(np.uint8) * 255:
        closed = cv2.morphologyEx(frame, cv2.MORPH_CLOSE, kernel, iterations=1)
        expected.append(cv2.dilate(closed, np.ones((3, 3), np.uint8), iterations=1) > 0)
    ours = close_then_dilate(torch.from_numpy(mask))
    assert np.array_equal(ours.numpy(), np.stack(expected))


def test_empty_coarse_masks_give_empty_refined_masks():
    depth, images, poses, intr, boxes = _scene(3)
    out = refine_masks(images, depth, torch.zeros_like(boxes), poses, intr)
    assert not out.masks.any()


def test_fewer_candidates_than_clusters():
    depth, images, poses, intr, boxes = _scene(3)
    coarse = torch.zeros_like(boxes)
    rows, cols = torch.nonzero(boxes[1], as_tuple=True)
    coarse[1, rows[:5], cols[:5]] = True  # 5 box pixels < 30 clusters
    out = refine_masks(images, depth, coarse, poses, intr)
    assert out.raw_masks[1].sum() == 5
    assert not out.raw_masks[0].any() and not out.raw_masks[2].any()


@pytest.mark.parametrize('mode', ['cluster', 'gradient'])
def test_all_dynamic_frames_stay_dynamic(mode):
    depth, images, poses, intr, boxes = _scene(3)
    coarse = torch.ones_like(boxes)
    out = refine_masks(images, depth, coarse, poses, intr, RefineConfig(mode=mode))
    # No correspondence can land on a static pixel: every cluster is dynamic.
    assert torch.equal(out.raw_masks, out.inliers)
    assert out.masks.float().mean() > 0.95


def test_nan_and_inf_depth_are_never_candidates():
    depth, images, poses, intr, boxes = _scene(4)
    depth = depth.clone()
    depth[:, 20:24, 20:40] = float('nan')
    depth[:, 0:2, :] = float('inf')
    depth[:, 46:, :] = -1.0
    out = refine_masks(images, depth, _coarse(boxes), poses, intr)
    assert not out.raw_masks[:, 20:24, 20:40].any()
    assert not out.raw_masks[:, 0:2].any() and not out.raw_masks[:, 46:].any()
    assert not out.inliers[:, 20:24, 20:40].any()
    assert torch.isfinite(out.scores[torch.isfinite(out.scores)]).all()
    # The box is still found where its depth is valid.
    assert (out.raw_masks & boxes).sum() > 0.5 * (boxes & ~torch.isnan(depth)).sum()


def test_projection_gradient_norm_matches_autograd_on_a_depth_ramp():
    from vggt4d_ros.motion.refine.reprojection import residual_gradient_norm, sample_pixels
    height, width = 20, 30
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing='ij')
    depth = (4.0 + 0.05 * xs - 0.03 * ys).unsqueeze(0)  # a planar depth ramp
    intr = torch.tensor([[[25.0, 0, 15], [0, 24.0, 10], [0, 0, 1]]], dtype=torch.float64)
    angle = torch.tensor(0.2, dtype=torch.float64)
    rot = torch.tensor([[torch.cos(angle), 0, torch.sin(angle)], [0, 1, 0],
                        [-torch.sin(angle), 0, torch.cos(angle)]], dtype=torch.float64)
    trans = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    world = torch.tensor([[0.3, 0.2, 4.0], [-0.5, 0.1, 3.5], [0.2, -0.3, 5.0]],
                         dtype=torch.float64, requires_grad=True)
    cam = world @ rot.T + trans
    proj = cam @ intr[0].T
    x, y = proj[:, 0] / proj[:, 2], proj[:, 1] / proj[:, 2]
    sampled = sample_pixels(depth.unsqueeze(1), x.unsqueeze(0), y.unsqueeze(0), 'bilinear')[0, 0]
    residual = sampled - cam[:, 2]
    grads = torch.stack([torch.autograd.grad(r, world, retain_graph=True)[0][i]
                         for i, r in enumerate(residual)])
    ours = residual_gradient_norm(depth, intr, cam.detach().unsqueeze(0),
                                  x.detach().unsqueeze(0), y.detach().unsqueeze(0))[0]
    torch.testing.assert_close(ours, grads.norm(dim=1), atol=1e-9, rtol=1e-9)


def test_exact_outlier_removal_matches_a_kdtree_reference():
    from scipy.spatial import cKDTree
    gen = np.random.default_rng(3)
    points = gen.normal(size=(1, 12, 15, 3)).astype(np.float32)
    points[0, 2, 3] = 30.0  # a far outlier
    pts = points.reshape(-1, 3).astype(np.float64)
    dist, _ = cKDTree(pts).query(pts, k=20)  # Open3D: the point itself is one of the 20
    mean_dist = dist.mean(axis=1)
    limit = mean_dist.mean() + 2.5 * mean_dist.std(ddof=1)
    expected = (mean_dist > 0) & (mean_dist < limit)
    ours = statistical_inliers(torch.from_numpy(points), torch.ones(1, 12, 15, dtype=torch.bool),
                               RefineConfig(neighbour_search='exact'))
    assert np.array_equal(ours.reshape(-1).numpy(), expected)
    assert not ours[0, 2, 3]


def test_chunked_cluster_sums_equal_the_single_product():
    from vggt4d_ros.motion.refine.reprojection import cluster_sums
    generator = torch.Generator().manual_seed(0)
    for count in (100, 4096, 10_000):
        labels = torch.randint(0, 30, (3, count), generator=generator)
        member = (labels.unsqueeze(-1) == torch.arange(30)).float()
        values = torch.rand(3, count, 3, generator=generator, dtype=torch.float64)
        sums = cluster_sums(member.double(), values)
        reference = torch.bmm(member.double().transpose(1, 2), values)
        torch.testing.assert_close(sums, reference)


@pytest.mark.parametrize('size', [1, 3, 4, 5, 7, 9])
def test_dilation_and_erosion_match_opencv_for_ellipses_and_arbitrary_kernels(size):
    from vggt4d_ros.motion.refine.morphology import dilate, erode
    gen = np.random.default_rng(size)
    mask = gen.random((2, 23, 31)) > 0.7
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    arbitrary = (gen.random((size, size)) > 0.5).astype(np.uint8)  # gaps: convolution path
    arbitrary[size // 2, size // 2] = 1
    for kernel in (ellipse, arbitrary, np.ones((size, size), np.uint8)):
        frames = mask.astype(np.uint8)
        dilated = np.stack([cv2.dilate(f, kernel) > 0 for f in frames])
        eroded = np.stack([cv2.erode(f, kernel) > 0 for f in frames])
        ours = torch.from_numpy(mask)
        weights = torch.from_numpy(kernel.astype(np.float32))
        assert np.array_equal(dilate(ours, weights).numpy(), dilated)
        assert np.array_equal(erode(ours, weights).numpy(), eroded)


def test_compaction_is_the_stable_partition_of_the_candidates():
    from vggt4d_ros.motion.refine import compact_candidates
    generator = torch.Generator().manual_seed(4)
    candidates = torch.rand(4, 300, generator=generator) < torch.tensor([[0.0], [0.1], [0.5],
                                                                         [1.0]])
    index, valid = compact_candidates(candidates)
    counts = candidates.sum(1)
    assert index.shape == valid.shape == (4, 300)
    expected = torch.sort((~candidates).to(torch.uint8), dim=1, stable=True).indices
    assert torch.equal(index, expected)
    assert torch.equal(valid.sum(1), counts)
    assert torch.equal(candidates.gather(1, index), valid)


def test_refine_benchmark_prints_a_table_on_cpu(capsys):
    from vggt4d_ros.tools import bench
    assert bench.main(['refine', '--device', 'cpu', '--frames', '3', '--height', '24',
                       '--width', '32', '--repeats', '1', '--warmup', '0']) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| ')]
    assert table[0] == '| part | median ms | note |'
    names = [line.split(' | ')[0][2:] for line in table[1:]]
    assert names == ['kNN mean distance, eager', 'statistical_inliers', 'k-means, eager',
                     'k-means, as the pipeline', 'close + dilate',
                     'refine_masks, as the pipeline']
    assert all(float(line.split(' | ')[1]) > 0 for line in table[1:])
