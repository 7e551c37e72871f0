# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The torch perception stages give the numpy reference's results (numpy_reference.py).

Random frames with several moving objects, overlaps at depth jumps, tiny blobs, invalid and
unconfident depth, pad borders, a pose and a scale; the points are thinned, parts dropped as
small and as excess. Per frame: the same pixels, points, colours, label images and instance
measurements; over a sequence: the same clouds, object ids, tracks and grids.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_reference as ref
from vggt4d_ros.perception.batch import stack_frames
from vggt4d_ros.perception.config import DynamicPointsConfig
from vggt4d_ros.perception.config import GridConfig
from vggt4d_ros.perception.config import InstanceConfig
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.perception import instances
from vggt4d_ros.perception.dynamic_points import dynamic_points
from vggt4d_ros.perception.instances import append_footprints
from vggt4d_ros.perception.instances import InstanceStats
from vggt4d_ros.perception.instances import label_image
from vggt4d_ros.perception.instances import measure_instances
from vggt4d_ros.perception.instances import to_host
from vggt4d_ros.perception.observation import FrameObservation
from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.perception.tracker import footprints
from vggt4d_ros.perception.tracker import Tracker

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
HEIGHT, WIDTH = 60, 80
K = np.array([[70.0, 0.0, 39.5], [0.0, 70.0, 29.5], [0.0, 0.0, 1.0]])
MS = 1_000_000


def _pose(rng) -> np.ndarray:
    angle = rng.uniform(-0.2, 0.2)
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                    [-np.sin(angle), 0, np.cos(angle)]]
    pose[:3, 3] = rng.uniform(-0.3, 0.3, 3)
    return pose


