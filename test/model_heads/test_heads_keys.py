# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Full-size heads have exactly the checkpoint's keys and shapes (built on the meta device).

``test/data/vggt_state_dict_keys.txt`` lists ``name<TAB>shape<TAB>dtype`` for every tensor of
the released VGGT-1B checkpoint (facebookresearch/vggt@44b3afb); these tests check the
``camera_head.``, ``depth_head.``, ``point_head.`` and ``track_head.`` ones.
"""

from pathlib import Path
from typing import Dict, Tuple

import pytest
import torch
from torch import nn

from vggt4d_ros.model.heads import CameraHead, DPTHead, TrackHead

KEY_FILE = Path(__file__).resolve().parents[1] / 'data' / 'vggt_state_dict_keys.txt'
DIM_IN = 2048


def _reference_shapes(prefix: str) -> Dict[str, Tuple[int, ...]]:
    shapes = {}
    for line in KEY_FILE.read_text().splitlines():
        name, shape, _ = line.split('\t')
        if name.startswith(prefix):
            shapes[name[len(prefix):]] = tuple(int(v) for v in shape.strip('()').split(',') if v)
    return shapes


def _build(prefix: str, track_pos_embed: bool = False) -> nn.Module:
    with torch.device('meta'):
        if prefix == 'camera_head.':
            return CameraHead(dim_in=DIM_IN)
        if prefix == 'depth_head.':
            return DPTHead(dim_in=DIM_IN, output_dim=2, activation='exp',
                           conf_activation='expp1')
        if prefix == 'point_head.':
            return DPTHead(dim_in=DIM_IN, output_dim=4, activation='inv_log',
                           conf_activation='expp1')
        return TrackHead(dim_in=DIM_IN, patch_size=14, pos_embed=track_pos_embed)


@pytest.mark.parametrize(
    'prefix, expected_count',
    [('camera_head.', 69), ('depth_head.', 62), ('point_head.', 62), ('track_head.', 394)],
)
def test_state_dict_matches_checkpoint(prefix: str, expected_count: int) -> None:
    reference = _reference_shapes(prefix)
    assert len(reference) == expected_count
    ours = {name: tuple(t.shape) for name, t in _build(prefix).state_dict().items()}
    assert sorted(set(ours) - set(reference)) == []
    assert sorted(set(reference) - set(ours)) == []
    mismatched = {n: (ours[n], reference[n]) for n in ours if ours[n] != reference[n]}
    assert mismatched == {}


def test_tracker_fixed_flag_keeps_keys() -> None:
    plain = _build('track_head.', track_pos_embed=False).state_dict()
    fixed = _build('track_head.', track_pos_embed=True).state_dict()
    assert {k: v.shape for k, v in plain.items()} == {k: v.shape for k, v in fixed.items()}
    assert 'tracker.updateformer.virual_tracks' in fixed


def test_parameter_counts() -> None:
    counts = {p: sum(t.numel() for t in _build(p).parameters())
              for p in ('camera_head.', 'depth_head.', 'track_head.')}
    expected = {p: sum(torch.Size(s).numel() for s in _reference_shapes(p).values())
                for p in counts}
    assert counts == expected
    assert 216.0e6 < counts['camera_head.'] < 216.4e6
