# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What planners consume, built from processed frames (ROS-free; design: docs/perception.md).

``observation`` (one frame's depth, mask, pose), ``dynamic_points`` (dynamic pixels -> 3D),
``instances`` (pixels -> objects), ``kalman`` + ``tracker`` (objects -> tracks with ids and
velocities), ``occupancy`` (static / dynamic / combined grids), ``perception_tracker`` (all of
it per frame), ``config`` (settings), ``message_content`` (what the planner messages hold,
shared by the node's and the replay's encoders).
"""
