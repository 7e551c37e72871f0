# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The engine on the real VGGT4D pipeline with the tiny random-weight model (CPU).

Random weights give meaningless geometry, so this checks plumbing only: the pipeline's
WindowResult (real devices, dtypes, a non-identity resize plan) flows through the mapper and
the engine without errors, every frame comes out exactly once with a camera-size mask, and
every pose and map point is finite. It claims nothing about quality.
"""

import numpy as np
import pytest
import torch

pipeline = pytest.importorskip('vggt4d_ros.motion.pipeline')

from vggt4d_ros.geometry.image_transform import plan_resize  # noqa: E402
from vggt4d_ros.geometry.image_transform import to_network  # noqa: E402
from vggt4d_ros.mapping.mapper import MapperConfig  # noqa: E402
from vggt4d_ros.model.config import VGGTConfig  # noqa: E402
from vggt4d_ros.model.vggt import VGGT  # noqa: E402
from vggt4d_ros.runtime.engine import PerceptionEngine  # noqa: E402
from vggt4d_ros.runtime.window import WindowConfig  # noqa: E402

CAMERA_HW = (45, 80)


class SmallPipelineBackend:
    """The real pipeline at a small network width (70 px) so the test stays fast on CPU."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.pipe = pipeline.VGGT4DPipeline(VGGT(VGGTConfig.tiny()).eval())
        self.plan = plan_resize(CAMERA_HW, mode='crop', target=70)

    def run(self, frames, stamps_ns):
        images = to_network(frames, self.plan)
        return self.pipe.run_tensor(images, list(stamps_ns), self.plan)


def test_engine_runs_the_real_pipeline_end_to_end():
    torch.set_num_threads(1)
    backend = SmallPipelineBackend()
    assert backend.plan.network_hw != CAMERA_HW  # a real resize, not the identity
    engine = PerceptionEngine(
        backend,
        WindowConfig(window_size=4, stride=2, mode='replay', min_parallax_px=0.0,
                     max_keyframe_interval_s=0.0),
        MapperConfig(pixel_stride=2, conf_percentile=0.0),
    )
    rng = np.random.default_rng(0)
    stamps = [i * 100_000_000 for i in range(9)]
    outputs = []
    for stamp in stamps:
        frame = rng.integers(0, 255, CAMERA_HW + (3,), dtype=np.uint8)
        outputs += engine.push(frame, stamp, 'cam')
    outputs += engine.flush()
    frames = [f for out in outputs for f in out.frames]
    assert [f.stamp_ns for f in frames] == stamps
    for frame in frames:
        assert frame.mask.shape == CAMERA_HW and frame.mask.dtype == np.uint8
        assert np.isfinite(frame.pose).all()
        np.testing.assert_allclose(frame.pose[:3, :3] @ frame.pose[:3, :3].T, np.eye(3),
                                   atol=1e-9)
    xyz, rgb = engine.mapper.map.points(min_hits=1)
    assert np.isfinite(xyz).all() and rgb.dtype == np.uint8
    assert engine.stats.windows == len(outputs)
