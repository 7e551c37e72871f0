# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""One entry point for the benchmarks: ``vggt4d-bench {model,pipeline,mapping,node} [args]``.

Each benchmark prints a markdown table; the numbers we keep live in docs/performance.md
together with the command that produced them.
"""

import importlib
import sys

BENCHMARKS = {
    'model': 'vggt4d_ros.tools.bench_model',
    'pipeline': 'vggt4d_ros.tools.bench_pipeline',
    'coarse': 'vggt4d_ros.tools.bench_coarse',
    'mapping': 'vggt4d_ros.tools.bench_mapping',
    'node': 'vggt4d_ros.tools.bench_node',
    'engine': 'vggt4d_ros.tools.bench_engine',
    'kernels': 'vggt4d_ros.tools.bench_kernels',
    'refine': 'vggt4d_ros.tools.bench_refine',
    'long': 'vggt4d_ros.tools.bench_long_window',
}


def main(argv=None) -> int:
    """Dispatch to the benchmark named by the first argument."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in BENCHMARKS:
        names = ', '.join(BENCHMARKS)
        print(f'usage: vggt4d-bench {{{names}}} [options]', file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    result = module.main(argv[1:])
    return int(result or 0)


if __name__ == '__main__':
    sys.exit(main())
