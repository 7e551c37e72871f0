# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The module tree produces exactly the released checkpoint's keys and shapes."""

from pathlib import Path
import re
from typing import Dict, Tuple

import pytest
import torch

from vggt4d_ros.model.aggregator import Aggregator
from vggt4d_ros.model.config import VGGTConfig

# A copy of shared/reference/vggt_state_dict_keys.txt (the official checkpoint's names, shapes
# and dtypes), kept with the tests so they need nothing outside the repository.
KEYS_FILE = Path(__file__).resolve().parents[1] / 'data' / 'vggt_state_dict_keys.txt'


def _reference_shapes() -> Dict[str, Tuple[int, ...]]:
    shapes = {}
    for line in KEYS_FILE.read_text().splitlines():
        name, shape, _ = line.split('\t')
        shapes[name] = tuple(int(v) for v in shape.strip('()').split(',') if v.strip())
    return shapes


def _shapes(module: torch.nn.Module, prefix: str = '') -> Dict[str, Tuple[int, ...]]:
    return {prefix + k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_reference_file_is_complete() -> None:
    reference = _reference_shapes()
    assert len(reference) == 1797
    assert sum(int(torch.Size(s).numel()) for s in reference.values()) == 1_256_537_516


def test_full_aggregator_matches_checkpoint() -> None:
    reference = {k: v for k, v in _reference_shapes().items() if k.startswith('aggregator.')}
    with torch.device('meta'):
        aggregator = Aggregator(VGGTConfig.full())
    assert _shapes(aggregator, 'aggregator.') == reference


def test_full_model_matches_checkpoint() -> None:
    from vggt4d_ros.model.vggt import VGGT

    with torch.device('meta'):
        model = VGGT(VGGTConfig.full())
    assert [name for name, _ in model.named_children()] == [
        'aggregator', 'camera_head', 'point_head', 'depth_head', 'track_head']
    ours = _shapes(model)
    reference = _reference_shapes()
    assert sorted(set(reference) - set(ours)) == []
    assert sorted(set(ours) - set(reference)) == []
    assert ours == reference
    assert sum(p.numel() for p in model.parameters()) == 1_256_537_516


def _structure(names) -> set:
    return {re.sub(r'\.\d+(?=\.)', '.N', name) for name in names}


def test_tiny_model_has_full_key_structure() -> None:
    from vggt4d_ros.model.vggt import VGGT

    with torch.device('meta'):
        full = VGGT(VGGTConfig.full())
    tiny = VGGT(VGGTConfig.tiny())
    assert _structure(tiny.state_dict()) == _structure(full.state_dict())
    assert len(tiny.state_dict()) < len(full.state_dict())


def test_normalisation_buffers_are_not_persistent() -> None:
    aggregator = Aggregator(VGGTConfig.tiny())
    names = set(aggregator.state_dict())
    assert '_resnet_mean' not in names and '_resnet_std' not in names
    assert aggregator._resnet_mean.dtype == torch.float32
    aggregator.to(torch.bfloat16)
    # The ImageNet constants must survive a cast of the model to bf16 unrounded.
    assert aggregator._resnet_mean.dtype == torch.float32
    assert aggregator._resnet_std[0, 0, 2, 0, 0].item() == pytest.approx(0.225, abs=1e-7)