def _frame(rng, k: int, stamp_ns: int, device: str = 'cpu') -> FrameObservation:
    """Frame k of a sequence: objects drift by k pixels; random noise every frame."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    depth = (4.0 + 0.03 * rows + rng.normal(0, 0.01, (HEIGHT, WIDTH))).astype(np.float32)
    mask = np.zeros((HEIGHT, WIDTH), bool)
    objects = [(20, 15 + k, 9, 7, 2.0), (24, 24 + k, 7, 9, 3.2),  # overlapping, 1.2 apart
               (45, 60 - k, 6, 10, 2.5), (8, 60, 3, 3, 1.8), (50, 10, 4, 3, 3.0)]
    for row, col, half_h, half_w, z in objects:
        inside = ((rows - row) / half_h) ** 2 + ((cols - col) / half_w) ** 2 <= 1.0
        depth[inside & ~mask] = z + 0.02 * rng.standard_normal(int((inside & ~mask).sum()))
        mask |= inside
    mask[::11, ::13] = True  # single-pixel blobs
    depth[rng.random((HEIGHT, WIDTH)) < 0.01] = np.nan
    depth[rng.random((HEIGHT, WIDTH)) < 0.01] = 0.0
    conf = rng.uniform(1.0, 5.0, (HEIGHT, WIDTH)).astype(np.float32)
    valid = np.ones((HEIGHT, WIDTH), bool)
    valid[:2] = False
    image = rng.random((3, HEIGHT, WIDTH)).astype(np.float32)

    def put(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    return FrameObservation(stamp_ns=stamp_ns, depth=put(depth),
                            depth_scale=rng.uniform(0.5, 2.0), conf=put(conf), intrinsics=K,
                            world_from_camera=_pose(rng), mask=put(mask), image=put(image),
                            valid=put(valid))


def _config() -> PerceptionConfig:
    return PerceptionConfig(
        points=DynamicPointsConfig(max_points_per_frame=400, conf_percentile=10.0),
        instances=InstanceConfig(min_pixels=12, max_instances=3),
        grid=GridConfig(resolution=0.1, width=90, height=100, origin_xy=(-1.0, -5.0),
                        ground_z=-2.0, min_height=0.1, max_height=3.0, pixel_stride=4))


def _reference_frame(obs: FrameObservation, config: PerceptionConfig):
    frame = ref.as_numpy(obs)
    threshold = ref.conf_threshold(frame, config.points.min_conf, config.points.conf_percentile)
    points = ref.dynamic_points(frame, config.points, config.output_from_world, threshold)
    dynamic = frame.mask & ref.valid_depth(frame, threshold, config.points.max_depth)
    labels, counts, small, excess = ref.label_image(dynamic, frame.depth, config.instances)
    instances, point_labels = ref.split_instances(points, labels, counts, small, excess,
                                                  config.tracker.depth_completion)
    return frame, threshold, points, (labels, counts, small, excess), instances, point_labels


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_points_labels_and_instances_equal_the_reference(seed, device):
    rng = np.random.default_rng(seed)
    config = _config()
    frames = [_frame(rng, k, (k + 1) * 66 * MS, device) for k in range(4)]
    batch = stack_frames(frames, config.output_from_world)
    points = dynamic_points(batch, config.points)
    labels = label_image(points.selected, batch.depth, config.instances)
    assert labels.converged
    stats = measure_instances(points, labels, batch.output_from_camera,
                              config.tracker.depth_completion)
    found = to_host(stats, labels, points.host_count)
    for f, obs in enumerate(frames):
        _, threshold, expected, (ref_labels, counts, small, excess), instances, point_labels = (
            _reference_frame(obs, config))
        assert float(points.threshold[f]) == pytest.approx(threshold)
        count = int(points.count[f])
        index = points.index[f, :count].cpu().numpy()
        np.testing.assert_array_equal(index // WIDTH, expected.rows)
        np.testing.assert_array_equal(index % WIDTH, expected.cols)
        np.testing.assert_allclose(points.output[f, :count].cpu().numpy(), expected.output,
                                   rtol=0, atol=1e-12)
        np.testing.assert_array_equal(points.rgb[f, :count].cpu().numpy(), expected.rgb)
        np.testing.assert_array_equal(labels.labels[f].cpu().numpy(), ref_labels)
        used = labels.pixels[f].cpu().numpy()
        np.testing.assert_array_equal(used[used > 0], counts)
        assert (found[f].small_parts, found[f].excess_parts) == (small, excess)
        np.testing.assert_array_equal(found[f].point_labels, point_labels)
        assert [i.label for i in found[f].instances] == [i.label for i in instances]
        assert len(instances) >= 2 and excess >= 1 and small >= 1  # the case is exercised
        for got, want in zip(found[f].instances, instances):
            assert got.box == want.box and got.pixels == want.pixels
            np.testing.assert_allclose(got.centre, want.centre, rtol=0, atol=1e-12)
            np.testing.assert_allclose(got.size, want.size, rtol=0, atol=1e-12)
            assert got.range == pytest.approx(want.range, abs=1e-12)
            assert got.push == pytest.approx(want.push, abs=1e-12)
            np.testing.assert_allclose(got.push_direction, want.push_direction, rtol=0,
                                       atol=1e-12)
            assert got.top == pytest.approx(want.top, abs=1e-12)


@pytest.mark.parametrize('compact', [True, False])
@pytest.mark.parametrize('device', DEVICES)
def test_instance_footprints_equal_the_host_fit_of_their_points(device, compact, monkeypatch):
    # The instances stage fits each frame's first labels on the device (append_footprints);
    # the host's fit (tracker.footprints) of the same float64 points gives the same fits to
    # float rounding (atol 1e-9 m and rad), ok and away alike; with a bound below the
    # labels, the others are not ok. Whether only the labels with points are fitted
    # (``compact``: the CPU's way) or all (the graph's) changes nothing.
    monkeypatch.setattr(instances, 'COMPACT_FIT_DEVICE_TYPES', (device,) if compact else ())
    rng = np.random.default_rng(3)
    config = _config()
    frames = [_frame(rng, k, (k + 1) * 66 * MS, device) for k in range(4)]
    batch = stack_frames(frames, config.output_from_world)
    points = dynamic_points(batch, config.points)
    labels = label_image(points.selected, batch.depth, config.instances)
    stats = measure_instances(points, labels, batch.output_from_camera,
                              config.tracker.depth_completion)
    xyz = points.output.cpu().numpy()
    fitted = skipped = 0
    for bound in (8, 2):
        table = append_footprints(stats, points.used, points.output, bound)
        found = to_host(InstanceStats(table, stats.pixels, stats.point_labels), labels,
                        points.host_count)
        for f, frame in enumerate(found):
            assert len(frame.footprints.ok) == len(frame.instances)
            if not frame.instances:
                continue
            point_labels = frame.point_labels
            want = footprints(frame.instances,
                              [xyz[f, :len(point_labels)][point_labels == inst.label]
                               for inst in frame.instances], bound)
            got = frame.footprints
            assert np.array_equal(got.ok, want.ok) and np.array_equal(got.away, want.away)
            for name in ('heading', 'near', 'extent', 'closeness'):
                np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=0,
                                           atol=1e-9, err_msg=name)
            fitted += int(got.ok.sum())
            beyond = np.array([inst.label > bound for inst in frame.instances])
            assert not got.ok[beyond].any()
            skipped += int(beyond.sum())
    assert fitted >= 8 and skipped >= 2, (fitted, skipped)  # the cases are exercised


@pytest.mark.parametrize('device', DEVICES)
def test_sequence_clouds_tracks_and_grids_equal_the_reference(device):
    rng = np.random.default_rng(5)
    config = _config()
    perception = PerceptionTracker(config)
    tracker = Tracker(config.tracker)
    grid = ref.OccupancyMapper(config.grid)
    frames = [_frame(rng, k, (k + 1) * 66 * MS, device) for k in range(16)]
    tracked = 0
    for window in range(4):
        out = perception.update(frames[4 * window: 4 * window + 4])
        for cloud, obs in zip(out.clouds, frames[4 * window: 4 * window + 4]):
            frame, threshold, points, labels, instances, point_labels = _reference_frame(
                obs, config)
            # Each instance's points as the box fit gets them (float64: fitted on the device,
            # in the instances stage).
            xyz = points.output
            ids = tracker.update(obs.stamp_ns, instances,
                                 [xyz[point_labels == inst.label] for inst in instances])
            object_ids = np.zeros(len(points), np.int32)
            if len(instances):
                by_label = np.zeros(labels[0].max() + 1, np.int32)
                by_label[[inst.label for inst in instances]] = ids
                object_ids = by_label[point_labels]
            np.testing.assert_allclose(cloud.points, points.output.astype(np.float32))
            np.testing.assert_array_equal(cloud.rgb, points.rgb)
            np.testing.assert_array_equal(cloud.object_ids, object_ids)
            camera = (config.output_from_world @ obs.world_from_camera)[:3, 3]
            grid.integrate(obs.stamp_ns, camera, ref.static_points(frame, threshold, config),
                           points.output)
        expected = tracker.tracks()
        assert [t.track_id for t in out.tracks] == [t.track_id for t in expected]
        for got, want in zip(out.tracks, expected):
            np.testing.assert_allclose(got.position, want.position, rtol=0, atol=1e-9)
            np.testing.assert_allclose(got.velocity, want.velocity, rtol=0, atol=1e-9)
        tracked += len(expected)
        static, dynamic, combined = grid.grids()
        for got, want in ((out.grids.static, static), (out.grids.dynamic, dynamic),
                          (out.grids.combined, combined)):
            # Equal but for cells whose bearing bin flips with the last bit of an atan2.
            assert (got != want).mean() <= 0.002, (got != want).sum()
        assert (static == ref.OCCUPIED).sum() > 20 and (dynamic == ref.OCCUPIED).sum() > 5
    assert tracked >= 2


def test_frames_of_different_shapes_are_not_stacked():
    config = _config()
    with pytest.raises(ValueError):
        frames = [_frame(np.random.default_rng(0), 0, MS)]
        frames.append(FrameObservation(stamp_ns=2 * MS, depth=torch.zeros(4, 4),
                                       depth_scale=1.0, conf=None, intrinsics=K,
                                       world_from_camera=np.eye(4),
                                       mask=torch.zeros(4, 4, dtype=torch.bool)))
        stack_frames(frames, config.output_from_world)
