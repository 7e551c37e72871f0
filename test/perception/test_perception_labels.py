# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Instance labelling: the CPU's path (crop) and the GPU's (whole frames) agree exactly.

``label_image`` crops to the dynamic pixels' box where the CPU runs it and labels whole frames
elsewhere (no host sync for the box), with other gather and minimum kernels; both paths and
both crop choices are run here on the CPU and must give the same label images, pixel counts,
dropped-part counts and convergence flag, equal to the numpy reference (scipy). The label
propagation is checked step by step against the previous implementation's update (hook,
then two pointer jumps; written out below), so a labelling cut off by the iteration bound is
also unchanged, and its host syncs are counted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_reference as ref
from vggt4d_ros.perception.config import InstanceConfig
from vggt4d_ros.perception import instances
from vggt4d_ros.perception.instances import _FIXED_STEPS
from vggt4d_ros.perception.instances import connected_components
from vggt4d_ros.perception.instances import label_image
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
    return (labels.labels.numpy(), labels.pixels.numpy(), labels.small.numpy(),
            labels.excess.numpy(), labels.converged)


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
