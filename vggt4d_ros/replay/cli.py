# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``vggt4d-replay``: replay a rosbag2 through VGGT4D, evaluate it and write a report.

Exit codes: 0 success; 2 bad input (missing/corrupt/truncated/empty bag, missing topic, bad
weights, bad arguments); 3 the DDS mode lost frames or the node failed. Partial outputs of a
failed run are kept in the output directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.factory import RANDOM_WEIGHTS_WARNING
from vggt4d_ros.replay.inputs import validate_options
from vggt4d_ros.replay.runner import ReplayConfig
from vggt4d_ros.replay.runner import ReplaySummary
from vggt4d_ros.replay.runner import WEIGHTS_ENV


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='vggt4d-replay',
        description='Replay a rosbag2 (mcap or sqlite3) through VGGT4D: masks, poses, static '
                    'map, metrics against ground truth and a report.')
    parser.add_argument('bag', type=Path, help='input rosbag2 directory')
    parser.add_argument('--out', type=Path, required=True, help='output directory')
    parser.add_argument('--mode', choices=('offline', 'dds'), default='offline',
                        help='offline: drive the engine directly (deterministic, default); '
                             'dds: replay through the real node over DDS')
    parser.add_argument('--image-topic', default=None, help='camera topic (default: auto)')
    parser.add_argument('--weights', default=None,
                        help=f'VGGT checkpoint for the full model (default: ${WEIGHTS_ENV}; '
                             'none: tiny model with random weights, numbers meaningless)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N')
    parser.add_argument('--window-size', type=int, default=8)
    parser.add_argument('--stride', type=int, default=4)
    parser.add_argument('--max-frames', type=int, default=None)
    parser.add_argument('--no-refine', action='store_true',
                        help='skip the stage-3 mask refinement (faster, coarse masks)')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                        help='output bag storage')
    parser.add_argument('--gt-pose-topic', default=None,
                        help='ground-truth PoseStamped/Odometry/TF/Path topic (default: auto)')
    parser.add_argument('--gt-tum', type=Path, default=None, help='ground-truth TUM file')
    parser.add_argument('--gt-mask-topic', default=None, help='ground-truth mask topic')
    parser.add_argument('--gt-mask-dir', type=Path, default=None,
                        help='ground-truth mask PNGs (<stamp_ns>.png or in frame order)')
    parser.add_argument('--no-images', action='store_true',
                        help='do not copy the input images into the output bag')
    parser.add_argument('--network-width', type=int, default=None,
                        help='network input width (default 518 as VGGT; a smaller multiple of '
                             '14 makes CPU runs of the tiny model faster)')
    parser.add_argument('--timeout', type=float, default=600.0,
                        help='dds mode: bound on each wait for the node (s)')
    parser.add_argument('--quiet', action='store_true')
    return parser


def config_from_args(args: argparse.Namespace) -> ReplayConfig:
    return ReplayConfig(
        bag=args.bag, out_dir=args.out, image_topic=args.image_topic, weights=args.weights,
        device=args.device, window_size=args.window_size, stride=args.stride,
        max_frames=args.max_frames, refine=not args.no_refine, storage=args.storage,
        gt_pose_topic=args.gt_pose_topic, gt_tum=args.gt_tum,
        gt_mask_topic=args.gt_mask_topic, gt_mask_dir=args.gt_mask_dir,
        copy_images=not args.no_images, network_width=args.network_width, quiet=args.quiet)


def _run_dds(config: ReplayConfig, timeout_s: float) -> ReplaySummary:
    """Replay through the real node over DDS, then write the same outputs as offline."""
    # Lazy import: only this mode needs rclpy; replay/ itself stays ROS-free.
    from vggt4d_ros.ros.dds_replay import replay_bag_through_node
    from vggt4d_ros.replay.runner import dds_node_parameters
    from vggt4d_ros.replay.runner import finish_recorded_run

    params, description, random_weights = dds_node_parameters(config)
    Path(config.out_dir).mkdir(parents=True, exist_ok=True)
    if random_weights and not config.quiet:
        print(f'vggt4d-replay: {RANDOM_WEIGHTS_WARNING}', file=sys.stderr)
    result = replay_bag_through_node(config.bag, config.image_topic, params, timeout_s,
                                     log_path=Path(config.out_dir) / 'node.log')
    return finish_recorded_run(config, result.masks, result.poses, result.static_map,
                               result.frames_sent, description, random_weights)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    try:
        validate_options(config)
        if args.timeout <= 0:
            raise ReplayError(f'--timeout {args.timeout}: must be > 0')
    except ReplayError as error:
        print(f'vggt4d-replay: error: {error} (nothing was processed)', file=sys.stderr)
        return 2
    try:
        if args.mode == 'dds':
            summary = _run_dds(config, args.timeout)
        else:
            from vggt4d_ros.replay.runner import run_replay
            summary = run_replay(config)
    except ReplayError as error:
        print(f'vggt4d-replay: error: {error}', file=sys.stderr)
        print(f'vggt4d-replay: partial outputs (if any) are in {config.out_dir}',
              file=sys.stderr)
        return 2
    except RuntimeError as error:
        if args.mode != 'dds':
            raise
        print(f'vggt4d-replay: DDS replay failed: {error}', file=sys.stderr)
        return 3
    print(f'{summary.frames_out}/{summary.frames_in} frames; report: {summary.report}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
