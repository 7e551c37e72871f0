# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""VGGT, re-implemented checkpoint-exact: the names a user imports.

    from vggt4d_ros.model import VGGT, VGGTConfig, load_model

    model = load_model('model.pt', VGGTConfig.full(), device='cuda')  # eval mode
    out = model(images)  # images [S,3,h,w] in [0,1]; out['depth'], out['pose_enc'], ...

Submodules hold the rest (``layers``, ``aggregator``, ``heads``, ...).
"""

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.hooks import CaptureRequest
from vggt4d_ros.model.hooks import Captures
from vggt4d_ros.model.hooks import KeyValueMask
from vggt4d_ros.model.runtime import DTYPES
from vggt4d_ros.model.runtime import resolve_device
from vggt4d_ros.model.runtime import resolve_dtype
from vggt4d_ros.model.vggt import ALL_HEADS
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.model.weights import check_state_dict
from vggt4d_ros.model.weights import CheckpointError
from vggt4d_ros.model.weights import load_model
from vggt4d_ros.model.weights import load_weights
from vggt4d_ros.model.weights import read_state_dict

__all__ = [
    'ALL_HEADS',
    'CaptureRequest',
    'Captures',
    'check_state_dict',
    'CheckpointError',
    'DTYPES',
    'KeyValueMask',
    'load_model',
    'load_weights',
    'read_state_dict',
    'resolve_device',
    'resolve_dtype',
    'VGGT',
    'VGGTConfig',
]
