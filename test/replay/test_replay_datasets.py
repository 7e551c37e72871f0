# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Benchmark loaders on tiny fixtures in each exact layout, and the datasets' own definitions.

DAVIS boundary F follows davisvideochallenge/davis2017-evaluation (``davis2017/metrics.py``):
``seg2bmap`` boundaries, a skimage ``disk`` of radius ``ceil(0.008 * diagonal)``. TUM
association follows TUM's ``associate.py`` (greedy by smallest difference, < 0.02 s).
"""

from __future__ import annotations

import numpy as np
import pytest
import replay_dataset_fixtures as fx

from vggt4d_ros.geometry.rigid import translation_quaternion_from_pose
from vggt4d_ros.replay.datasets import load_dataset
from vggt4d_ros.replay.datasets import tum
from vggt4d_ros.replay.datasets.base import DatasetError
from vggt4d_ros.replay.metrics import boundary_f
from vggt4d_ros.replay.metrics import boundary_radius
from vggt4d_ros.replay.metrics import disk
from vggt4d_ros.replay.metrics import jaccard
from vggt4d_ros.replay.metrics import mask_boundary


def test_davis_boundary_tolerance_is_the_toolkits():
    """bound_th 0.008 of the diagonal, rounded up; the structuring element is skimage's disk."""
    from skimage.morphology import disk as skimage_disk

    assert boundary_radius((480, 854)) == 8  # ceil(0.008 * 979.8) on DAVIS 480p
    assert boundary_radius((48, 64)) == 1  # ceil(0.008 * 80)
    for radius in (1, 2, 5, 8):
        np.testing.assert_array_equal(disk(radius), skimage_disk(radius))


def test_seg2bmap_boundary_of_one_pixel():
    """A lone foreground pixel: itself, its west, north and north-west neighbours."""
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True
    expected = np.zeros((5, 5), bool)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(mask_boundary(mask), expected)
    # Image border: the last row compares east only, the last column south only.
    corner = np.zeros((3, 3), bool)
    corner[2, 2] = True
    assert mask_boundary(corner).tolist() == [[False] * 3, [False, True, True],
                                              [False, True, False]]


def test_shifted_rectangle_gives_hand_computed_j_and_f():
    """20x20 square, prediction 4 px to the right, 48x64 image (tolerance 1 px).

    J = (20 x 16) / (20 x 24) = 2/3. Boundaries: 80-pixel outlines (rows 9 and 29, columns 9
    and 29 for the truth; columns 13 and 33 for the prediction). Matched prediction pixels
    (within the plus-shaped radius-1 disk of a true boundary pixel): 17 + 1 on each of the two
    shared rows, plus the two ends of the left column next to those rows = 38, so precision
    = 38/80, recall likewise by symmetry, F = 0.475.
    """
    truth, pred = np.zeros(fx.HW, bool), np.zeros(fx.HW, bool)
    truth[10:30, 10:30] = True
    pred[10:30, 14:34] = True
    assert jaccard(pred, truth) == pytest.approx(2 / 3)
    assert boundary_f(pred, truth) == pytest.approx(0.475)
    shifted_by_tolerance = np.zeros(fx.HW, bool)
    shifted_by_tolerance[10:30, 11:31] = True
    assert boundary_f(shifted_by_tolerance, truth) == 1.0


def test_davis_loader_merges_objects(tmp_path):
    truth = fx.write_davis(tmp_path, frames=3)
    sequences = load_dataset('davis', tmp_path, davis_split='2017')
    assert [s.name for s in sequences] == ['bear', 'camel']
    camel = sequences[1]
    assert len(camel.frames) == 3 and camel.frames[0].load_rgb().shape == (*fx.HW, 3)
    # Object 2 lies inside object 1's box: the merged mask is the box.
    np.testing.assert_array_equal(camel.load_mask[2](), truth['camel'][2])
    with pytest.raises(DatasetError, match='sequence.*lion.*not found'):
        load_dataset('davis', tmp_path, ['lion'])


def test_tum_association_follows_associate_py():
    rgb = [1.000, 1.012, 2.000, 3.000, 4.000]
    truth = [1.010, 2.019, 3.021, 3.990, 4.005]
    # 1.012 takes 1.010 (0.002 beats 1.000's 0.010); 2.019 is within 0.02, 3.021 is not;
    # 4.000 takes 4.005 (0.005 beats 3.990's 0.010), then 3.990 is left.
    assert tum.associate(rgb, truth) == [(1.012, 1.010), (2.000, 2.019), (4.000, 4.005)]
    assert tum.associate(rgb, [1.010], max_difference=0.001) == []
    assert tum.associate([0.5], [0.46], offset=0.03) == [(0.5, 0.46)]


def test_tum_list_format(tmp_path):
    path = tmp_path / 'groundtruth.txt'
    path.write_text('# comment\n1.5,1,2,3,0,0,0,1\n2.5\t4 5 6 0 0 0 1\n\n3.5\n')
    assert tum.read_file_list(path) == {1.5: ['1', '2', '3', '0', '0', '0', '1'],
                                        2.5: ['4', '5', '6', '0', '0', '0', '1']}


