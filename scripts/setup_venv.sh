#!/usr/bin/env bash
# Idempotent setup of the project virtual environment at .venv.
# Installs torch (CPU build unless a CUDA build is already present), the core and dev
# requirements, the optional Foxglove view (requirements/foxglove.txt), the ROS 2 Jazzy pip
# wheels, builds the message packages that have no wheel (msgs/: tf2_msgs, vision_msgs,
# nav2_dynamic_msgs) from their definitions, and installs this package in editable mode.
# Re-running only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.setup-stamp"
# The stamp holds a hash of every input of the setup; a change re-runs the affected steps.
want=$( { cat requirements/*.txt scripts/setup_venv.sh; cat scripts/build_msgs.sh requirements/ros-build-jazzy.txt; find msgs -type f | LC_ALL=C sort | xargs cat 2>/dev/null || true; } | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "setup: $VENV is up to date"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# pip warns once per package about the machine's extra local indexes that lack it; hide only
# that line (pip's own exit status still decides, through pipefail).
pip_install() {
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
}

# torch: keep an existing build (a CUDA build on a GPU machine); otherwise the CPU build.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0+cpu}
  if [ -d /opt/wheels ]; then
    pip_install --find-links /opt/wheels "$TORCH_SPEC" || pip_install "torch==2.13.0"
  else
    pip_install "torch==2.13.0"  # PyPI's Linux build (CUDA-capable, runs on CPU too)
  fi
fi
pip_install -r requirements/core.txt -r requirements/dev.txt -r requirements/foxglove.txt
pip_install -r requirements/ros-jazzy.txt
if [ -x scripts/build_msgs.sh ]; then
  scripts/build_msgs.sh "$VENV"
fi
pip_install --no-deps -e .
echo "$want" > "$STAMP"
echo "setup: $VENV ready"
