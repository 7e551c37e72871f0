# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The one entry point the engine calls per window: the configured source's estimate.

Per window the engine (or the node) collects :class:`ScaleInputs` (depth images paired by stamp,
the odometry buffer, the camera extrinsic), calls :meth:`ScaleEstimator.update` and hands the
estimate to ``Mapper.integrate(result, ..., scale_hint=est.metres_per_unit,
scale_spread=est.spread)``; the mapper was built with ``scale_fusion=estimator.filter``, which
fuses the estimates across windows in map units. Every outcome is counted in ``stats``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.runtime.scale.camera_height import CameraHeightScale
from vggt4d_ros.runtime.scale.camera_height import LEVEL_CAMERA
from vggt4d_ros.runtime.scale.config import ScaleConfig
from vggt4d_ros.runtime.scale.depth import DepthImage
from vggt4d_ros.runtime.scale.depth import DepthScale
from vggt4d_ros.runtime.scale.estimate import ScaleEstimate
from vggt4d_ros.runtime.scale.filter import ScaleFilter
from vggt4d_ros.runtime.scale.odometry import OdometryBuffer
from vggt4d_ros.runtime.scale.odometry import OdometryScale
from vggt4d_ros.runtime.scale.rig_baseline import rig_scale_from_window


@dataclass
class ScaleInputs:
    """Side data for one window (what the source needs; the rest may stay empty).

    Attributes:
        depths: depth images keyed by the colour image's stamp (pairing done upstream, e.g.
            :class:`vggt4d_ros.runtime.sync.ApproximateSync`).
        odometry: the ``odom -> base_link`` buffer (None: no odometry yet).
        base_from_camera: [4,4] extrinsic base_link -> camera optical frame (None: unknown;
            odometry then treats the odometry as the camera's own).
        rig_from_cameras: [N,4,4] a rig's camera optical frames in base_link, view order
            (``rig_baseline``; None: unknown).

    """

    depths: Mapping[int, DepthImage] = field(default_factory=dict)
    odometry: OdometryBuffer | None = None
    base_from_camera: np.ndarray | None = None
    rig_from_cameras: np.ndarray | None = None


class ScaleEstimator:
    """Picks the source from ``ScaleConfig.source``; owns the fusion filter for the mapper."""

    def __init__(self, config: ScaleConfig | None = None) -> None:
        self.config = config or ScaleConfig()
        self.filter = ScaleFilter(self.config.filter, self.config.source)
        self.depth = DepthScale(self.config.depth)
        self.odometry = OdometryScale(self.config.odometry)
        self.camera_height = CameraHeightScale(self.config.camera_height)
        #: window outcomes: 'used' or the reason there was no estimate
        self.stats: Counter = Counter()

    @property
    def enabled(self) -> bool:
        return self.config.source != 'none'

    def update(self, result: WindowResult, inputs: ScaleInputs | None = None) -> ScaleEstimate:
        """Estimate metres per unit of this window with the configured source."""
        inputs = inputs or ScaleInputs()
        source = self.config.source
        if source == 'none':
            estimate = ScaleEstimate.failed('none', 'disabled')
        elif source == 'depth':
            estimate = self.depth.estimate(result, inputs.depths)
        elif source == 'rig_baseline':
            estimate = ScaleEstimate.failed(source, 'no_extrinsic') \
                if inputs.rig_from_cameras is None else rig_scale_from_window(
                    result, inputs.rig_from_cameras, self.config.rig_baseline)
        elif source == 'odometry':
            if inputs.odometry is None:
                estimate = ScaleEstimate.failed(source, 'no_tf')
            else:
                estimate = self.odometry.estimate(result, inputs.odometry.lookup,
                                                  inputs.base_from_camera)
        else:
            if inputs.base_from_camera is None and not \
                    self.config.camera_height.camera_height_m > 0:
                estimate = ScaleEstimate.failed(source, 'no_extrinsic')
            else:
                extrinsic = LEVEL_CAMERA if inputs.base_from_camera is None \
                    else inputs.base_from_camera
                estimate = self.camera_height.estimate(result, extrinsic)
        self.stats[estimate.reason or 'used'] += 1
        return estimate
