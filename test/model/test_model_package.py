# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The package faces: ``from vggt4d_ros.model import VGGT`` and friends work."""

from __future__ import annotations

import importlib

import pytest


def test_model_face_has_the_names_a_user_imports():
    from vggt4d_ros.model import load_model, VGGT, VGGTConfig
    from vggt4d_ros.model.vggt import VGGT as ModuleVGGT
    assert VGGT is ModuleVGGT
    assert callable(load_model)
    assert VGGT(VGGTConfig.tiny()).config == VGGTConfig.tiny()


@pytest.mark.parametrize('package', ['vggt4d_ros.model', 'vggt4d_ros.motion',
                                     'vggt4d_ros.geometry', 'vggt4d_ros.motion.refine'])
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__ and len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
