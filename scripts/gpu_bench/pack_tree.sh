#!/bin/bash
# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
#
# Pack an older revision for a GPU benchmark run as its changed files only (a whole tree per
# revision would not fit the 64 MiB a run may carry beside the ROS wheels).
#   scripts/gpu_bench/pack_tree.sh NAME REV
# writes .gpu/NAME/files/<path> (REV's version of every file changed since REV) and
# .gpu/NAME/added.txt (files added since REV). drive.sh rebuilds the tree on the device.
set -euo pipefail
name=$1 rev=$2 out=.gpu/$1
rm -rf "$out"; mkdir -p "$out/files"
git diff --name-only --diff-filter=MD "$rev" -- vggt4d_ros ci config msgs | while read -r f; do
  mkdir -p "$out/files/$(dirname "$f")"; git show "$rev:$f" > "$out/files/$f"
done
git diff --name-only --diff-filter=A "$rev" -- vggt4d_ros ci config msgs > "$out/added.txt"
git ls-files --others --exclude-standard vggt4d_ros >> "$out/added.txt"
echo "$rev" > "$out/rev"
echo "$name: $rev, $(find "$out/files" -type f | wc -l) files restored, $(wc -l < "$out/added.txt") removed"
