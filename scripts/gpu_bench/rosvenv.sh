#!/bin/bash
# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
#
# On the GPU machine: a ROS venv at /tmp/rv over its torch venv ($TORCH_VENV), from carried
# wheels: .rosw (requirements/ros-jazzy.txt and the build set, cp312) and .whl3 (rosbags,
# pytest and their dependencies). docs/performance.md section 16 says how they are made.
set -e
TORCH_VENV=${TORCH_VENV:-/opt/torch/.venv}
python3 -m venv /tmp/rv
site=$(/tmp/rv/bin/python -c 'import site; print(site.getsitepackages()[0])')
"$TORCH_VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])' > "$site/zz_torch_venv.pth"
/tmp/rv/bin/python -m pip install -q --no-index --find-links .rosw -r requirements/ros-jazzy.txt
/tmp/rv/bin/python -m pip install -q --no-index --no-deps .whl3/*.whl
PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.rosw bash scripts/build_msgs.sh /tmp/rv /tmp/msgbuild
/tmp/rv/bin/python -c 'import torch, rclpy, rosbags, vision_msgs.msg, nav2_dynamic_msgs.msg; print("rv ok", torch.__version__, torch.cuda.get_device_name())'
