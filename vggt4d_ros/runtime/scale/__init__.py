# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Metric scale: metres per VGGT unit from a robot's sensors, fused over windows (ROS-free).

One module per source (``depth``, ``odometry``, ``camera_height``), each turning a window's
``WindowResult`` plus side data into a :class:`~vggt4d_ros.runtime.scale.estimate.ScaleEstimate`
(metres per unit of THAT window, with a spread or a reason why there is none);
:class:`~vggt4d_ros.runtime.scale.estimator.ScaleEstimator` picks the configured source and
counts outcomes; :class:`~vggt4d_ros.runtime.scale.filter.ScaleFilter` fuses the estimates
across windows inside the mapper (see docs/scale.md).
"""
