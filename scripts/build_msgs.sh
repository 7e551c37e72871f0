#!/usr/bin/env bash
# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
#
# Generate and install the message packages under msgs/ into a pip-ROS virtual environment.
#
# Usage: scripts/build_msgs.sh VENV [BUILD_DIR] [PACKAGE...]
#
# Machines without a ROS install get rclpy and the common message packages from the Jazzy pip
# wheels, but some packages have no wheel: tf2_msgs (TFMessage), vision_msgs (the 3D detection
# messages of 4.x) and nav2_dynamic_msgs (Obstacle, ObstacleArray). msgs/<package> holds their
# definitions; the pip rosidl generators turn them into the C/C++/Python type supports (same
# definitions => same type hashes => they interoperate with the real packages; checked by
# test/ros/test_ros_generated_msgs.py). Default: every package in PACKAGES, in that order
# (dependencies first). Idempotent: a package that already imports from the venv is skipped.
# Needs gcc/g++, cmake >= 3.20 and the Python headers of the venv's interpreter.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$(cd "${1:?usage: build_msgs.sh VENV [BUILD_DIR] [PACKAGE...]}" && pwd)
BUILD_ROOT=${2:-$ROOT/build}
shift $(( $# >= 2 ? 2 : 1 ))
PY="$VENV/bin/python"
# package:module probed for "already installed"
PACKAGES=(tf2_msgs:TFMessage vision_msgs:Detection3DArray nav2_dynamic_msgs:ObstacleArray)
if [ $# -gt 0 ]; then
  selected=()
  for name in "$@"; do
    for entry in "${PACKAGES[@]}"; do
      [ "${entry%%:*}" = "$name" ] && selected+=("$entry")
    done
  done
  PACKAGES=("${selected[@]}")
fi

installed() { "$PY" -c "from $1.msg import $2; $2()" 2>/dev/null; }

missing=()
for entry in "${PACKAGES[@]}"; do
  pkg=${entry%%:*}
  if installed "$pkg" "${entry##*:}"; then
    echo "build_msgs: $pkg already importable from $VENV, nothing to do"
  else
    missing+=("$entry")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
for tool in cmake gcc g++; do
  command -v "$tool" > /dev/null || { echo "build_msgs: $tool not found" >&2; exit 1; }
done

# 1. Build-time wheels (their dependency metadata is incomplete, so they are listed explicitly).
"$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements/ros-build-jazzy.txt"

# 2. The wheels' exported CMake files name the include directories of the container the wheels
#    were built in (/opt/python/cp3XX-cp3XX/...). Point them at this interpreter's headers.
PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$PY" -c "import numpy; print(numpy.get_include())")
if [ ! -f "$PYINC/Python.h" ]; then
  echo "build_msgs: $PYINC/Python.h missing; install the Python headers (python3-dev)" >&2
  exit 1
fi
{ grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV"/share/*/cmake 2>/dev/null || true; } \
  | xargs -r sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$NPINC#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$PYINC#g"

# 3. Configure, build and install each package into the venv prefix: the wheels' bootstrapper
#    already puts $VENV/lib on the library path and site-packages on sys.path, so nothing needs
#    sourcing; a package installed here is found by the next one's find_package.
for entry in "${missing[@]}"; do
  pkg=${entry%%:*}
  build="$BUILD_ROOT/$pkg"
  mkdir -p "$build"
  cmake -S "$ROOT/msgs/$pkg" -B "$build" -DCMAKE_PREFIX_PATH="$VENV" \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=Release > "$build.configure.log" 2>&1 \
    || { cat "$build.configure.log" >&2; exit 1; }
  cmake --build "$build" -j"$(nproc)" > "$build.build.log" 2>&1 \
    || { cat "$build.build.log" >&2; exit 1; }
  cmake --install "$build" > /dev/null
  installed "$pkg" "${entry##*:}" || { echo "build_msgs: $pkg does not import" >&2; exit 1; }
  echo "build_msgs: $pkg installed into $VENV"
done
