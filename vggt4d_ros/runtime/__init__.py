# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The streaming runtime both front ends (ROS node, replay) run; ROS-free."""
