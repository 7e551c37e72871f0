# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Settings for the whole test session: one compute thread per process.

The suite runs on a 2-core CI machine whose cores are busy with other work. PyTorch's and
OpenBLAS's thread pools then hurt: every parallel operation waits for its slowest thread,
and a thread that lost its core holds up the others (a tiny-model window on 5 frames took
3-5 s with 2 threads against 0.65 s with one, at a load of ~4). The tests' tensors are small,
so a second thread gains little even on an idle machine. Set here, before any test module
imports torch or numpy, so the pools are created with one thread; inherited by the node and
tool subprocesses the tests start. An explicit setting in the environment is kept.
"""

from __future__ import annotations

import os

for _variable in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_variable, '1')
