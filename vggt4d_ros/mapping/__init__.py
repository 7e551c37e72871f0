# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Streaming mapping, independent of the network and of ROS.

``window`` cuts frames into overlapping windows, ``mapper`` chains each window's
``WindowResult`` into one global frame (Sim(3)), fuses static points into ``voxel_map`` and
extends the ``trajectory``; ``engine`` glues window manager -> backend -> mapper. ``testing``
holds an analytic oracle backend for tests and benchmarks. Design: docs/mapping.md.
"""
