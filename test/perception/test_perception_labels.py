# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Instance labelling: the CPU's path (crop) and the GPU's (whole frames) agree exactly.

``label_image`` crops to the dynamic pixels' box where the CPU runs it and labels whole frames
elsewhere (no host sync for the box), with other gather and minimum kernels; both paths and
both crop choices are run here on the CPU and must give the same label images, pixel counts,
dropped-part counts and convergence flag, equal to the numpy reference (scipy). The label
propagation is checked step by step against the previous implementation's update (hook,
then two pointer jumps; written out below), so a labelling cut off by the iteration bound is
also unchanged, and its host syncs are counted. The graph-ready labelling (``label_bucket``:
rows of a bucket count, a fixed number of steps, the convergence flag on the device,
``resume_bucket`` for the rest) gives ``label_image``'s labels, on the CPU here and replayed
from a CUDA graph on CUDA (bit for bit).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import numpy_reference as ref
from vggt4d_ros.motion.graphs import GraphedFunction
from vggt4d_ros.perception.config import InstanceConfig
from vggt4d_ros.perception import instances
from vggt4d_ros.perception.instances import _FIXED_STEPS
from vggt4d_ros.perception.instances import bucket_constants
from vggt4d_ros.perception.instances import connected_components
from vggt4d_ros.perception.instances import find_bucket
from vggt4d_ros.perception.instances import label_bucket
from vggt4d_ros.perception.instances import label_image
from vggt4d_ros.perception.instances import Labels
from vggt4d_ros.perception.instances import resume_bucket
from vggt4d_ros.tools.op_count import OpCounter


