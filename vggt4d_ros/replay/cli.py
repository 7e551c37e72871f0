# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``vggt4d-replay``: replay a rosbag2 through VGGT4D, evaluate it and write a report.

Exit codes: 0 success; 2 bad input (missing/corrupt/truncated/empty bag, missing topic, bad
weights, bad parameters or arguments); 3 the DDS mode lost frames or the node failed. Partial
outputs of a failed run are kept in the output directory.

``--params FILE`` takes any node parameter file; the run then uses exactly the engine the node
builds from it (see :mod:`vggt4d_ros.replay.parameters`), a rig (``image_topics``) included.
``--mode dds`` runs the DDS replay driver (``python -m vggt4d_ros.tools.dds_replay``) as a
subprocess with the same parameters: ``replay/`` never imports ``ros/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys

import numpy as np

from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.outputs import read_mask_dir
from vggt4d_ros.replay.outputs import read_tum
from vggt4d_ros.replay.inputs import validate_options
from vggt4d_ros.replay.parameters import RANDOM_WEIGHTS_WARNING
from vggt4d_ros.replay.runner import dds_model
from vggt4d_ros.replay.runner import engine_config
from vggt4d_ros.replay.runner import parameters
from vggt4d_ros.replay.runner import ReplayConfig
from vggt4d_ros.replay.runner import ReplaySummary
from vggt4d_ros.replay.runner import WEIGHTS_ENV
from vggt4d_ros.replay.scale_run import DEFAULT_DEPTH_TOPIC
from vggt4d_ros.runtime.parameters import write_parameter_file
from vggt4d_ros.runtime.scale.config import SOURCES

#: The DDS replay driver, started as a module so that replay/ does not import it.
DDS_DRIVER = 'vggt4d_ros.tools.dds_replay'


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
    parser.add_argument('--image-topics', nargs='+', default=None, metavar='TOPIC',
                        help='a multi-camera rig: 2 to 4 camera topics, the reference camera '
                             'first (offline mode; grouped into steps by stamp; default: '
                             "the parameter file's image_topics, empty: one camera)")
    parser.add_argument('--camera-names', nargs='+', default=None, metavar='NAME',
                        help='with a rig: one name per camera (default: the parameter '
                             "file's camera_names, else each topic's namespace)")
    parser.add_argument('--rig-slop', type=float, default=None,
                        help='with a rig: largest stamp spread of one step in seconds '
                             "(default: the parameter file's rig_slop_s, else 0.01)")
    parser.add_argument('--params', type=Path, default=None,
                        help='node parameter file (e.g. config/vggt4d.yaml): run the engine '
                             'the node builds from it (mode replay); the options below '
                             'override it where given')
    parser.add_argument('--every-frame', action='store_true',
                        help='with --params: make every frame a keyframe (the default '
                             'without --params)')
    parser.add_argument('--weights', default=None,
                        help=f'VGGT checkpoint (default: the one of the parameter file, '
                             f'else ${WEIGHTS_ENV}; none and no --params: tiny model with seeded '
                             'random weights, numbers meaningless)')
    parser.add_argument('--device', default=None, help='auto, cpu, cuda, cuda:N')
    parser.add_argument('--window-size', type=int, default=None, help='default 8')
    parser.add_argument('--stride', type=int, default=None, help='default 4')
    parser.add_argument('--max-frames', type=int, default=None)
    parser.add_argument('--no-refine', action='store_true',
                        help='skip the stage-3 mask refinement (faster, coarse masks)')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                        help='output bag storage')
    parser.add_argument('--gt-pose-topic', default=None,
                        help='ground-truth PoseStamped/Odometry/TF/Path topic (default: auto)')
    parser.add_argument('--gt-tum', type=Path, default=None, help='ground-truth TUM file')
    parser.add_argument('--gt-mask-topic', default=None, help='ground-truth mask topic')
    parser.add_argument('--gt-objects-topic', default=None,
                        help='ground-truth objects (nav2_dynamic_msgs/ObstacleArray; default: '
                             '/ground_truth/objects if present)')
    parser.add_argument('--gt-mask-dir', type=Path, default=None,
                        help='ground-truth mask PNGs (<stamp_ns>.png or in frame order)')
    parser.add_argument('--no-images', action='store_true',
                        help='do not copy the input images into the output bag')
    parser.add_argument('--network-width', type=int, default=None,
                        help='network input width (default 518 as VGGT; a smaller multiple of '
                             '14 makes CPU runs of the tiny model faster)')
    parser.add_argument('--timeout', type=float, default=600.0,
                        help='dds mode: bound on each wait for the node (s)')
    parser.add_argument('--dds-profile', type=Path, default=None,
                        help='dds mode: Fast DDS XML profile (e.g. ci/fastdds_ci_shm.xml)')
    parser.add_argument('--scale-source', choices=SOURCES, default=None,
                        help='metric scale source (scale.source; default: the parameter '
                             "file's, else none: VGGT units); offline mode only")
    parser.add_argument('--depth-topic', default=None,
                        help='aligned depth topic of --scale-source depth (16UC1/32FC1; '
                             f'default {DEFAULT_DEPTH_TOPIC})')
    parser.add_argument('--odom-topic', default=None,
                        help='odometry of --scale-source odometry: a TF topic (odom -> '
                             'base_link) or nav_msgs/Odometry (default /tf)')
    parser.add_argument('--camera-height', type=float, default=None,
                        help='camera height above the floor in metres for --scale-source '
                             'camera_height (default: base_link -> camera from the bag TF, '
                             'chains resolved)')
    parser.add_argument('--perception', action=argparse.BooleanOptionalAction, default=None,
                        help='planner outputs (dynamic cloud, grids, tracks) into the output '
                             'bag, tracking metrics (default: perception.enabled of the '
                             '--params file)')
    parser.add_argument('--quiet', action='store_true')
    return parser


