# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The streaming runtime both front ends (ROS node, replay tool) run; ROS-free.

``config`` holds the top-level :class:`~vggt4d_ros.runtime.config.EngineConfig` (window,
mapper, pipeline, backend) and the one mapping from a flat parameter dict (a node parameter
file) to it; ``backend`` builds, warms up and releases the window backend; ``window`` cuts
frames into overlapping windows; ``engine`` runs window manager -> backend -> mapper and
delivers its results to one ``sink`` (see :mod:`vggt4d_ros.runtime.sink`).

Imports go down only: this package may import ``mapping``, ``motion``, ``model`` and
``geometry``; none of those imports it.
"""
