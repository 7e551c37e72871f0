# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Device and dtype resolution shared by the node and the replay tool."""

import pytest
import torch

from vggt4d_ros.model.runtime import resolve_device
from vggt4d_ros.model.runtime import resolve_dtype


def test_auto_resolves_to_what_the_machine_has():
    device = resolve_device('auto')
    assert device.type == ('cuda' if torch.cuda.is_available() else 'cpu')
    assert resolve_dtype('auto', torch.device('cpu')) == torch.float32
    assert resolve_dtype('bfloat16', torch.device('cpu')) == torch.bfloat16


def test_bad_names_are_value_errors():
    with pytest.raises(ValueError, match='bad device'):
        resolve_device('not-a-device')
    with pytest.raises(ValueError, match='float64'):
        resolve_dtype('float64', torch.device('cpu'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_cuda_without_cuda_says_so():
    with pytest.raises(ValueError, match='CUDA is not available'):
        resolve_device('cuda:0')
