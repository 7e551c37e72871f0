# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Rig layout of a window: T time steps x N synchronised views, and its frame order.

VGGT takes one flat sequence of S = T*N frames. The order is **step-major**: frame
f = step * N + view, so

* one time step's views are adjacent and a window slides by whole steps;
* frame 0 (VGGT's world frame and its special first-frame camera token) is view 0, the
  reference camera, at the oldest step;
* stamps stay non-decreasing along the sequence, and N = 1 is exactly today's window.

Temporal statistics compare a frame only with the SAME view at other steps (another view at
the same step differs by parallax, not by motion): see :func:`motion.cues.rig_window_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RigLayout:
    """How the S = num_steps * num_views frames of a window are arranged (step-major).

    Attributes:
        num_views: N synchronised cameras (1 = a single camera).
        num_steps: T time steps.

    """

    num_views: int
    num_steps: int

    def __post_init__(self) -> None:
        if self.num_views < 1 or self.num_steps < 1:
            raise ValueError(f'a rig layout needs >= 1 view and >= 1 step, got '
                             f'{self.num_views} views x {self.num_steps} steps')

    @classmethod
    def single(cls, num_frames: int) -> 'RigLayout':
        """One camera, ``num_frames`` steps: today's window."""
        return cls(num_views=1, num_steps=num_frames)

    @classmethod
    def for_frames(cls, num_frames: int, num_views: int) -> 'RigLayout':
        """Lay out ``num_frames`` frames of ``num_views`` cameras (the views must divide it)."""
        if num_views < 1 or num_frames % num_views:
            raise ValueError(f'{num_frames} frames are not whole steps of {num_views} views')
        return cls(num_views=num_views, num_steps=num_frames // num_views)

    @property
    def num_frames(self) -> int:
        """S = T * N."""
        return self.num_views * self.num_steps

    def frame(self, step: int, view: int) -> int:
        """Index in the VGGT input of ``view`` at ``step``."""
        if not (0 <= step < self.num_steps and 0 <= view < self.num_views):
            raise IndexError(f'(step {step}, view {view}) is outside {self}')
        return step * self.num_views + view

    @property
    def view_of_frame(self) -> list[int]:
        """View index of every frame, S ints."""
        return [f % self.num_views for f in range(self.num_frames)]

    @property
    def step_of_frame(self) -> list[int]:
        """Step index of every frame, S ints."""
        return [f // self.num_views for f in range(self.num_frames)]

    def frames_of_view(self, view: int) -> list[int]:
        """Frame indices of one camera, in time order (T ints)."""
        return [self.frame(step, view) for step in range(self.num_steps)]

    def frames_of_step(self, step: int) -> list[int]:
        """Frame indices of one time step, in view order (N ints)."""
        return [self.frame(step, view) for view in range(self.num_views)]

    def view_index(self, device: torch.device | str = 'cpu') -> torch.Tensor:
        """[S] int64 view index of every frame (for vectorised per-view statistics)."""
        return torch.arange(self.num_frames, device=device) % self.num_views

    def temporal_pairs(self, device: torch.device | str = 'cpu') -> torch.Tensor:
        """[S,S] bool: frame j is evidence about motion in frame i (j at another step).

        Two frames of one step show the same instant, so their agreement says nothing about
        motion: the refinement's reprojection test counts only pairs at different steps (any
        camera). For one camera this is ``j != i``.
        """
        step = torch.arange(self.num_frames, device=device) // self.num_views
        return step.unsqueeze(1) != step.unsqueeze(0)

    def check(self, num_frames: int) -> None:
        """Raise a clear error if the layout does not describe ``num_frames`` frames."""
        if num_frames != self.num_frames:
            raise ValueError(f'{num_frames} frames do not match the rig layout '
                             f'{self.num_views} views x {self.num_steps} steps')
