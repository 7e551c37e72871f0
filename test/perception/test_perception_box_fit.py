# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Oriented footprint rectangles (``box_fit``) and the tracker's box centres.

The points are a box's faces seen from a camera (noisy, sampled anew each frame) or a
sphere's visible half: the fit finds a box's heading, camera-side edges and extents, tells a
box from a sphere, and the tracker's box centre stays on the body's centre while the box
turns and shows one face, where the surface centre slides by centimetres.
"""

from __future__ import annotations

import numpy as np
import torch

from vggt4d_ros.perception import box_fit
from vggt4d_ros.perception.config import TrackerConfig
from vggt4d_ros.perception import instances
from vggt4d_ros.perception.instances import Instance
from vggt4d_ros.perception import registration
from vggt4d_ros.perception.tracker import Tracker

HALF = np.array([0.35, 0.22, 0.3])
CAMERA = np.array([-3.0, -1.0, 1.2])


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _box_points(centre: np.ndarray, angle: float, rng: np.random.Generator,
                camera: np.ndarray = CAMERA, noise: float = 0.005) -> np.ndarray:
    """[N,3] noisy points on the faces of a yawed box that face the camera (400 per face)."""
    rotation = _yaw(angle)
    points = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            normal = rotation[:, axis] * sign
            if normal @ (camera - (centre + normal * HALF[axis])) <= 0:
                continue
            local = rng.uniform(-HALF, HALF, size=(400, 3))
            local[:, axis] = sign * HALF[axis]
            points.append(local @ rotation.T + centre)
    cloud = np.concatenate(points)
    return cloud + noise * rng.standard_normal(cloud.shape)


def _sphere_points(centre: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """[N,3] noisy points on the half of a sphere that faces CAMERA."""
    normal = rng.standard_normal((3000, 3))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    points = centre + radius * normal
    seen = np.einsum('nd,nd->n', normal, CAMERA - points) > 0
    return points[seen] + 0.005 * rng.standard_normal((int(seen.sum()), 3))


def _instance(points: np.ndarray, camera: np.ndarray = CAMERA) -> Instance:
    """A detection as ``measure_instances`` gives it: the surface centre pushed back by
    half the visible width, the viewing ray, the top of the points."""
    mean = points.mean(axis=0)
    ray = (mean - camera) / np.linalg.norm(mean - camera)
    across = np.cross(ray, [0.0, 0.0, 1.0])
    push = 4.0 / 3.0 * np.std((points - mean) @ across / np.linalg.norm(across))
    top = float(np.percentile(points[:, 2], 98))
    return Instance(1, len(points), (10, 10, 40, 40), mean + push * ray,
                    np.ptp(points, axis=0), float(np.linalg.norm(mean - camera)),
                    push=float(push), push_direction=ray, top=top)


def _rays(points: list[np.ndarray]) -> np.ndarray:
    return np.stack([(p.mean(axis=0) - CAMERA) / np.linalg.norm(p.mean(axis=0) - CAMERA)
                     for p in points])


def test_fit_finds_heading_edges_and_extents_of_a_box():
    rng = np.random.default_rng(0)
    centres = [np.array([0.5, 0.4, 0.3]), np.array([-0.4, 1.2, 0.3])]
    angles = [0.3, 1.9]  # 1.9 rad: the fit's first axis is the box's short side
    clouds = [_box_points(c, a, rng) for c, a in zip(centres, angles)]
    fit = box_fit.fit_footprints(clouds, _rays(clouds))
    assert fit.ok.all() and fit.box_like.all(), fit.closeness
    # Headings are found to well within the search's 3 degree steps (the refinement).
    assert abs(fit.heading[0] - 0.3) < 0.01, fit.heading
    assert abs(fit.heading[1] - (1.9 - 0.5 * np.pi)) < 0.01, fit.heading
    # Two faces and the top seen: the whole footprint (2-98 % of the points: a little less).
    np.testing.assert_allclose(fit.extent[0], 2 * HALF[:2], atol=0.04)
    np.testing.assert_allclose(fit.extent[1], 2 * HALF[1::-1], atol=0.04)
    # With the true extents, the centre is the body's within a centimetre or two.
    true = np.stack([2 * HALF[:2], 2 * HALF[1::-1]])
    found = box_fit.box_centres(fit, true)
    for centre, xy in zip(centres, found):
        assert np.linalg.norm(xy - centre[:2]) < 0.02, (xy, centre)


def test_a_sphere_is_not_box_like_and_few_points_or_no_ray_are_not_fitted():
    rng = np.random.default_rng(1)
    sphere = _sphere_points(np.array([0.5, 0.4, 0.35]), 0.35, rng)
    box = _box_points(np.array([0.5, 0.4, 0.3]), 0.5, rng)
    few = box[:box_fit.MIN_POINTS - 1]
    rays = _rays([sphere, box, few])
    rays[1] = np.nan  # a rig merge: no single viewing ray
    fit = box_fit.fit_footprints([sphere, box, few], rays)
    assert fit.closeness[0] > 1.3 * box_fit.BOX_CLOSENESS, fit.closeness
    assert fit.ok[0] and not fit.box_like[0]
    assert not fit.ok[1] and not fit.ok[2]


def test_a_fit_does_not_depend_on_the_detections_fitted_with_it():
    # PerceptionTracker fits a window's detections in one call and hands each frame its
    # part: each detection's fit must be the one it gets alone, to the bit.
    rng = np.random.default_rng(3)
    clouds = [_box_points(np.array([0.5, 0.4, 0.3]), 0.3, rng),
              _sphere_points(np.array([-0.8, 1.0, 0.35]), 0.35, rng),
              _box_points(np.array([1.5, -0.6, 0.3]), 1.1, rng)[:150],  # padded
              _box_points(np.array([0.2, 1.4, 0.3]), 0.7, rng)]
    rays = _rays(clouds)
    rays[3] = np.nan
    together = box_fit.fit_footprints(clouds, rays)
    fields = ('heading', 'near', 'away', 'extent', 'closeness', 'ok')
    for i, cloud in enumerate(clouds):
        alone = box_fit.fit_footprints([cloud], rays[i:i + 1])
        part = together.take(slice(i, i + 1))
        for name in fields:
            assert np.array_equal(getattr(part, name), getattr(alone, name), equal_nan=True), (
                i, name)
    picked = together.take(np.array([2, 0]))
    assert np.array_equal(picked.heading, together.heading[[2, 0]])
    assert together.ok[:3].all() and not together.ok[3]


def _turning_box(centre_model: str, frames: int = 40) -> tuple[list[float], Tracker, list]:
    """Horizontal centre errors (m) of a track of a box turning in place, seen from CAMERA.

    The camera is level with the box's top (no top face): as the box turns it shows two
    faces, then one (edge-on), then two again, and the surface centre slides.
    """
    rng = np.random.default_rng(2)
    camera = np.array([-3.0, -1.0, 0.6])
    tracker = Tracker(TrackerConfig(centre_model=centre_model))
    centre = np.array([0.5, 0.4, 0.3])
    errors, surface = [], []
    for k in range(frames):
        angle = 0.1 + 0.06 * k
        points = _box_points(centre, angle, rng, camera=camera)
        instance = _instance(points, camera)
        tracker.update(int(round(k * 1e9 / 15.0)), [instance], [points])
        if k >= 3:
            (track,) = tracker.tracks()
            errors.append(float(np.linalg.norm(track.position[:2] - centre[:2])))
            surface.append(float(np.linalg.norm(instance.centre[:2] - centre[:2])))
    return errors, tracker, surface


def test_box_centre_stays_on_the_turning_box():
    errors, tracker, surface = _turning_box('box_fit')
    assert tracker.stats.box_fits == 40 and tracker.stats.box_fallbacks == 0
    # The surface centre is centimetres off and slides; the box centre is within 3.5 cm
    # (the 2-98 % edges: the near ones ~1 cm outside the noisy faces, the extents 4 % short,
    # so the centre sits 2-3 cm toward the camera) and steady, also when one face shows.
    assert max(surface) > 0.05 and np.ptp(surface) > 0.03, surface
    assert max(errors) < 0.035 and np.ptp(errors) < 0.5 * np.ptp(surface), errors
    surface_errors, surface_tracker, _ = _turning_box('surface')
    assert surface_tracker.stats.box_fits == 0
    assert max(surface_errors) > 2.0 * max(errors), (surface_errors, errors)


def test_a_sphere_track_keeps_the_surface_centre():
    rng = np.random.default_rng(3)
    results = {}
    for model in ('box_fit', 'surface'):
        rng = np.random.default_rng(3)
        tracker = Tracker(TrackerConfig(centre_model=model))
        for k in range(20):
            points = _sphere_points(np.array([0.5 + 0.03 * k, 0.4, 0.35]), 0.35, rng)
            tracker.update(int(round(k * 1e9 / 15.0)), [_instance(points)], [points])
        results[model] = (tracker.tracks()[0].position, tracker.stats.box_fits)
    assert results['box_fit'][1] == 0
    np.testing.assert_array_equal(results['box_fit'][0], results['surface'][0])


def test_fits_are_bounded_to_the_largest_detections_of_a_frame():
    # A frame cut into many parts (a random-weight network's masks): only the
    # ``box_fit_max_per_frame`` largest (labels 1..N) are fitted, each exactly as alone; the
    # others' fits are not ok, so they keep the surface centre, and the tracker counts them.
    from dataclasses import replace

    from vggt4d_ros.perception.tracker import footprints

    rng = np.random.default_rng(5)
    clouds = [_box_points(np.array([0.5 + 0.9 * k, 0.4, 0.3]), 0.2 * k, rng) for k in range(5)]
    instances = [replace(_instance(cloud), label=label)
                 for label, cloud in zip((2, 5, 1, 4, 3), clouds)]
    every = footprints(instances, clouds)
    bounded = footprints(instances, clouds, max_per_frame=2)
    assert every.ok.all()
    assert bounded.ok.tolist() == [True, False, True, False, False]
    for name in ('heading', 'near', 'away', 'extent', 'closeness'):
        assert np.array_equal(getattr(bounded, name)[[0, 2]], getattr(every, name)[[0, 2]])
    none = footprints(instances[1:2], clouds[1:2], max_per_frame=2)
    assert not none.ok.any() and len(none.heading) == 1
    tracker = Tracker(TrackerConfig(box_fit_max_per_frame=2))
    tracker.update(0, instances, clouds)
    assert tracker.stats.box_skipped == 3
    default = Tracker(TrackerConfig())  # 8 fits per frame: all five
    default.update(0, instances, clouds)
    assert default.stats.box_skipped == 0


def test_label_subsample_picks_what_registration_subsample_picks():
    # Random label images (in slot order, unused slots at the end): labels without points,
    # with fewer than, exactly and more than POINTS points (1000), and labels beyond the
    # fitted count; each fitted label's padded points are those of
    # registration.subsample(np.flatnonzero(labels == k), POINTS), index for index.
    rng = np.random.default_rng(7)
    wanted = {1: 1000, 2: 0, 3: box_fit.POINTS, 4: 1, 5: 37, 6: box_fit.POINTS + 1, 7: 600}
    frames, slots, count = 3, 3000, 6
    labels = np.zeros((frames, slots), np.int64)
    used = np.zeros((frames, slots), bool)
    for f in range(frames):
        members = np.concatenate([np.full(n if f == 0 else int(rng.integers(0, 700)), k)
                                  for k, n in wanted.items()] + [np.zeros(300, np.int64)])
        members = rng.permutation(members)
        labels[f, :len(members)] = members
        used[f, :len(members)] = True
    labels[0, -1] = 1  # a label on an unused slot: not a point
    output = rng.standard_normal((frames, slots, 3))
    xyz, lengths = box_fit.label_subsample(torch.from_numpy(labels), torch.from_numpy(used),
                                           torch.from_numpy(output), count)
    assert xyz.shape == (frames, count, box_fit.POINTS, 3) and lengths.shape == (frames, count)
    for f in range(frames):
        for k in range(1, count + 1):
            index = registration.subsample(np.flatnonzero((labels[f] == k) & used[f]),
                                           box_fit.POINTS)
            n = len(index)
            assert lengths[f, k - 1] == n, (f, k)
            np.testing.assert_array_equal(xyz[f, k - 1, :n].numpy(), output[f, index])
            assert torch.isnan(xyz[f, k - 1, n:]).all()
    assert lengths[0].tolist() == [256, 0, 256, 1, 37, 256]


def test_the_fit_has_fixed_shapes_and_reads_no_value_on_the_host():
    # On the meta device a tensor has no values: an .item(), a nonzero, a boolean index or a
    # Python branch on a value fails there. So the fit and the subsample record into a CUDA
    # graph (the instances stage's) as they run here.
    meta = torch.device('meta')
    fit = box_fit.fit_padded(torch.empty(12, box_fit.POINTS, 3, dtype=torch.float64,
                                         device=meta),
                             torch.empty(12, dtype=torch.int64, device=meta),
                             torch.empty(12, 3, dtype=torch.float64, device=meta))
    assert [tuple(v.shape) for v in fit] == [(12,), (12, 2), (12, 2), (12, 2), (12,), (12,)]
    xyz, lengths = box_fit.label_subsample(
        torch.empty(4, 900, dtype=torch.int64, device=meta),
        torch.empty(4, 900, dtype=torch.bool, device=meta),
        torch.empty(4, 900, 3, dtype=torch.float64, device=meta), 3)
    assert xyz.shape == (4, 3, box_fit.POINTS, 3) and lengths.shape == (4, 3)
    # The instances stage's part (the graph's way: every label, no compaction).
    assert 'meta' not in instances.COMPACT_FIT_DEVICE_TYPES
    table = instances.append_footprints(
        instances.InstanceStats(torch.empty(4, 5, 17, dtype=torch.float64, device=meta),
                                torch.empty(4, 5, dtype=torch.int64, device=meta),
                                torch.empty(4, 900, dtype=torch.int64, device=meta)),
        torch.empty(4, 900, dtype=torch.bool, device=meta),
        torch.empty(4, 900, 3, dtype=torch.float64, device=meta), 3)
    assert table.shape == (4, 5, 17 + box_fit.COLUMNS)


def test_packed_rows_carry_the_fits():
    # pack -> unpack: each measured instance gets its row's fit; labels beyond the fitted
    # ones are not ok (as Footprints.scattered).
    rng = np.random.default_rng(8)
    frames, labels, fitted = 2, 5, 3
    table = torch.from_numpy(rng.standard_normal((frames, labels, 17)))
    table[:, :, 0] = torch.tensor([[1.0, 0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0, 0.0]])
    columns = box_fit.fit_columns(tuple(torch.from_numpy(v) for v in (
        rng.standard_normal(frames * fitted), rng.standard_normal((frames * fitted, 2)),
        np.sign(rng.standard_normal((frames * fitted, 2))),
        rng.standard_normal((frames * fitted, 2)), rng.random(frames * fitted),
        rng.random(frames * fitted) < 0.5)))
    rest = torch.zeros(frames, labels - fitted, box_fit.COLUMNS, dtype=torch.float64)
    rest[:, :, 3:5] = 1.0
    fits = torch.cat([columns.view(frames, fitted, -1), rest], dim=1)
    stats = instances.InstanceStats(torch.cat([table, fits], dim=2),
                                    torch.arange(frames * labels).view(frames, labels),
                                    torch.zeros(frames, 4, dtype=torch.int64))
    assert stats.fitted
    dropped = torch.tensor([[1, 2], [3, 4]])
    found = instances.to_host(stats, instances.Labels(None, stats.pixels, dropped, True),
                              np.array([4, 4]))
    plain = instances.to_host(instances.InstanceStats(table, stats.pixels, stats.point_labels),
                              instances.Labels(None, stats.pixels, dropped, True),
                              np.array([4, 4]))
    for f, frame in enumerate(found):
        assert frame.footprints is not None and plain[f].footprints is None
        rows = [inst.label - 1 for inst in frame.instances]
        assert rows == [inst.label - 1 for inst in plain[f].instances]
        assert rows == np.flatnonzero(table[f, :, 0].numpy() > 0.5).tolist()
        want = box_fit.Footprints.from_columns(fits[f, rows].numpy())
        for name in box_fit.Footprints.__dataclass_fields__:
            assert np.array_equal(getattr(frame.footprints, name), getattr(want, name)), name
        for got, same in zip(frame.instances, plain[f].instances):
            assert got.centre.tolist() == same.centre.tolist() and got.top == same.top
        assert (frame.small_parts, frame.excess_parts) == tuple(dropped[f].tolist())
    assert found[0].footprints.ok[2:].tolist() == [False, False]  # labels 4 and 5: not fitted
    assert found[0].footprints.away[2:].tolist() == [[1.0, 1.0]] * 2


def test_the_padding_nan_sign_does_not_matter():
    # Arithmetic may flip a NaN's sign (a negation does), and topk has ordered NaN by sign on
    # CUDA: the fit takes the padding as +-inf, so -NaN padding gives the same fit, to the
    # bit; a set without points has NaN edges (numpy's sort: rank 0 is the padding).
    rng = np.random.default_rng(9)
    clouds = [_box_points(np.array([0.5, 0.4, 0.3]), 0.3, rng)[:150],
              _sphere_points(np.array([-0.8, 1.0, 0.35]), 0.35, rng)[:40], np.zeros((0, 3))]
    xyz = np.full((3, box_fit.POINTS, 3), np.nan)
    for i, cloud in enumerate(clouds):
        xyz[i, :len(cloud)] = cloud
    lengths = torch.tensor([len(c) for c in clouds])
    rays = torch.from_numpy(np.concatenate([_rays(clouds[:2]), [[1.0, 0.0, 0.0]]]))
    flipped = np.where(np.isnan(xyz), np.copysign(np.nan, -1.0), xyz)
    assert np.signbit(flipped[0, -1]).all() and not np.signbit(xyz[0, -1]).any()
    positive = box_fit.fit_padded(torch.from_numpy(xyz), lengths, rays)
    negative = box_fit.fit_padded(torch.from_numpy(flipped), lengths, rays)
    for a, b in zip(positive, negative):
        assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
    heading, near, away, extent, closeness, ok = positive
    assert ok.tolist() == [True, True, False]
    assert torch.isnan(near[2]).all() and torch.isnan(extent[2]).all()


def test_a_fit_without_an_extent_leaves_the_remembered_sides():
    # A fit that is not ok may carry NaN extents (a label without points, fitted on the
    # device): nothing is learned from it, so the track's sides stay and the next fits centre it.
    rng = np.random.default_rng(11)
    tracker = Tracker(TrackerConfig(centre_model='box_fit'))
    centre = np.array([0.5, 0.4, 0.3])

    def frame(k: int, fits: box_fit.Footprints | None = None) -> None:
        points = _box_points(centre, 0.1, rng)
        tracker.update(int(round(k * 1e9 / 15.0)), [_instance(points)], [points], fits)

    for k in range(6):
        frame(k)
    empty = box_fit.Footprints(heading=np.full(1, np.nan), near=np.full((1, 2), np.nan),
                               away=np.ones((1, 2)), extent=np.full((1, 2), np.nan),
                               closeness=np.full(1, np.nan), ok=np.zeros(1, bool))
    frame(6, empty)
    before = (tracker.stats.box_fits, tracker.stats.box_fallbacks)
    for k in range(7, 12):
        frame(k)
    assert (tracker.stats.box_fits - before[0], tracker.stats.box_fallbacks - before[1]) == (5, 0)
    (track,) = tracker.tracks()
    assert np.linalg.norm(track.position[:2] - centre[:2]) < 0.035
