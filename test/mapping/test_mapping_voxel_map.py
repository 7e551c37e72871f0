# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Voxel map: exact running means, bounded size with eviction, outlier filter, PLY."""

import numpy as np
import pytest

from vggt4d_ros.mapping.voxel_map import read_ply
from vggt4d_ros.mapping.voxel_map import voxel_keys
from vggt4d_ros.mapping.voxel_map import VoxelMap
from vggt4d_ros.mapping.voxel_map import VoxelMapConfig


def _batch(rng: np.random.Generator, count: int, centre=(0.0, 0.0, 0.0), spread=1.0):
    xyz = (rng.uniform(-spread, spread, (count, 3)) + np.asarray(centre)).astype(np.float32)
    rgb = rng.integers(0, 256, (count, 3), dtype=np.uint8)
    return xyz, rgb


def _reference_means(batches, voxel):
    xyz = np.concatenate([b[0] for b in batches]).astype(np.float64)
    rgb = np.concatenate([b[1] for b in batches]).astype(np.float64)
    keys = voxel_keys(xyz, voxel)
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    mean_xyz = np.stack([np.bincount(inverse, xyz[:, a]) / counts for a in range(3)], 1)
    mean_rgb = np.stack([np.bincount(inverse, rgb[:, a]) / counts for a in range(3)], 1)
    return unique, mean_xyz, mean_rgb, counts


def test_fusion_equals_brute_force_running_mean():
    rng = np.random.default_rng(0)
    batches = [_batch(rng, 5000, spread=0.3) for _ in range(4)]
    voxel_map = VoxelMap(VoxelMapConfig(voxel_size=0.05, max_voxels=100_000))
    for xyz, rgb in batches:
        voxel_map.integrate(xyz, rgb)
    unique, mean_xyz, mean_rgb, counts = _reference_means(batches, 0.05)
    xyz, rgb = voxel_map.points(min_hits=1)
    assert len(voxel_map) == len(unique) == len(xyz)
    order = np.argsort(voxel_keys(xyz, 0.05))
    np.testing.assert_allclose(xyz[order], mean_xyz, atol=1e-5)
    assert np.abs(rgb[order].astype(int) - np.rint(mean_rgb)).max() <= 1
    np.testing.assert_array_equal(np.sort(voxel_map.hits()), np.sort(counts))


def test_hash_table_survives_heavy_collisions():
    rng = np.random.default_rng(1)
    voxel_map = VoxelMap(VoxelMapConfig(voxel_size=1.0, max_voxels=4096))
    grid = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing='ij'), -1).reshape(-1, 3)
    xyz = (grid + 0.5).astype(np.float32)
    voxel_map.integrate(xyz, np.zeros_like(xyz, dtype=np.uint8))
    assert len(voxel_map) == 4096
    # Every voxel is found again (hits grow instead of new voxels appearing).
    created = voxel_map.integrate(xyz[rng.permutation(len(xyz))], np.zeros((4096, 3), np.uint8))
    assert created == 0 and len(voxel_map) == 4096
    assert (voxel_map.hits() == 2).all()


def test_size_is_bounded_and_oldest_voxels_are_evicted():
    rng = np.random.default_rng(2)
    config = VoxelMapConfig(voxel_size=0.1, max_voxels=2000, evict_to_fraction=0.8)
    voxel_map = VoxelMap(config)
    for step in range(40):
        xyz, rgb = _batch(rng, 400, centre=(step * 10.0, 0, 0), spread=0.5)
        voxel_map.integrate(xyz, rgb)
        assert len(voxel_map) <= 2000
    assert voxel_map.evicted > 0
    kept, _ = voxel_map.points(min_hits=1)
    # The newest batch survives in full; the first batches are gone.
    assert (kept[:, 0] > 39 * 10.0 - 1).sum() == len(np.unique(voxel_keys(xyz, 0.1)))
    assert (kept[:, 0] < 5.0).sum() == 0
    nbytes = voxel_map.nbytes
    for step in range(40, 80):
        voxel_map.integrate(*_batch(rng, 400, centre=(step * 10.0, 0, 0), spread=0.5))
    assert voxel_map.nbytes == nbytes  # storage is preallocated, never grows


