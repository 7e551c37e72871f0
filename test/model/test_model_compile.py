# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The aggregator compiles as one graph for both VGGT4D passes (no host read, no break)."""

from __future__ import annotations

import torch

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.hooks import CaptureRequest, KeyValueMask
from vggt4d_ros.model.vggt import VGGT


def test_both_passes_trace_as_one_graph_and_match_eager():
    torch.manual_seed(0)
    aggregator = VGGT(VGGTConfig.tiny()).eval().aggregator
    images = torch.rand(1, 3, 3, 56, 70, generator=torch.Generator().manual_seed(1))
    # fullgraph=True raises on any graph break; the 'eager' backend keeps the test fast.
    compiled = torch.compile(aggregator, backend='eager', fullgraph=True, dynamic=False)
    request = CaptureRequest(q_global_blocks=(0, 1), k_global_blocks=(0,))
    dynamic = torch.zeros(1, 3, 20, dtype=torch.bool)
    dynamic[0, 1, 3:9] = True
    with torch.no_grad():
        eager_one = aggregator(images, capture=request)
        traced_one = compiled(images, capture=request)
        features = eager_one[2].patch_features
        torch.testing.assert_close(traced_one[0][-1], eager_one[0][-1])
        torch.testing.assert_close(traced_one[2].q[1], eager_one[2].q[1])
        for mask in (dynamic, torch.zeros_like(dynamic)):
            kv_mask = KeyValueMask(dynamic=mask, frame_blocks=(0,), global_blocks=(0, 1))
            # Pass 2 as the pipeline runs it: camera head only.
            eager_two = aggregator(images, kv_mask=kv_mask, patch_tokens=features,
                                   camera_only=True)
            traced_two = compiled(images, kv_mask=kv_mask, patch_tokens=features,
                                  camera_only=True)
            assert traced_two[0][-1].shape == (1, 3, 1, 128)
            torch.testing.assert_close(traced_two[0][-1], eager_two[0][-1],
                                       atol=1e-6, rtol=1e-5)
