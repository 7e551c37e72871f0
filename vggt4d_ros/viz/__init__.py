# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Live views of the engine's outputs (ROS-free; optional packages imported when used).

``foxglove_view``: an :class:`~vggt4d_ros.runtime.sink.EngineSink` that streams masks,
clouds, grids, tracks and poses over the Foxglove SDK's WebSocket server (``foxglove-sdk``).
Sits above ``runtime/`` and below the front ends (``ros/``, ``replay/``).
"""