def test_batch_larger_than_capacity_keeps_best_populated_voxels():
    rng = np.random.default_rng(3)
    voxel_map = VoxelMap(VoxelMapConfig(voxel_size=0.1, max_voxels=50))
    xyz, rgb = _batch(rng, 3000, spread=2.0)
    voxel_map.integrate(xyz, rgb)
    assert len(voxel_map) == 50


def test_export_filters_single_hit_voxels_and_prune_removes_stale_ones():
    voxel_map = VoxelMap(VoxelMapConfig(voxel_size=1.0, max_voxels=100, min_hits_export=2))
    solid = np.array([[0.5, 0.5, 0.5]] * 3, np.float32)
    stray = np.array([[10.5, 0.5, 0.5]], np.float32)
    voxel_map.integrate(np.concatenate([solid, stray]), np.full((4, 3), 200, np.uint8))
    xyz, rgb = voxel_map.points()
    np.testing.assert_allclose(xyz, [[0.5, 0.5, 0.5]])
    assert rgb.dtype == np.uint8 and (rgb == 200).all()
    assert voxel_map.prune(min_hits=2, max_age=5) == 0  # too recent to prune
    for _ in range(6):
        voxel_map.integrate(solid, np.zeros((3, 3), np.uint8))
    assert voxel_map.prune(min_hits=2, max_age=5) == 1
    assert len(voxel_map) == 1
    assert len(voxel_map.points(min_hits=1)[0]) == 1


def test_write_ply_binary_little_endian(tmp_path):
    rng = np.random.default_rng(4)
    voxel_map = VoxelMap(VoxelMapConfig(voxel_size=0.2, min_hits_export=1))
    voxel_map.integrate(*_batch(rng, 500))
    path = tmp_path / 'map.ply'
    count = voxel_map.write_ply(path)
    header = path.read_bytes().split(b'end_header\n')[0].decode()
    assert 'format binary_little_endian 1.0' in header
    assert f'element vertex {count}' in header
    for name in ('float x', 'float y', 'float z', 'uchar red', 'uchar green', 'uchar blue'):
        assert f'property {name}' in header
    xyz, rgb = read_ply(path)
    ref_xyz, ref_rgb = voxel_map.points()
    np.testing.assert_array_equal(xyz, ref_xyz)
    np.testing.assert_array_equal(rgb, ref_rgb)
    assert path.stat().st_size == len(header) + len('end_header\n') + 15 * count


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        VoxelMapConfig(voxel_size=0)
    with pytest.raises(ValueError):
        VoxelMapConfig(evict_to_fraction=0)


def test_eviction_removes_stale_outliers_before_old_solid_voxels():
    config = VoxelMapConfig(voxel_size=1.0, max_voxels=100, evict_to_fraction=1.0,
                            min_hits_export=2, stale_after=3)
    voxel_map = VoxelMap(config)
    solid = np.array([[0.5, 0.5, 0.5]] * 5, np.float32)  # seen often, long ago
    strays = (np.arange(60)[:, None] * [1.0, 0, 0] + [100.5, 0.5, 0.5]).astype(np.float32)
    voxel_map.integrate(solid, np.zeros((5, 3), np.uint8))
    for step in range(5):  # recent single-hit voxels that are already stale
        voxel_map.integrate(strays[step * 12:(step + 1) * 12] + [0, 10.0 * step, 0],
                            np.zeros((12, 3), np.uint8))
    for _ in range(4):
        voxel_map.integrate(np.array([[50.5, 0.5, 0.5]] * 2, np.float32),
                            np.zeros((2, 3), np.uint8))
    fresh = (np.arange(50)[:, None] * [1.0, 0, 0] + [-200.5, 0.5, 0.5]).astype(np.float32)
    voxel_map.integrate(fresh, np.zeros((50, 3), np.uint8))
    xyz, _ = voxel_map.points(min_hits=1)
    # The old but solid voxel survives; only stale strays made room for the fresh batch.
    assert any(np.allclose(p, [0.5, 0.5, 0.5]) for p in xyz)
    assert (xyz[:, 0] < -100).sum() == 50
    assert len(voxel_map) <= 100


def test_non_finite_points_are_skipped():
    voxel_map = VoxelMap(VoxelMapConfig(voxel_size=1.0, min_hits_export=1))
    xyz = np.array([[0.5, 0.5, 0.5], [np.nan, 0, 0], [np.inf, 1, 1]], np.float32)
    voxel_map.integrate(xyz, np.zeros((3, 3), np.uint8))
    assert len(voxel_map) == 1
