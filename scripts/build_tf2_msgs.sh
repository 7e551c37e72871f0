#!/usr/bin/env bash
# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
#
# Kept for existing instructions: builds tf2_msgs only. See scripts/build_msgs.sh.
# Usage: scripts/build_tf2_msgs.sh VENV [BUILD_DIR]
set -euo pipefail
exec "$(dirname "$0")/build_msgs.sh" "${1:?usage: build_tf2_msgs.sh VENV [BUILD_DIR]}" \
  "${2:-$(cd "$(dirname "$0")/.." && pwd)/build}" tf2_msgs
