# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Where and in which precision the model runs: shared by the node and the replay tool."""

from __future__ import annotations

import torch

DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16, 'float32': torch.float32}


def resolve_device(name: str) -> torch.device:
    """Torch device from a name; ``auto`` is CUDA when available, else the CPU.

    Raises:
        ValueError: an unparsable name, or a CUDA device on a machine without CUDA.

    """
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f'bad device {name!r}: {error}') from error
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {name!r} asked for but CUDA is not available '
                         '(use cpu or auto)')
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Compute dtype from a name; ``auto`` is bf16 on Ampere or newer, fp16 before, fp32 on CPU.

    Raises:
        ValueError: a name other than auto, bfloat16, float16 or float32.

    """
    if name == 'auto':
        if device.type != 'cuda':
            return torch.float32
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    if name not in DTYPES:
        raise ValueError(f'dtype {name!r} is not one of auto, {", ".join(DTYPES)}')
    return DTYPES[name]
