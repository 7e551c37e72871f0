#!/bin/bash
# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
#
# Print drive.sh's progress and pack /tmp/res into $OUT/res.tgz (one file back per call).
cat /tmp/res/progress 2>/dev/null
tail -3 /tmp/res/rosvenv.txt 2>/dev/null
tar czf "$OUT/res.tgz" -C /tmp res 2>/dev/null
true
