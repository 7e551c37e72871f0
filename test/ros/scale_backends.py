# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Oracle window backend over the synthetic scene, for metric-scale node tests.

Loaded in the node process through ``backend_factory`` (``scale_backends:make_synthetic_oracle``).
It returns the scene's ground truth per window as VGGT would (own frame, normalised, times a
random factor in [0.5, 2], small pose and depth noise): real geometry, so the scale sources
can recover metres, but no metric unit unless a source supplies it. The test publishes the
same scene (``SCENE``) rendered into a bag with its simulated sensors.
"""

from __future__ import annotations

from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import synthetic_oracle_backend

#: The scene the test publishes and the backend renders (camera size = network size).
SCENE = SceneConfig(num_frames=16, width=96, height=72, supersample=1)


def make_synthetic_oracle(params, device, dtype) -> OracleBackend:
    """backend_factory: the synthetic scene's oracle (see the module docstring)."""
    return synthetic_oracle_backend(SCENE)
