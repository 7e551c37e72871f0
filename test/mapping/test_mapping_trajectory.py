# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Trajectory: TUM export format, interpolation, bounded storage."""

import numpy as np
import pytest

from vggt4d_ros.geometry.rotation import rotation_from_axis_angle
from vggt4d_ros.mapping.trajectory import format_stamp
from vggt4d_ros.mapping.trajectory import read_tum
from vggt4d_ros.mapping.trajectory import Trajectory


def _pose(yaw: float, position) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = rotation_from_axis_angle(np.array([0.0, yaw, 0.0]))
    pose[:3, 3] = position
    return pose


def test_format_stamp_is_exact_nanoseconds():
    assert format_stamp(1_700_000_000_000_000_123) == '1700000000.000000123'
    assert format_stamp(5) == '0.000000005'
    assert format_stamp(-1_500_000_000) == '-1.500000000'


def test_tum_export_round_trip(tmp_path):
    trajectory = Trajectory()
    stamps = [1_700_000_000_000_000_001 + i * 33_333_333 for i in range(5)]
    for i, stamp in enumerate(stamps):
        trajectory.append(stamp, _pose(0.3 * i, [i, -i, 0.5 * i]))
    path = tmp_path / 'traj.tum'
    assert trajectory.write_tum(path) == 5
    first = path.read_text().splitlines()[0].split()
    assert len(first) == 8 and first[0] == '1700000000.000000001'
    assert len(first[0].split('.')[1]) == 9
    read_stamps, poses = read_tum(path)
    np.testing.assert_array_equal(read_stamps, stamps)
    np.testing.assert_allclose(poses, trajectory.matrices(), atol=1e-8)
    # qw is last (XYZW) and rotations about y have only qy, qw.
    quat = np.array(first[4:8], float)
    np.testing.assert_allclose(quat, [0, 0, 0, 1], atol=1e-12)
    second = np.array(path.read_text().splitlines()[1].split()[4:8], float)
    np.testing.assert_allclose(second, [0, np.sin(0.15), 0, np.cos(0.15)], atol=1e-9)


def test_interpolation_slerps_and_lerps_between_keyframes():
    trajectory = Trajectory()
    trajectory.append(0, _pose(0.0, [0, 0, 0]))
    trajectory.append(1_000, _pose(1.0, [2, 0, 4]))
    trajectory.append(2_000, _pose(1.0, [2, 0, 8]), segment=1)
    poses, valid = trajectory.interpolate([250, 1_000, -5, 1_500, 2_500])
    np.testing.assert_array_equal(valid, [True, True, False, False, False])
    np.testing.assert_allclose(poses[0], _pose(0.25, [0.5, 0, 1.0]), atol=1e-12)
    np.testing.assert_allclose(poses[1], _pose(1.0, [2, 0, 4]), atol=1e-12)
    np.testing.assert_allclose(poses[2], np.eye(4))


def test_storage_and_path_are_bounded():
    trajectory = Trajectory(max_poses=100)
    for i in range(1000):
        trajectory.append(i, _pose(0.01 * i, [i, 0, 0]))
        assert len(trajectory) <= 100
    assert trajectory.dropped == 1000 - len(trajectory)
    assert trajectory.stamps_ns[-1] == 999
    stamps, poses = trajectory.path(max_poses=10)
    assert len(stamps) == 10 and stamps[-1] == 999 and poses.shape == (10, 4, 4)
    assert np.all(np.diff(stamps) > 0)


def test_stamps_must_increase():
    trajectory = Trajectory()
    trajectory.append(10, np.eye(4))
    with pytest.raises(ValueError):
        trajectory.append(10, np.eye(4))
    trajectory.clear()
    trajectory.append(5, np.eye(4))
    assert len(trajectory) == 1


def test_tum_file_reads_back_in_evo(tmp_path):
    file_interface = pytest.importorskip('evo.tools.file_interface')
    trajectory = Trajectory()
    for i in range(6):
        trajectory.append(1_600_000_000_123_456_789 + i * 50_000_000,
                          _pose(0.2 * i, [0.1 * i, 0.0, -0.3 * i]))
    path = tmp_path / 'est.tum'
    trajectory.write_tum(path)
    loaded = file_interface.read_tum_trajectory_file(str(path))
    np.testing.assert_allclose(loaded.positions_xyz, trajectory.positions(), atol=1e-9)
    np.testing.assert_allclose(loaded.poses_se3, trajectory.matrices(), atol=1e-8)
    np.testing.assert_allclose(loaded.timestamps, trajectory.stamps_ns * 1e-9, rtol=0, atol=1e-6)
