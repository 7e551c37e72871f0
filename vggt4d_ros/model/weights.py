# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Strict checkpoint loading for VGGT (.pt / .pth / .safetensors), no key remapping.

Every problem raises :class:`CheckpointError` naming the file and what is wrong; there is no
silent fallback (a partially loaded network would produce plausible-looking garbage).
"""

import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, TYPE_CHECKING, Union

import torch
from torch import nn

if TYPE_CHECKING:  # imported lazily at runtime: vggt.py pulls in every head
    from vggt4d_ros.model.config import VGGTConfig
    from vggt4d_ros.model.vggt import VGGT

_MAX_LISTED = 5
_WRAPPER_KEYS = ('model', 'state_dict')
_SUFFIXES = ('.pt', '.pth', '.bin', '.safetensors')


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not match the model."""


def _listing(names: List[str]) -> str:
    shown = ', '.join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return f'{shown} (+{more} more)' if more > 0 else shown


def _is_tensor_dict(value: object) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def _torch_load_reason(error: Exception) -> str:
    """Say why ``torch.load(weights_only=True)`` failed, without torch's advice to unpickle.

    torch suggests ``weights_only=False``, which executes arbitrary code from the file: this
    loader never does that, so the advice would only mislead.
    """
    text = str(error)
    if 'Unsupported global' in text:
        return ('it holds pickled Python objects besides tensors, which are not loaded for '
                'safety; save a plain state_dict (torch.save(model.state_dict(), path)) or '
                'convert it to .safetensors')
    # torch's unpickler messages carry the unsafe advice: keep only the exception type.
    first = '' if 'weights_only' in text else (text.strip().splitlines() or [''])[0]
    detail = f'{type(error).__name__}: {first}' if first else type(error).__name__
    return (f'not a readable PyTorch checkpoint ({detail}); the file may be truncated or '
            'not a checkpoint at all: copy or download it again')


def _read_torch(path: Path, map_location: Union[str, torch.device]) -> Dict[str, torch.Tensor]:
    try:
        # Memory-map zip checkpoints (5 GB for VGGT-1B) instead of reading them into RAM.
        content = torch.load(str(path), map_location=map_location, weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 (legacy non-zip files cannot be memory-mapped)
        try:
            content = torch.load(str(path), map_location=map_location, weights_only=True)
        except Exception as error:  # noqa: BLE001 (torch raises many types for corrupt files)
            raise CheckpointError(f'{path}: {_torch_load_reason(error)}') from error
    if _is_tensor_dict(content):
        return dict(content)
    if isinstance(content, Mapping):
        wrapped = [key for key in _WRAPPER_KEYS if key in content]
        if len(wrapped) == 1 and _is_tensor_dict(content[wrapped[0]]):
            return dict(content[wrapped[0]])
    raise CheckpointError(
        f'{path}: not a state_dict (expected a dict of tensors, or one of {_WRAPPER_KEYS} '
        f'holding one; got {type(content).__name__})'
    )


def _read_safetensors(
    path: Path, map_location: Union[str, torch.device]
) -> Dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(map_location))
    except Exception as error:  # noqa: BLE001 (safetensors raises its own error types)
        raise CheckpointError(f'{path}: not a readable safetensors file ({error}); the file '
                              'may be truncated: copy or download it again') from error


def check_checkpoint_path(path: Union[str, Path]) -> Path:
    """Return ``path`` if it is a non-empty checkpoint file, else say what it is instead.

    Raises:
        CheckpointError: missing, a directory (listing checkpoints inside), unreadable, an
            unknown extension, empty.

    """
    path = Path(path).expanduser()
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir()
                       if p.suffix.lower() in _SUFFIXES and p.is_file())
        hint = (f'; checkpoints inside: {_listing(found)}' if found
                else '; it holds no .pt/.pth/.safetensors file')
        raise CheckpointError(f'{path}: is a directory, not a checkpoint file: give the file '
                              f'itself{hint}')
    if not path.exists():
        raise CheckpointError(f'{path}: checkpoint file not found')
    if not path.is_file():
        raise CheckpointError(f'{path}: not a regular file')
    if not os.access(path, os.R_OK):
        raise CheckpointError(f'{path}: checkpoint file is not readable (permissions)')
    if path.suffix.lower() not in _SUFFIXES:
        raise CheckpointError(f'{path}: unknown checkpoint extension {path.suffix.lower()!r} '
                              '(use .pt, .pth or .safetensors)')
    if path.stat().st_size == 0:
        raise CheckpointError(f'{path}: checkpoint file is empty (0 bytes): an interrupted '
                              'download or copy? copy it again')
    return path