def test_tum_folder_and_ros1_bag_give_the_same_sequence(tmp_path):
    stamps, _ = fx.write_tum_folder(tmp_path / 'folder', 'rgbd_dataset_freiburg3_walking_xyz',
                                    frames=65)
    folder = load_dataset('tum', tmp_path / 'folder')[0]
    assert len(folder.frames) == 3  # every 30th of 65 associated frames
    assert [f.stamp_ns for f in folder.frames] == [int(round(stamps[i] * 1e9))
                                                   for i in (0, 30, 60)]
    np.testing.assert_allclose(folder.intrinsics[0], tum.FR3_INTRINSICS)

    bag_stamps, bag_poses = fx.write_tum_bag(tmp_path / 'bags' / 'rgbd_dataset_freiburg3_'
                                             'sitting_xyz.bag', frames=40)
    bag = load_dataset('tum', tmp_path / 'bags')[0]
    assert bag.name == 'rgbd_dataset_freiburg3_sitting_xyz'
    assert [f.stamp_ns for f in bag.frames] == [int(round(bag_stamps[i] * 1e9))
                                                for i in (0, 30)]
    np.testing.assert_allclose(bag.poses, bag_poses[[0, 30]], atol=1e-9)  # from /tf
    np.testing.assert_array_equal(bag.frames[1].load_rgb(), fx.texture(30))
    assert bag.intrinsics[0][0, 0] == 70.0  # from the bag's ROS 1 CameraInfo (K)
    # A groundtruth file beside the bag wins over /tf.
    moved = bag_poses.copy()
    moved[:, 0, 3] += 10.0
    lines = []
    for stamp, pose in zip(bag_stamps, moved):
        t, q = translation_quaternion_from_pose(pose)
        lines.append(f'{stamp:.6f} ' + ' '.join(f'{v:.9f}' for v in (*t, *q)))
    (tmp_path / 'bags' / 'rgbd_dataset_freiburg3_sitting_xyz-groundtruth.txt').write_text(
        '\n'.join(lines))
    np.testing.assert_allclose(load_dataset('tum', tmp_path / 'bags')[0].poses[:, 0, 3],
                               moved[[0, 30], 0, 3], atol=1e-6)


def test_vkitti_reads_camera_0_and_inverts_the_extrinsics(tmp_path):
    poses = fx.write_vkitti(tmp_path, frames=5)
    sequence = load_dataset('vkitti', tmp_path)[0]
    assert sequence.name == 'Scene01/clone'
    np.testing.assert_allclose(sequence.poses, poses, atol=1e-9)
    np.testing.assert_allclose(sequence.intrinsics[0], [[60, 0, 31.5], [0, 61, 23.5],
                                                        [0, 0, 1]])


def test_pointodyssey_and_dycheck_conventions(tmp_path):
    po_poses = fx.write_pointodyssey(tmp_path / 'po', frames=6)
    sequence = load_dataset('pointodyssey', tmp_path / 'po')[0]
    np.testing.assert_allclose(sequence.poses, po_poses, atol=1e-9)
    written = fx.write_dycheck(tmp_path / 'dy', frames=25)
    capture = load_dataset('dycheck', tmp_path / 'dy')[0]
    assert len(capture.frames) == 3  # ids 0, 10, 20
    np.testing.assert_allclose(capture.poses, written['poses'][[0, 10, 20]], atol=1e-9)
    np.testing.assert_allclose(capture.intrinsics[0], [[50, 0, 31.5], [0, 50, 23.5],
                                                       [0, 0, 1]])
    np.testing.assert_allclose(capture.load_depth[1](), fx.dycheck_depth(10))


def _break_davis(root):
    fx.write_davis(root, frames=2)
    path = root / 'DAVIS' / 'Annotations' / '480p' / 'bear' / '00001.png'
    path.unlink()
    return 'davis', path


def _break_vkitti(root):
    fx.write_vkitti(root, frames=2)
    path = root / 'Scene01' / 'clone' / 'extrinsic.txt'
    path.unlink()
    return 'vkitti', path


def _break_pointodyssey(root):
    fx.write_pointodyssey(root, frames=2)
    path = root / 'test' / 'ani' / 'anno.npz'
    path.write_bytes(b'not a zip file')
    return 'pointodyssey', path


def _break_dycheck(root):
    fx.write_dycheck(root, frames=11)
    path = root / 'apple' / 'camera' / '0_00010.json'
    path.unlink()
    return 'dycheck', path


def _break_tum(root):
    fx.write_tum_folder(root, 'rgbd_dataset_freiburg3_walking_rpy', frames=3)
    path = root / 'rgbd_dataset_freiburg3_walking_rpy' / 'groundtruth.txt'
    path.unlink()
    return 'tum', path


def _break_bonn(root):
    fx.write_tum_folder(root, 'rgbd_bonn_crowd', frames=35)
    path = root / 'rgbd_bonn_crowd' / 'rgb' / f'{fx.tum_stamps(35)[31]:.6f}.png'
    path.unlink()
    return 'bonn', path


def _break_tum_bag(root):
    path = root / 'rgbd_dataset_freiburg3_walking_halfsphere.bag'
    fx.write_tum_bag(path, frames=3, with_tf=False)
    return 'tum', path.parent / 'rgbd_dataset_freiburg3_walking_halfsphere-groundtruth.txt'


@pytest.mark.parametrize('breaker', [_break_davis, _break_vkitti, _break_pointodyssey,
                                     _break_dycheck, _break_tum, _break_bonn, _break_tum_bag])
def test_incomplete_folders_name_the_missing_file(tmp_path, breaker):
    dataset, path = breaker(tmp_path)
    with pytest.raises(DatasetError) as error:
        load_dataset(dataset, tmp_path)
    assert str(path) in str(error.value)


def test_missing_root_and_unknown_dataset(tmp_path):
    with pytest.raises(DatasetError, match='missing folder .*nowhere'):
        load_dataset('davis', tmp_path / 'nowhere')
    with pytest.raises(DatasetError, match='missing folder .*JPEGImages'):
        load_dataset('davis', tmp_path)
    with pytest.raises(DatasetError, match='unknown dataset'):
        load_dataset('kitti', tmp_path)
