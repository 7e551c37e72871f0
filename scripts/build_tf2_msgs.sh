#!/usr/bin/env bash
# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
#
# Generate and install tf2_msgs (TFMessage only) into a pip-ROS virtual environment.
#
# Usage: scripts/build_tf2_msgs.sh VENV [BUILD_DIR]
#
# Machines without a ROS install get rclpy and the common message packages from the Jazzy pip
# wheels, but there is no tf2_msgs wheel. msgs/tf2_msgs holds its one-line definition; the pip
# rosidl generators turn it into the C/C++/Python type supports (same definition => same type
# hash RIHS01_e369d0f0...f087 => interoperates with a real ROS 2 tf2_msgs). Idempotent: does
# nothing when tf2_msgs already imports from the venv. Needs gcc/g++, cmake >= 3.20 and the
# Python headers of the venv's interpreter.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$(cd "${1:?usage: build_tf2_msgs.sh VENV [BUILD_DIR]}" && pwd)
BUILD=${2:-$ROOT/build}/tf2_msgs
PY="$VENV/bin/python"
SRC="$ROOT/msgs/tf2_msgs"

if "$PY" -c "from tf2_msgs.msg import TFMessage" 2>/dev/null; then
  echo "build_tf2_msgs: tf2_msgs already importable from $VENV, nothing to do"
  exit 0
fi
for tool in cmake gcc g++; do
  command -v "$tool" > /dev/null || { echo "build_tf2_msgs: $tool not found" >&2; exit 1; }
done

# 1. Build-time wheels (their dependency metadata is incomplete, so they are listed explicitly).
"$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements/ros-build-jazzy.txt"

# 2. The wheels' exported CMake files name the include directories of the container the wheels
#    were built in (/opt/python/cp3XX-cp3XX/...). Point them at this interpreter's headers.
PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$PY" -c "import numpy; print(numpy.get_include())")
if [ ! -f "$PYINC/Python.h" ]; then
  echo "build_tf2_msgs: $PYINC/Python.h missing; install the Python headers (python3-dev)" >&2
  exit 1
fi
{ grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV"/share/*/cmake 2>/dev/null || true; } \
  | xargs -r sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$NPINC#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$PYINC#g"

# 3. Configure, build and install into the venv prefix: the wheels' bootstrapper already puts
#    $VENV/lib on the library path and site-packages on sys.path, so nothing needs sourcing.
mkdir -p "$BUILD"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release > "$BUILD.configure.log" 2>&1 \
  || { cat "$BUILD.configure.log" >&2; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" > "$BUILD.build.log" 2>&1 || { cat "$BUILD.build.log" >&2; exit 1; }
cmake --install "$BUILD" > /dev/null

"$PY" -c "from tf2_msgs.msg import TFMessage; TFMessage()"
echo "build_tf2_msgs: tf2_msgs installed into $VENV"
