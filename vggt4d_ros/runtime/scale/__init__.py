# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Metric scale sources: metres per VGGT unit from a robot's sensors (ROS-free)."""
