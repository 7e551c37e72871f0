# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by the motion tests: the tiny VGGT with every block made to matter."""

from __future__ import annotations

import pytest
import torch

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.vggt import VGGT


@pytest.fixture(scope='module')
def model() -> VGGT:
    """Tiny VGGT (seed 0, eval) with random LayerScale and special tokens (scale 0.5)."""
    torch.manual_seed(0)
    net = VGGT(VGGTConfig.tiny()).eval()
    # Random LayerScale/special tokens large enough that every block matters.
    with torch.no_grad():
        for name, param in net.aggregator.named_parameters():
            if name.endswith('gamma') or name in ('camera_token', 'register_token'):
                param.copy_(torch.randn_like(param) * 0.5)
    return net
