# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Window backends for node plumbing tests (loaded in the node process via backend_factory).

The scene is a fronto-parallel plane 2 units in front of a camera that slides along +x at
0.5 units/s (position from the stamp, so overlapping windows agree). The upper-left quarter of
every frame is reported as dynamic. Everything is analytic: no network runs.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import plan_resize
from vggt4d_ros.geometry.image_transform import to_network
from vggt4d_ros.motion.result import WindowResult

SPEED = 0.5
PLANE_DEPTH = 2.0


class PlaneBackend:
    """``run(frames, stamps_ns) -> WindowResult`` for the sliding-plane scene.

    Args:
        delay_s: sleep per window (simulates a slow GPU for overload tests).
        target: network width (small keeps the test fast).
        busy_s: pure-Python work per window, holding the GIL like a worker thread that
            launches thousands of short GPU kernels (latency benchmarks of the node).

    """

    def __init__(self, delay_s: float = 0.0, target: int = 126, busy_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.busy_s = busy_s
        self.target = target
        self.windows = 0

    def run(self, frames, stamps_ns) -> WindowResult:
        time.sleep(self.delay_s)
        _hold_the_gil(self.busy_s)
        self.windows += 1
        count = len(frames)
        plan = plan_resize(tuple(frames[0].shape[:2]), mode='crop', target=self.target)
        height, width = plan.network_hw
        images = to_network(list(frames), plan)
        seconds = np.asarray(stamps_ns, dtype=np.float64) * 1e-9
        extrinsics = torch.zeros(count, 3, 4)
        extrinsics[:, :, :3] = torch.eye(3)
        # camera-from-world with world = camera 0: x_cam = x_world - (c_i - c_0).
        extrinsics[:, 0, 3] = torch.from_numpy(-(seconds - seconds[0]) * SPEED).float()
        intrinsics = torch.tensor([[float(width), 0.0, width / 2.0],
                                   [0.0, float(width), height / 2.0],
                                   [0.0, 0.0, 1.0]]).repeat(count, 1, 1)
        masks = torch.zeros(count, height, width, dtype=torch.bool)
        masks[:, :height // 2, :width // 2] = True
        patches = (height // 14, width // 14)
        return WindowResult(
            stamps_ns=[int(s) for s in stamps_ns],
            images=images,
            depth=torch.full((count, height, width), PLANE_DEPTH),
            depth_conf=torch.full((count, height, width), 5.0),
            intrinsics=intrinsics,
            extrinsics=extrinsics,
            saliency=torch.zeros(count, *patches),
            coarse_masks=masks.clone(),
            refined_masks=masks,
            transform=plan,
            timings={'total': self.delay_s},
        )


#: Rig plane: camera v sits RIG_BASELINE * v to the right (optical +x) of camera 0.
RIG_BASELINE = 0.2


class RigPlaneBackend(PlaneBackend):
    """PlaneBackend for rig windows: ``run(frames, stamps_ns, layout)`` (step-major frames).

    Camera 0 reports its upper-left quarter as dynamic, camera 1 its lower-right quarter, so a
    mask on the wrong camera's topic is visible.
    """

    def run(self, frames, stamps_ns, layout=None) -> WindowResult:
        result = super().run(frames, stamps_ns)
        if layout is None:
            return result
        views = torch.tensor(layout.view_of_frame)
        result.layout = layout
        result.extrinsics[:, 0, 3] -= views.float() * RIG_BASELINE
        height, width = result.refined_masks.shape[1:]
        masks = torch.zeros_like(result.refined_masks)
        for index, view in enumerate(layout.view_of_frame):
            if view == 0:
                masks[index, :height // 2, :width // 2] = True
            else:
                masks[index, height // 2:, width // 2:] = True
        result.refined_masks = masks
        result.coarse_masks = masks.clone()
        return result


def make_rig_plane(params, device, dtype) -> PlaneBackend:
    """backend_factory for a fast analytic rig backend (masks differ per camera)."""
    return RigPlaneBackend()


def make_plane(params, device, dtype) -> PlaneBackend:
    """backend_factory for a fast analytic backend."""
    return PlaneBackend()


def make_slow_plane(params, device, dtype) -> PlaneBackend:
    """backend_factory for a backend that needs 0.4 s per window (forces live-mode drops)."""
    return PlaneBackend(delay_s=0.4)


class GatedPlane(PlaneBackend):
    """PlaneBackend whose windows wait until the file ``VGGT4D_FAKE_GATE`` names exists.

    While a window waits, the file ``<gate>.held`` exists. A test holds the node's first window
    in the backend until it has queued every frame it wants behind it, so what the node then
    does with that backlog does not depend on how fast a loaded machine delivers the frames.
    """

    def __init__(self, gate: str, delay_s: float) -> None:
        super().__init__(delay_s=delay_s)
        self.gate = gate

    def run(self, frames, stamps_ns) -> WindowResult:
        if not os.path.exists(self.gate):
            with open(self.gate + '.held', 'w'):
                pass
        deadline = time.monotonic() + 600.0  # never hang a test run for good
        while not os.path.exists(self.gate) and time.monotonic() < deadline:
            time.sleep(0.05)
        return super().run(frames, stamps_ns)


def make_gated_slow_plane(params, device, dtype) -> PlaneBackend:
    """backend_factory: 0.4 s per window, each first waiting for the VGGT4D_FAKE_GATE file."""
    return GatedPlane(os.environ['VGGT4D_FAKE_GATE'], delay_s=0.4)


class ThreadReportingPlane(PlaneBackend):
    """PlaneBackend that prints the name of the thread each window runs on."""

    def run(self, frames, stamps_ns) -> WindowResult:
        print(f'window on thread {threading.current_thread().name}', file=sys.stderr, flush=True)
        return super().run(frames, stamps_ns)


def make_thread_reporting_plane(params, device, dtype) -> PlaneBackend:
    """backend_factory for a fast backend that reports its thread (warm-up placement tests)."""
    return ThreadReportingPlane()


class FailingPlane(PlaneBackend):
    """PlaneBackend whose every window fails the way a GPU out of memory does."""

    def run(self, frames, stamps_ns) -> WindowResult:
        raise torch.cuda.OutOfMemoryError('CUDA out of memory (test backend)')


def make_failing_plane(params, device, dtype) -> PlaneBackend:
    """backend_factory for a backend that fails every window (warm-up failure tests)."""
    return FailingPlane()


def make_busy_plane(params, device, dtype) -> PlaneBackend:
    """backend_factory for a backend that computes in Python (GIL held) per window.

    0.1 s per window, or ``VGGT4D_FAKE_BUSY_S`` seconds when that environment variable is set
    (benchmarks: vggt4d_ros.tools.bench_node --backend fake_backends:make_busy_plane).
    """
    return PlaneBackend(busy_s=float(os.environ.get('VGGT4D_FAKE_BUSY_S', '0.1')))


def _hold_the_gil(seconds: float) -> int:
    """Run bytecode for ``seconds`` without releasing the GIL voluntarily; returns a checksum."""
    deadline = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < deadline:
        for value in range(200):
            total = (total + value * value) % 1_000_003
    return total
