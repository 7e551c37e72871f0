# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``vggt4d-eval`` (benchmark evaluation) and ``vggt4d-bag`` (a sequence as a rosbag2).

``python -m vggt4d_ros.replay.eval_cli ...`` runs vggt4d-eval.

vggt4d-eval exit codes: 0 every sequence scored; 2 bad input (missing weights, dataset folder,
parameter file, bad arguments); 3 at least one sequence failed (its error is in metrics.json and
report.md; the others are scored). vggt4d-bag: 0 written, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
import sys
from typing import Any, Callable

from vggt4d_ros.replay.datasets import DATASETS
from vggt4d_ros.replay.errors import ReplayError


def _factory(spec: str | None) -> Callable[..., Any] | None:
    """Resolve ``--backend-factory module:function`` (the documented test hook)."""
    if not spec:
        return None
    module_name, _, attribute = spec.partition(':')
    if not module_name or not attribute:
        raise ReplayError(f'--backend-factory {spec!r} must be "module:function"')
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ReplayError(f'--backend-factory {spec!r}: {error}') from error


def eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='vggt4d-eval',
        description='Evaluate VGGT4D (as the node runs it) on a public benchmark in the '
                    "paper's protocol: per-sequence and mean metrics, metrics.json and "
                    'report.md with the published numbers. Resumable: finished sequences in '
                    '--out are kept.')
    parser.add_argument('dataset', choices=DATASETS)
    parser.add_argument('root', type=Path, help='dataset root folder')
    parser.add_argument('--weights', default=None,
                        help='VGGT checkpoint (required; or weights in --params)')
    parser.add_argument('--params', type=Path, default=None,
                        help="the node's parameter file (e.g. config/vggt4d.yaml)")
    parser.add_argument('--out', type=Path, required=True, help='output folder')
    parser.add_argument('--sequences', nargs='+', default=None,
                        help="sequence names (default: the protocol's list)")
    parser.add_argument('--split', choices=('2016', '2017', 'all'), default='2017',
                        help='DAVIS split (default 2017)')
    parser.add_argument('--tum-source', choices=('auto', 'folder', 'bag'), default='auto',
                        help='TUM: image folders (rgb.txt) or the ROS 1 bags')
    parser.add_argument('--device', default=None, help='overrides the parameter file')
    parser.add_argument('--window-size', type=int, default=None)
    parser.add_argument('--stride', type=int, default=None)
    parser.add_argument('--force', action='store_true', help='rerun finished sequences')
    parser.add_argument('--backend-factory', default=None,
                        help='TEST HOOK "module:function" returning a stand-in backend per '
                             'sequence (e.g. vggt4d_ros.replay.datasets.testing:'
                             "oracle_factory); its numbers are not VGGT4D's")
    parser.add_argument('--quiet', action='store_true')
    return parser


def eval_main(argv: list[str] | None = None,
              backend_factory: Callable[..., Any] | None = None) -> int:
    """Run vggt4d-eval; ``backend_factory`` is the in-process form of --backend-factory."""
    from vggt4d_ros.replay.dataset_eval import EvalConfig
    from vggt4d_ros.replay.dataset_eval import run_evaluation

    args = eval_parser().parse_args(argv)
    try:
        config = EvalConfig(
            dataset=args.dataset, root=args.root, out_dir=args.out, weights=args.weights,
            params=args.params, sequences=args.sequences, davis_split=args.split,
            tum_source=args.tum_source, device=args.device, window_size=args.window_size,
            stride=args.stride, force=args.force,
            backend_factory=backend_factory or _factory(args.backend_factory), quiet=args.quiet)
        summary = run_evaluation(config)
    except ReplayError as error:
        print(f'vggt4d-eval: error: {error}', file=sys.stderr)
        return 2
    total = len(summary.metrics['sequences'])
    print(f'{total - len(summary.failed)}/{total} sequences scored; report: {summary.report}')
    if summary.failed:
        print(f'vggt4d-eval: failed: {", ".join(summary.failed)} (see {summary.report})',
              file=sys.stderr)
        return 3
    return 0


def bag_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='vggt4d-bag',
        description='Write one benchmark sequence as a rosbag2 (images, CameraInfo, '
                    'ground-truth poses as PoseStamped and TF, masks) for vggt4d-replay or '
                    'ros2 bag play.')
    parser.add_argument('dataset', choices=DATASETS)
    parser.add_argument('root', type=Path, help='dataset root folder')
    parser.add_argument('sequence', help='sequence name')
    parser.add_argument('out', type=Path, help='output bag directory (must not exist)')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--split', choices=('2016', '2017', 'all'), default='all',
                        help='DAVIS split the sequence is looked up in (default all)')
    parser.add_argument('--tum-source', choices=('auto', 'folder', 'bag'), default='auto')
    parser.add_argument('--protocol-frames', action='store_true',
                        help="only the frames the evaluation protocol selects (default: all)")
    return parser


def bag_main(argv: list[str] | None = None) -> int:
    """Run vggt4d-bag."""
    from vggt4d_ros.replay.dataset_bag import write_sequence_bag
    from vggt4d_ros.replay.datasets import plan_dataset
    from vggt4d_ros.replay.datasets.base import Protocol

    args = bag_parser().parse_args(argv)
    try:
        protocol = None if args.protocol_frames else Protocol()
        plan = plan_dataset(args.dataset, args.root, [args.sequence], protocol=protocol,
                            davis_split=args.split, tum_source=args.tum_source)
        counts = write_sequence_bag(plan[0][1](), args.out, args.storage)
    except ReplayError as error:
        print(f'vggt4d-bag: error: {error}', file=sys.stderr)
        return 2
    print(f'{args.out}: ' + ', '.join(f'{topic} {count}' for topic, count in counts.items()))
    return 0


if __name__ == '__main__':
    sys.exit(eval_main())
