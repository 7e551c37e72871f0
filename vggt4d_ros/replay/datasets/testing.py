# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Stand-in backend built from a sequence's ground truth (tests, loader self-checks).

``SequenceOracle(sequence).run(frames, stamps_ns)`` answers each window the way VGGT would
express the ground truth: poses in the window's frame-0 camera with an arbitrary per-window
scale, depth in the same units, the ground-truth dynamic mask, at camera resolution (identity
network transform). Through the whole evaluation it must give ATE 0, J = F = 1 and zero
reconstruction error; ``mask_shift`` moves every mask by (dy, dx) pixels for known-answer J/F.

``oracle_factory`` is the ``--backend-factory`` form:
``vggt4d-eval davis ROOT --backend-factory vggt4d_ros.replay.datasets.testing:oracle_factory``
checks a dataset folder end to end without a GPU (its numbers are not VGGT4D's).
"""

from __future__ import annotations

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import ResizeCrop
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.replay.datasets.base import SequenceData


class SequenceOracle:
    """Ground-truth window backend for one sequence (see the module docstring).

    Args:
        sequence: the sequence (its frames' stamps index the ground truth).
        mask_shift: (dy, dx) applied to every ground-truth mask (np.roll, zero fill).
        scale_seed: seed of the per-window scales.

    """

    def __init__(self, sequence: SequenceData, mask_shift: tuple[int, int] = (0, 0),
                 scale_seed: int = 0) -> None:
        self.sequence = sequence
        self.index = {stamp: i for i, stamp in enumerate(sequence.stamps_ns)}
        self.mask_shift = mask_shift
        self.rng = np.random.default_rng(scale_seed)
        self.calls = 0

    def _pose(self, i: int) -> np.ndarray:
        if self.sequence.poses is None:  # no pose ground truth: a slow forward motion
            pose = np.eye(4)
            pose[2, 3] = 0.05 * i
            return pose
        return self.sequence.poses[i]

    def _mask(self, i: int, hw: tuple[int, int]) -> np.ndarray:
        if self.sequence.load_mask is None:
            return np.zeros(hw, bool)
        mask = np.asarray(self.sequence.load_mask[i](), bool)
        dy, dx = self.mask_shift
        shifted = np.zeros_like(mask)
        h, w = mask.shape
        shifted[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        return shifted

    def _depth(self, i: int, hw: tuple[int, int]) -> np.ndarray:
        if self.sequence.load_depth is not None:
            depth = np.asarray(self.sequence.load_depth[i](), np.float32)
            return np.where(depth > 0, depth, 1.0).astype(np.float32)
        v, u = np.mgrid[0:hw[0], 0:hw[1]].astype(np.float32)
        return 2.0 + 0.5 * np.sin(u / 7.0) * np.cos(v / 5.0)  # any consistent surface

    def _intrinsics(self, i: int, hw: tuple[int, int]) -> np.ndarray:
        if self.sequence.intrinsics is not None:
            return self.sequence.intrinsics[i]
        return np.array([[hw[1], 0.0, (hw[1] - 1) / 2], [0.0, hw[1], (hw[0] - 1) / 2],
                         [0.0, 0.0, 1.0]])

    def run(self, frames: list[np.ndarray], stamps_ns: list[int]) -> WindowResult:
        """Ground truth of the window's stamps (frames [S] HxWx3 uint8 give the size only)."""
        self.calls += 1
        hw = tuple(frames[0].shape[:2])
        ids = [self.index[int(s)] for s in stamps_ns]
        scale = float(np.exp(self.rng.uniform(np.log(0.3), np.log(3.0))))
        first_from_world = np.linalg.inv(self._pose(ids[0]))
        extrinsics = []
        for i in ids:
            first_from_camera = first_from_world @ self._pose(i)
            first_from_camera[:3, 3] *= scale
            extrinsics.append(np.linalg.inv(first_from_camera)[:3])
        count = len(ids)
        masks = torch.from_numpy(np.stack([self._mask(i, hw) for i in ids]))
        depth = np.stack([self._depth(i, hw) for i in ids]) * scale
        return WindowResult(
            stamps_ns=[int(s) for s in stamps_ns],
            images=torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0,
            depth=torch.from_numpy(depth.astype(np.float32)),
            depth_conf=torch.full((count, *hw), 5.0),
            intrinsics=torch.from_numpy(np.stack([self._intrinsics(i, hw)
                                                  for i in ids])).float(),
            extrinsics=torch.from_numpy(np.stack(extrinsics)).float(),
            saliency=torch.zeros(count, max(1, hw[0] // 14), max(1, hw[1] // 14)),
            coarse_masks=masks.clone(), refined_masks=masks,
            transform=ResizeCrop(hw, hw, hw, (0, 0), 'crop'))


def oracle_factory(sequence: SequenceData) -> SequenceOracle:
    """``--backend-factory`` entry point: the ground-truth stand-in for ``sequence``."""
    return SequenceOracle(sequence)
