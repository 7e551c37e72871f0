# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Strict checkpoint loading (.pt / .safetensors) and its error messages (tiny config)."""

from pathlib import Path

import pytest
from safetensors.torch import save_file
import torch

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.model.weights import CheckpointError, load_model, load_weights


def _model(seed: int) -> VGGT:
    torch.manual_seed(seed)
    return VGGT(VGGTConfig.tiny()).eval()


@pytest.fixture(scope='module')
def source() -> VGGT:
    return _model(0)


@pytest.fixture(scope='module')
def images() -> torch.Tensor:
    torch.manual_seed(3)
    return torch.rand(2, 3, 56, 70)


def _predict(model: VGGT, images: torch.Tensor) -> dict:
    with torch.no_grad():
        return model(images, heads={'camera', 'depth', 'point'})


@pytest.mark.parametrize('suffix', ['.pt', '.pth', '.safetensors'])
def test_round_trip_reproduces_outputs(source, images, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f'tiny{suffix}'
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == '.safetensors':
        save_file(state, str(path))
    else:
        torch.save(state, path)
    target = _model(1)
    before = _predict(target, images)['depth']
    assert load_weights(target, path) is target
    expected = _predict(source, images)
    got = _predict(target, images)
    assert not torch.equal(before, expected['depth'])
    for key in ('pose_enc', 'depth', 'depth_conf', 'world_points', 'world_points_conf'):
        assert torch.equal(got[key], expected[key]), key


def test_wrapped_state_dict_is_accepted(source, tmp_path: Path) -> None:
    path = tmp_path / 'wrapped.pt'
    torch.save({'model': source.state_dict(), 'epoch': 20}, path)
    target = load_weights(_model(1), path)
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value)


def test_ambiguous_wrapper_is_rejected(source, tmp_path: Path) -> None:
    path = tmp_path / 'two.pt'
    torch.save({'model': source.state_dict(), 'state_dict': source.state_dict()}, path)
    with pytest.raises(CheckpointError, match='not a state_dict'):
        load_weights(_model(1), path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / 'absent.pt'
    with pytest.raises(CheckpointError, match='absent.pt: checkpoint file not found'):
        load_weights(_model(1), path)


@pytest.mark.parametrize('suffix', ['.pt', '.safetensors'])
def test_garbage_bytes(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f'garbage{suffix}'
    path.write_bytes(b'\x00not a checkpoint\xff' * 10)
    with pytest.raises(CheckpointError, match=f'garbage{suffix}: not a readable'):
        load_weights(_model(1), path)


def test_a_directory_is_not_called_missing(tmp_path: Path) -> None:
    (tmp_path / 'model.pt').write_bytes(b'x')
    with pytest.raises(CheckpointError, match='is a directory.*inside: model.pt'):
        load_weights(_model(1), tmp_path)
    (tmp_path / 'sub').mkdir()
    with pytest.raises(CheckpointError, match='holds no .pt'):
        load_weights(_model(1), tmp_path / 'sub')


@pytest.mark.parametrize('suffix', ['.pt', '.safetensors'])
def test_an_empty_file_says_it_is_empty(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f'empty{suffix}'
    path.write_bytes(b'')
    with pytest.raises(CheckpointError, match=r'empty \(0 bytes\)'):
        load_weights(_model(1), path)


def test_pickled_objects_are_refused_without_torchs_unsafe_advice(tmp_path: Path) -> None:
    path = tmp_path / 'objects.pt'
    torch.save({'model': Path('not a tensor')}, path)
    with pytest.raises(CheckpointError) as info:
        load_weights(_model(1), path)
    message = str(info.value)
    assert 'pickled Python objects' in message and 'state_dict' in message
    assert 'weights_only' not in message and '\x1b' not in message


def test_truncated_file_says_so(source, tmp_path: Path) -> None:
    path = tmp_path / 'cut.pt'
    torch.save(source.state_dict(), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match='truncated'):
        load_weights(_model(1), path)


def _write(tmp_path: Path, state: dict) -> Path:
    path = tmp_path / 'edited.pt'
    torch.save(state, path)
    return path


def test_missing_key_is_named(source, tmp_path: Path) -> None:
    state = dict(source.state_dict())
    del state['aggregator.camera_token']
    path = _write(tmp_path, state)
    with pytest.raises(CheckpointError, match='1 missing keys: aggregator.camera_token') as info:
        load_weights(_model(1), path)
    assert 'edited.pt' in str(info.value)


def test_many_missing_keys_are_counted(source, tmp_path: Path) -> None:
    state = {k: v for k, v in source.state_dict().items() if not k.startswith('depth_head.')}
    missing = len(source.state_dict()) - len(state)
    path = _write(tmp_path, state)
    with pytest.raises(CheckpointError, match=rf'{missing} missing keys: depth_head\..*more'):
        load_weights(_model(1), path)


def test_unexpected_key_is_named(source, tmp_path: Path) -> None:
    state = dict(source.state_dict())
    state['aggregator.pose_token'] = torch.zeros(1)
    path = _write(tmp_path, state)
    with pytest.raises(CheckpointError, match='1 unexpected keys: aggregator.pose_token'):
        load_weights(_model(1), path)


def test_shape_mismatch_is_named(source, tmp_path: Path) -> None:
    state = dict(source.state_dict())
    state['camera_head.empty_pose_tokens'] = torch.zeros(1, 1, 8)
    path = _write(tmp_path, state)
    with pytest.raises(CheckpointError,
                       match=r'camera_head.empty_pose_tokens \(1, 1, 8\) vs model \(1, 1, 9\)'):
        load_weights(_model(1), path)


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / 'weights.ckpt'
    path.write_bytes(b'')
    with pytest.raises(CheckpointError, match='weights.ckpt: unknown checkpoint extension'):
        load_weights(_model(1), path)


def test_load_model_builds_from_checkpoint(source, images, tmp_path: Path) -> None:
    path = tmp_path / 'tiny.safetensors'
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = load_model(path, VGGTConfig.tiny())
    assert not model.training
    assert model.aggregator._resnet_std[0, 0, 1, 0, 0].item() == pytest.approx(0.224)
    expected = _predict(source, images)
    got = _predict(model, images)
    for key in ('pose_enc', 'depth', 'world_points_conf'):
        assert torch.equal(got[key], expected[key]), key
    half = load_model(path, VGGTConfig.tiny(), dtype=torch.bfloat16)
    assert next(half.parameters()).dtype == torch.bfloat16
    with pytest.raises(CheckpointError, match='missing keys'):
        load_model(path, VGGTConfig.full())