def read_state_dict(
    path: Union[str, Path], *, map_location: Union[str, torch.device] = 'cpu'
) -> Dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``name -> tensor`` dict (no renaming)."""
    path = check_checkpoint_path(path)
    suffix = path.suffix.lower()
    if suffix in ('.pt', '.pth', '.bin'):
        return _read_torch(path, map_location)
    if suffix == '.safetensors':
        return _read_safetensors(path, map_location)
    raise CheckpointError(
        f'{path}: unknown checkpoint extension {suffix!r} (use .pt, .pth or .safetensors)'
    )


def check_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str
) -> None:
    """Raise :class:`CheckpointError` unless names and shapes match the model exactly."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f'{name} {tuple(state_dict[name].shape)} vs model {tuple(expected[name].shape)}'
        for name in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[name].shape) != tuple(expected[name].shape)
    ]
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys: {_listing(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys: {_listing(unexpected)}')
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatches: {_listing(mismatched)}')
    if problems:
        raise CheckpointError(f'{source}: does not match the model: ' + '; '.join(problems))


def load_weights(
    model: nn.Module,
    path: Union[str, Path],
    *,
    map_location: Union[str, torch.device] = 'cpu',
) -> nn.Module:
    """Load a checkpoint strictly into ``model`` (values are cast to the model's dtypes).

    Args:
        model: the network (e.g. ``VGGT(VGGTConfig.full())``).
        path: ``.pt``/``.pth`` (``torch.load(weights_only=True)``; a raw state_dict, or a dict
            with exactly one of ``'model'``/``'state_dict'`` holding it) or ``.safetensors``.
        map_location: where tensors are read to before copying into the model.

    Returns:
        ``model``, for chaining.

    Raises:
        CheckpointError: missing/unreadable file, or key/shape mismatch (names listed).
    """
    state_dict = read_state_dict(path, map_location=map_location)
    check_state_dict(model, state_dict, str(path))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f'{path}: load_state_dict failed ({error})') from error
    return model


def load_model(
    path: Union[str, Path],
    config: Optional['VGGTConfig'] = None,
    *,
    device: Union[str, torch.device] = 'cpu',
    dtype: Optional[torch.dtype] = None,
) -> 'VGGT':
    """Build a VGGT directly from a checkpoint, without a random initialisation first.

    The model is created on the ``meta`` device, checked against the file, allocated on
    ``device`` (in ``dtype`` if given) and filled strictly. This avoids initialising 1.26 B
    parameters at random on the CPU and holding two copies of the weights.

    Args:
        path: checkpoint (see :func:`load_weights`).
        config: network configuration (default: ``VGGTConfig.full()``).
        device: where the model lives.
        dtype: parameter dtype (e.g. ``torch.bfloat16``); default: the checkpoint's (fp32).

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: as :func:`load_weights`.
    """
    from vggt4d_ros.model.config import VGGTConfig
    from vggt4d_ros.model.vggt import VGGT

    state_dict = read_state_dict(path, map_location='cpu')
    with torch.device('meta'):
        model = VGGT(config or VGGTConfig.full())
    check_state_dict(model, state_dict, str(path))
    model = model.to_empty(device=device)
    if dtype is not None:
        model = model.to(dtype)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f'{path}: load_state_dict failed ({error})') from error
    return model.eval()
