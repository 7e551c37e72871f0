# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Output activations of the VGGT heads.

Pose encodings are 9 values ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]``; each group gets its
own activation. Dense (DPT) outputs carry ``C-1`` value channels followed by one confidence
channel.
"""

from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F


def inverse_log(y: torch.Tensor) -> torch.Tensor:
    """Undo a signed log compression: ``sign(y) * (exp(|y|) - 1)``."""
    return torch.sign(y) * torch.expm1(torch.abs(y))


def _norm_exp(y: torch.Tensor) -> torch.Tensor:
    """Keep the direction of ``y[..., C]`` and map its length ``d`` to ``exp(d) - 1``."""
    length = y.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    return y / length * torch.expm1(length)


_VALUE_ACTIVATIONS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    'linear': lambda y: y,
    'relu': F.relu,
    'exp': torch.exp,
    'inv_log': inverse_log,
    'sigmoid': torch.sigmoid,
    'norm_exp': _norm_exp,
}

_CONFIDENCE_ACTIVATIONS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    'expp1': lambda c: 1.0 + torch.exp(c),
    'expp0': torch.exp,
    'sigmoid': torch.sigmoid,
}


def _lookup(table: Dict[str, Callable], name: str, kind: str) -> Callable:
    if name not in table:
        raise ValueError(f'unknown {kind} activation {name!r}; expected one of {sorted(table)}')
    return table[name]


def check_activation_names(activation: str, conf_activation: str) -> None:
    """Raise ``ValueError`` early (at construction) for unsupported activation names."""
    _lookup(_VALUE_ACTIVATIONS, activation, 'value')
    _lookup(_CONFIDENCE_ACTIVATIONS, conf_activation, 'confidence')


def activate_pose(
    pose_enc: torch.Tensor,
    trans_act: str = 'linear',
    quat_act: str = 'linear',
    fl_act: str = 'linear',
) -> torch.Tensor:
    """Activate the translation, quaternion and field-of-view parts of ``pose_enc[..., 9]``."""
    translation, quaternion, fov = pose_enc.split((3, 4, pose_enc.shape[-1] - 7), dim=-1)
    return torch.cat(
        [
            _lookup(_VALUE_ACTIVATIONS, trans_act, 'translation')(translation),
            _lookup(_VALUE_ACTIVATIONS, quat_act, 'quaternion')(quaternion),
            _lookup(_VALUE_ACTIVATIONS, fl_act, 'field-of-view')(fov),
        ],
        dim=-1,
    )


def activate_dense(
    raw: torch.Tensor, activation: str, conf_activation: str
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Split and activate a dense prediction.

    Args:
        raw: network output ``[N,C,H,W]``; channels ``0..C-2`` are values, ``C-1`` confidence.
        activation: value activation (``'exp'`` for depth, ``'inv_log'`` for points, ...).
        conf_activation: confidence activation (``'expp1'`` gives ``1 + exp(c) >= 1``).

    Returns:
        values ``[N,H,W,C-1]`` and confidence ``[N,H,W]``.
    """
    channels_last = raw.permute(0, 2, 3, 1)
    values = _lookup(_VALUE_ACTIVATIONS, activation, 'value')(channels_last[..., :-1])
    confidence = _lookup(_CONFIDENCE_ACTIVATIONS, conf_activation, 'confidence')(
        channels_last[..., -1]
    )
    return values, confidence
