#!/bin/bash
# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
#
# Here (after make setup): download the cp312 x86-64 wheels rosvenv.sh installs on the GPU
# machine, pinned to .venv's versions. .rosw: the ROS runtime and message-build set (~45 MiB),
# empy as its sdist; .whl3: rosbags, mcap, pytest and their dependencies (~13 MiB).
set -euo pipefail
PIP=".venv/bin/python -m pip"
export PIP_NO_WARN_SCRIPT_LOCATION=1
ONLY="--no-deps --python-version 3.12 --implementation cp --only-binary=:all:
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform any"
pins() { $PIP freeze | grep -iE "$1" | grep -viE "$2" || true; }
mkdir -p .rosw .whl3
pins '^(ros-|catkin|lark|docutils|pyparsing|python-dateutil|packaging|setuptools|pyyaml|typing.extensions)' \
     '^(numpy|empy)' > /tmp/rosw_pins.txt
$PIP download -q $ONLY -d .rosw -r /tmp/rosw_pins.txt
$PIP download -q --no-deps --no-binary empy -d .rosw "$(pins '^empy==' '^$')"
pins '^(rosbags|apsw|backports.zstd|lz4|ruamel[.]yaml([.]clib)?|zstandard|mcap(-ros2-support)?|pytest|pluggy|iniconfig)==' \
     '^pytest-' > /tmp/whl3_pins.txt
$PIP download -q $ONLY -d .whl3 -r /tmp/whl3_pins.txt
du -sh .rosw .whl3