def config_from_args(args: argparse.Namespace) -> ReplayConfig:
    return ReplayConfig(
        bag=args.bag, out_dir=args.out, image_topic=args.image_topic, weights=args.weights,
        params_file=args.params, every_frame=args.every_frame, device=args.device,
        window_size=args.window_size, stride=args.stride,
        max_frames=args.max_frames, refine=not args.no_refine, storage=args.storage,
        gt_pose_topic=args.gt_pose_topic, gt_tum=args.gt_tum,
        gt_mask_topic=args.gt_mask_topic, gt_mask_dir=args.gt_mask_dir,
        copy_images=not args.no_images, network_width=args.network_width, quiet=args.quiet,
        scale_source=args.scale_source, camera_height=args.camera_height,
        depth_topic=args.depth_topic, odom_topic=args.odom_topic,
        perception=args.perception, gt_objects_topic=args.gt_objects_topic,
        image_topics=args.image_topics, camera_names=args.camera_names, rig_slop=args.rig_slop)


def _run_dds(config: ReplayConfig, timeout_s: float, profile: Path | None) -> ReplaySummary:
    """Replay through the real node over DDS (driver subprocess), then write the outputs.

    Raises:
        ReplayError: bad parameters or bag (before the node starts).
        RuntimeError: the driver or the node failed.

    """
    from vggt4d_ros.replay.runner import finish_recorded_run

    from vggt4d_ros.replay.bag import BagReader
    from vggt4d_ros.replay.inputs import validate_bag_options

    with BagReader(config.bag) as reader:
        validate_bag_options(config, reader)
    flat = parameters(config)
    # The node would refuse these parameters: fail now, exit code 2.
    if engine_config(config).scale.source != 'none':
        raise ReplayError('a metric scale source needs --mode offline (the DDS driver '
                          'publishes only the images, not the depth or odometry topics)')
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = dds_model(flat)
    if model.random_weights and not config.quiet:
        print(f'vggt4d-replay: {RANDOM_WEIGHTS_WARNING}', file=sys.stderr)
    params_file = write_parameter_file(flat, out / 'node_params.yaml')
    recorded = out / 'dds'
    command = [sys.executable, '-m', DDS_DRIVER, str(config.bag), '--out', str(recorded),
               '--params', str(params_file), '--timeout', str(timeout_s),
               '--log', str(out / 'node.log')]
    if config.image_topic:
        command += ['--image-topic', config.image_topic]
    if profile is not None:
        command += ['--dds-profile', str(profile)]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise RuntimeError(f'driver exited with {done.returncode}: {done.stdout.strip()}')
    summary = json.loads((recorded / 'summary.json').read_text())
    masks = read_mask_dir(recorded / 'masks')
    stamps, poses = read_tum(recorded / 'trajectory.tum')
    static_map = None
    if (recorded / 'static_map.npz').exists():
        with np.load(recorded / 'static_map.npz') as data:
            static_map = (data['points'], data['colors'])
    return finish_recorded_run(config, masks, dict(zip((int(s) for s in stamps), poses)),
                               static_map, int(summary['frames_sent']), model)


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
        if engine_config(config).rig.enabled:  # --image-topics or the file's image_topics
            if args.mode == 'dds':
                raise ReplayError('a rig (image_topics) replays offline only (the node takes '
                                  'image_topics itself: docs/ros.md)')
            if args.image_topic:
                raise ReplayError('--image-topic with a rig (image_topics): give the rig '
                                  'cameras with --image-topics')
            from vggt4d_ros.replay.rig_runner import run_rig_replay
            summary = run_rig_replay(config)
        elif args.mode == 'dds':
            summary = _run_dds(config, args.timeout, args.dds_profile)
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
