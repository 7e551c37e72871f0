#!/bin/bash
# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
#
# One GPU start's benchmarks, in priority order (docs/performance.md section 17). Run from the
# repository root with setsid; results and logs go to /tmp/res, poll.sh packs them.
# Needs .gpu/base and .gpu/old from pack_tree.sh (the revisions compared against).
R=/tmp/res; mkdir -p $R; PY=/tmp/rv/bin/python; ROOT=$PWD
step() { echo "$(date +%T) $*" >> $R/progress; }
tree() {  # rebuild an older tree from pack_tree.sh's files
  rm -rf .gpu/$1/tree; mkdir -p .gpu/$1/tree
  cp -r vggt4d_ros ci config msgs .gpu/$1/tree/; cp -r .gpu/$1/files/. .gpu/$1/tree/
  (cd .gpu/$1/tree && xargs -r rm -f < ../added.txt)
}
step start
{ nvidia-smi --query-gpu=name,driver_version --format=csv; lscpu | grep -E 'Model name|^CPU\(s\)'; } > $R/gpu.txt
bash scripts/gpu_bench/rosvenv.sh > $R/rosvenv.txt 2>&1 || { step rosvenv FAILED; exit 1; }
tree base; tree old; step "venv and trees ready: base $(cat .gpu/base/rev) old $(cat .gpu/old/rev)"
NODE=(--config full --device cuda --duration 30 --weights-dtype compute
      --param pipeline.compile_model:=true --dds-profile ci/fastdds_ci_shm.xml --cameras 1)
row() {  # NAME TREE ARGS...
  local name=$1 tree=$2; shift 2; step "node $name"
  (cd $tree && $PY -m vggt4d_ros.tools.bench_node "${NODE[@]}" --log $R/node_$name.log "$@") \
    > $R/node_$name.txt 2>&1
  step "node $name rc $?"
}
row off $ROOT --param perception.enabled:=false
row planner_new1 $ROOT --planner-subscribers
row planner_old $ROOT/.gpu/old/tree --planner-subscribers
row planner_new2 $ROOT --planner-subscribers
row planner_gil02 $ROOT --planner-subscribers --param gil_switch_interval_ms:=0.2
step "track msgs"; $PY -m vggt4d_ros.tools.bench_track_msgs --tracks 5 --tracks 27 --tracks 50 > $R/track_msgs.txt 2>&1
PERC=(--device cuda --only 'all outputs (grid stride 8)' --only surface --windows 41)
for i in 1 2; do
  step "perc base $i"
  (cd .gpu/base/tree && $PY -m vggt4d_ros.tools.bench_perception "${PERC[@]}") > $R/perc_base_$i.txt 2>&1
  step "perc new $i"; $PY -m vggt4d_ros.tools.bench_perception "${PERC[@]}" > $R/perc_new_$i.txt 2>&1
done
step "perc split"; $PY -m vggt4d_ros.tools.bench_perception "${PERC[@]}" --split-passes 3 > $R/perc_split.txt 2>&1
step "perc profile"
$PY -m vggt4d_ros.tools.bench_perception --device cuda --only 'all outputs (grid stride 8)' --profile 30 > $R/perc_profile.txt 2>&1
step "cuda tests"
$PY -m pytest -q -p no:cacheprovider test/perception/test_perception_labels.py \
  test/perception/test_perception_graphs.py test/perception/test_perception_box_fit.py \
  test/perception/test_perception_equivalence.py test/perception/test_perception_ops.py \
  test/perception/test_perception_tracker_host.py test/runtime/test_runtime_engine_output_stage.py \
  test/runtime/test_runtime_output_stage.py > $R/cuda_tests.txt 2>&1
step "all done rc $?"