def _frames(seed: int, frames: int = 3, height: int = 37, width: int = 53
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random blobs, lines and specks on a sloped background, overlapping at depth jumps."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    mask = np.zeros((frames, height, width), bool)
    depth = (3.0 + 0.02 * rows + rng.normal(0, 0.01, (frames, height, width))).astype(
        np.float32)
    for f in range(frames):
        for _ in range(rng.integers(0, 7)):
            row, col = rng.uniform(0, height), rng.uniform(0, width)
            half_h, half_w = rng.uniform(1, 9, 2)
            inside = ((rows - row) / half_h) ** 2 + ((cols - col) / half_w) ** 2 <= 1.0
            depth[f][inside] = rng.uniform(1.0, 4.0)
            mask[f] |= inside
        if rng.random() < 0.5:  # a thin line: a long path for the propagation
            mask[f, rng.integers(height), rng.integers(width // 2):] = True
        mask[f] |= rng.random((height, width)) < 0.02
    if frames > 1:
        mask[rng.integers(frames)] = False  # an empty frame in the batch
    return torch.from_numpy(mask), torch.from_numpy(depth)


def _fields(labels) -> tuple:
    return (labels.labels.cpu().numpy(), labels.pixels.cpu().numpy(),
            labels.small.cpu().numpy(), labels.excess.cpu().numpy(), labels.converged)


CONFIGS = [InstanceConfig(), InstanceConfig(min_pixels=1, max_instances=3),
           InstanceConfig(min_pixels=5, max_instances=64, depth_break=0.05)]


@pytest.fixture(params=['cpu', 'gpu'])
def path(request, monkeypatch):
    """The CPU's labelling path, or the GPU's (whole frames, take + amin) run on the CPU."""
    if request.param == 'gpu':
        monkeypatch.setattr(instances, 'CPU_PATH_DEVICE_TYPES', ())
    return request.param


@pytest.mark.parametrize('config', CONFIGS)
@pytest.mark.parametrize('seed', range(6))
def test_crop_and_whole_frame_paths_give_the_reference_labels(seed, config, path):
    mask, depth = _frames(seed)
    default = label_image(mask, depth, config)  # the path's own choice
    cropped = label_image(mask, depth, config, crop=True)
    whole = label_image(mask, depth, config, crop=False)
    assert default.converged and cropped.converged and whole.converged
    for a, b, c in zip(_fields(default), _fields(cropped), _fields(whole)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert cropped.labels.dtype == whole.labels.dtype == torch.int64
    for f in range(len(mask)):
        labels, counts, small, excess = ref.label_image(mask[f].numpy(), depth[f].numpy(),
                                                        config)
        np.testing.assert_array_equal(whole.labels[f].numpy(), labels)
        used = whole.pixels[f].numpy()
        np.testing.assert_array_equal(used[used > 0], counts)
        assert (int(whole.small[f]), int(whole.excess[f])) == (small, excess)


@pytest.mark.parametrize('crop', [True, False])
def test_no_dynamic_pixel_and_a_box_smaller_than_the_label_count(crop, path):
    config = InstanceConfig(min_pixels=1, max_instances=40)
    mask = torch.zeros((2, 6, 7), dtype=torch.bool)
    depth = torch.full((2, 6, 7), 2.0)
    labels = label_image(mask, depth, config, crop=crop)
    assert labels.converged and not labels.labels.any()
    assert labels.pixels.shape == (2, 40) and not labels.pixels.any()
    mask[1, 2, 3:5] = True  # a 1 x 2 box: fewer pixels than labels
    mask[0, 4, 6] = True
    labels = label_image(mask, depth, config, crop=crop)
    assert labels.pixels.shape == (2, 40)
    assert labels.pixels[:, 0].tolist() == [1, 2] and not labels.pixels[:, 1:].any()
    assert labels.labels[1, 2, 3] == labels.labels[1, 2, 4] == 1 and labels.labels[0, 4, 6] == 1
    assert int(labels.labels.count_nonzero()) == 3


def _previous_step(parent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The previous implementation's update, written out (parent: [F h w + 1], sink last)."""
    frames, height, width = mask.shape
    size = frames * height * width
    padded = torch.full((frames, height + 2, width + 2), size, dtype=torch.int64)
    padded[:, 1:-1, 1:-1] = parent[:size].view(mask.shape)
    low = torch.minimum(torch.minimum(padded[:, :-2, 1:-1], padded[:, 2:, 1:-1]),
                        torch.minimum(padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]))
    low = torch.where(mask.flatten(), torch.minimum(low.flatten(), parent[:size]), size)
    parent = parent.clone()
    parent.scatter_reduce_(0, parent[:size].clone(), low, 'amin')
    parent[:size] = torch.minimum(parent[:size], low)
    parent = parent[parent]
    return parent[parent]


def _spiral() -> torch.Tensor:
    mask = np.zeros((40, 40), bool)
    mask[1, 1:39] = mask[1:39, 38] = mask[38, 1:39] = mask[4:39, 1] = True
    mask[4, 1:35] = mask[4:35, 34] = mask[34, 5:35] = True
    mask[15:25, 15:25] = True
    return torch.from_numpy(mask)[None]


@pytest.mark.parametrize('steps', [1, 2, 3, 4, 5, 6, 8])
def test_propagation_cut_off_by_the_bound_equals_the_previous_update(steps, path):
    """Within the fixed steps the one check is at the bound: the old roots, the old test."""
    mask = torch.cat([_spiral(), _frames(3, 1, 40, 40)[0]])
    size = mask.numel()
    parent = torch.cat([torch.where(mask.flatten(), torch.arange(size), size),
                        torch.tensor([size])])
    for _ in range(steps):
        previous, parent = parent, _previous_step(parent, mask)
    root, converged = connected_components(mask, steps)
    np.testing.assert_array_equal(root.flatten().numpy(), parent[:size].numpy())
    assert converged == torch.equal(parent, previous)
    assert converged == (steps >= 5)  # the spiral needs 4 steps and a check


def test_one_host_sync_when_converged_within_the_fixed_steps(path):
    mask, _ = _frames(1)
    with OpCounter() as counter:
        _, converged = connected_components(mask, 64)
        counter.lap('blobs')
    assert converged
    assert counter.stages['blobs'].syncs == 1
    assert all(site.startswith('equal') for site in counter.stages['blobs'].sync_sites)
    assert counter.stages['blobs'].by_op['scatter_reduce'] == _FIXED_STEPS
    # The GPU's step: one gather and one reduction (the CPU's: a chain of minimum).
    assert counter.stages['blobs'].by_op['amin'] == (_FIXED_STEPS if path == 'gpu' else 0)


@pytest.mark.parametrize('bound, checks, steps, converged', [
    (2, 1, 2, False), (3, 2, 3, False), (5, 2, 5, True), (64, 2, 6, True)])
def test_checks_after_the_fixed_steps_come_every_few_and_at_the_bound(
        monkeypatch, path, bound, checks, steps, converged):
    """The spiral needs 4 steps and a check; 2 fixed steps: checks at 2, 6, ... and the bound."""
    monkeypatch.setattr(instances, '_FIXED_STEPS', 2)
    with OpCounter() as counter:
        _, done = connected_components(_spiral(), bound)
        counter.lap('spiral')
    assert done == converged
    assert counter.stages['spiral'].syncs == checks
    assert counter.stages['spiral'].by_op['scatter_reduce'] == steps


# -- the graph-ready labelling: rows of a bucket count, fixed steps, resumed when needed ----

def _bucketed(mask: torch.Tensor, depth: torch.Tensor, config: InstanceConfig,
              label=None) -> tuple[Labels, bool]:
    """The tracker's graphed labelling: ``label`` on the bucket, resumed if not converged.

    ``label(mask, depth, consts=...)``: ``label_bucket`` with ``config`` (default) or a graph
    of it. Returns the labels and whether the fixed steps converged (the device's flag).
    """
    label = label or functools.partial(label_bucket, config=config)
    bucket = find_bucket(mask)
    labels, pixels, dropped, converged, state = label(
        mask, depth, consts=bucket_constants(len(mask), bucket, mask.device))
    if bool(converged):
        return Labels(labels, pixels, dropped, True), True
    resumed = resume_bucket(mask, depth, config, bucket, state)
    return (Labels(labels, pixels, dropped, False) if resumed is None else resumed), False


def _placed(seed: int, frames: int = 3, height: int = 100, width: int = 70
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``_frames``'s content in a random box of larger frames, often flush with an edge."""
    rng = np.random.default_rng(1000 + seed)
    rows, cols = rng.integers(3, height + 1), rng.integers(3, width + 1)
    top = rng.choice([0, height - rows, rng.integers(0, height - rows + 1)])
    left = rng.choice([0, width - cols, rng.integers(0, width - cols + 1)])
    inner, inner_depth = _frames(seed, frames, int(rows), int(cols))
    mask = torch.zeros((frames, height, width), dtype=torch.bool)
    depth = torch.from_numpy(rng.uniform(1.0, 4.0, (frames, height, width)).astype(np.float32))
    mask[:, top: top + rows, left: left + cols] = inner
    depth[:, top: top + rows, left: left + cols] = inner_depth
    return mask, depth


def _edge_cases() -> list[torch.Tensor]:
    """Masks [2,50,20]: none, one pixel at each end, 32 and 33 rows, every row."""
    cases = []
    for rows in [(), (0,), (49,), (3, 34), (17, 50), (0, 50), (5, 37), (40, 41, 42)]:
        mask = torch.zeros((2, 50, 20), dtype=torch.bool)
        for row in rows:
            mask[1, min(row, 49), (3 * row) % 20] = True
        if len(rows) >= 2:
            mask[0, rows[0]: rows[-1], 4:9] = True  # a column of every row between
        cases.append(mask)
    return cases


@pytest.mark.parametrize('config', CONFIGS + [InstanceConfig(max_label_iterations=3)])
@pytest.mark.parametrize('seed', range(10))
def test_bucketed_labelling_equals_label_image(seed, config, path):
    mask, depth = _placed(seed)
    expected = label_image(mask, depth, config)
    got, _ = _bucketed(mask, depth, config)
    for a, b in zip(_fields(expected), _fields(got)):
        np.testing.assert_array_equal(a, b)
    bucket = find_bucket(mask)
    rows = torch.nonzero(mask.any(dim=2).any(dim=0)).flatten().tolist() or [0]
    assert 0 <= bucket.top <= rows[0] and rows[-1] < bucket.top + bucket.height <= 100
    assert bucket.height in (32, 64, 96, 100) and bucket.width == 70


@pytest.mark.parametrize('case', range(len(_edge_cases())))
def test_bucketed_labelling_at_the_frame_edges_and_without_a_pixel(case, path):
    mask = _edge_cases()[case]
    depth = torch.full(mask.shape, 2.0)
    config = InstanceConfig(min_pixels=1)
    expected = label_image(mask, depth, config)
    got, converged = _bucketed(mask, depth, config)
    assert converged
    for a, b in zip(_fields(expected), _fields(got)):
        np.testing.assert_array_equal(a, b)
    if not mask.any():
        assert find_bucket(mask) == instances.Bucket(0, 32, 20) and not got.pixels.any()


@pytest.mark.parametrize('bound', [1, 2, 3, 5, 6, 7, 64])
def test_slow_labelling_resumes_after_the_fixed_steps_as_label_image_runs_it(
        monkeypatch, path, bound):
    """2 fixed steps: the spiral (4 steps and a check) goes on eagerly, or is cut off."""
    monkeypatch.setattr(instances, '_FIXED_STEPS', 2)
    mask = torch.zeros((2, 90, 50), dtype=torch.bool)
    mask[0, 45:85, 5:45] = _spiral()[0]
    mask[1, 50:90, 10:50] = _spiral()[0].flip(0)
    depth = torch.full(mask.shape, 2.0)
    config = InstanceConfig(min_pixels=1, max_label_iterations=bound)
    expected = label_image(mask, depth, config)
    got, converged = _bucketed(mask, depth, config)
    assert not converged  # the graph's steps did not do it
    assert got.converged == expected.converged == (bound >= 5)
    for a, b in zip(_fields(expected), _fields(got)):
        np.testing.assert_array_equal(a, b)


def test_graph_ready_labelling_does_not_sync_and_finding_the_bucket_once(path):
    mask, depth = _placed(3)
    with OpCounter() as counter:
        bucket = find_bucket(mask)
        counter.lap('bucket')
        consts = bucket_constants(len(mask), bucket, mask.device)
        counter.lap('constants')
        label_bucket(mask, depth, InstanceConfig(), consts)
        counter.lap('labels')
    assert counter.stages['bucket'].syncs == 1
    assert counter.stages['labels'].syncs == 0
    assert counter.stages['labels'].by_op['scatter_reduce'] == _FIXED_STEPS


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('fixed', [_FIXED_STEPS, 2])
def test_graphed_labelling_equals_the_eager_one_bit_for_bit_on_cuda(monkeypatch, fixed):
    """Replayed from CUDA graphs (one per bucket), resumed where needed: label_image's labels."""
    monkeypatch.setattr(instances, '_FIXED_STEPS', fixed)
    masks = [_placed(seed, 4, 392, 518) for seed in range(8)]
    spiral = torch.zeros((4, 392, 518), dtype=torch.bool)
    spiral[2, 300:340, 100:140] = _spiral()[0]
    masks += [(spiral, torch.full(spiral.shape, 2.0)), (torch.zeros_like(spiral), masks[0][1])]
    for config in CONFIGS:
        graphed = GraphedFunction(functools.partial(label_bucket, config=config),
                                  max_graphs=8, clone_outputs=False)
        for mask, depth in masks * 2:  # recorded, then replayed
            mask, depth = mask.cuda(), depth.cuda()
            expected = label_image(mask, depth, config)
            got, _ = _bucketed(mask, depth, config, graphed)
            for a, b in zip(_fields(expected), _fields(got)):
                np.testing.assert_array_equal(a, b)
        assert not graphed.failed and graphed.captures >= 2
