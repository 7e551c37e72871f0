# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Streaming mapping, independent of the network and of ROS.

``mapper`` chains each window's ``WindowResult`` into one global frame (Sim(3)), fuses static
points into ``voxel_map`` and extends the ``trajectory``. ``testing`` holds an analytic oracle
backend for tests and benchmarks. The window manager and the engine that drives the mapper
live in the runtime package (``runtime/``). Design: docs/mapping.md.
"""
