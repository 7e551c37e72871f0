# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The demo: render the synthetic scene into a bag, replay it, print where the report is.

``python -m vggt4d_ros.replay.demo --out demo_out`` writes ``demo_out/scene_bag`` (input bag
with ground truth) and the replay outputs under ``demo_out/replay`` (see docs/replay.md).
Without weights it runs the tiny random model on CPU in a few minutes; the report then says in
large letters that its numbers mean nothing about quality.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
import shutil
import sys

from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.runner import ReplayConfig
from vggt4d_ros.replay.runner import run_replay
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SensorConfig
from vggt4d_ros.replay.synthetic import write_synthetic_bag


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m vggt4d_ros.replay.demo',
                                     description='Synthetic demo bag + replay + report.')
    parser.add_argument('--out', type=Path, default=Path('demo_out'))
    parser.add_argument('--large', action='store_true',
                        help='96 frames at 320x240 instead of 24 at 160x120')
    parser.add_argument('--frames', type=int, default=None, help='override the frame count')
    parser.add_argument('--weights', default=None,
                        help='VGGT checkpoint (default: $VGGT4D_WEIGHTS, else tiny random)')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--window-size', type=int, default=8)
    parser.add_argument('--stride', type=int, default=4)
    parser.add_argument('--network-width', type=int, default=None,
                        help='network width (default 518; e.g. 252 for a faster CPU demo)')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--seed', type=int, default=0, help='scene seed')
    parser.add_argument('--perception', action=argparse.BooleanOptionalAction, default=True,
                        help='planner outputs and tracking metrics (default on)')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scene = SceneConfig.large(args.seed) if args.large else SceneConfig(seed=args.seed)
    if args.frames:
        scene = replace(scene, num_frames=args.frames)
    bag = args.out / 'scene_bag'
    if bag.exists():
        shutil.rmtree(bag)  # rosbags never overwrites; the scene is cheap to re-render
    args.out.mkdir(parents=True, exist_ok=True)
    print(f'[demo] rendering {scene.num_frames} frames {scene.width}x{scene.height} '
          f'into {bag}', file=sys.stderr, flush=True)
    write_synthetic_bag(bag, scene, args.storage, sensors=SensorConfig())
    config = ReplayConfig(bag=bag, out_dir=args.out / 'replay', weights=args.weights,
                          device=args.device, window_size=args.window_size,
                          stride=args.stride, network_width=args.network_width,
                          perception=args.perception)
    try:
        summary = run_replay(config)
    except ReplayError as error:
        print(f'[demo] replay failed: {error}', file=sys.stderr)
        return 2
    metrics = summary.metrics
    trajectory, masks = metrics['trajectory'], metrics['masks']
    print(f'[demo] {summary.frames_out}/{summary.frames_in} frames replayed')
    if 'ate_rmse' in trajectory:
        print(f"[demo] ATE {trajectory['ate_rmse']:.4f} m, RPE {trajectory['rpe_trans_rmse']:.4f}"
              f" m / {trajectory['rpe_rot_deg_rmse']:.3f} deg")
    if 'j_mean' in masks:
        print(f"[demo] masks J {masks['j_mean']:.3f}, F {masks['f_mean']:.3f}")
    tracks = metrics.get('tracks') or {}
    if 'recall' in tracks:
        print(f"[demo] tracks: recall {tracks['recall']:.3f}, id switches "
              f"{tracks['id_switches']}, velocity error {tracks['velocity_error_mean']:.3f}")
    if metrics.get('random_weights'):
        print('[demo] RANDOM weights: these numbers mean nothing about VGGT4D quality')
    print(f'[demo] report: {summary.report}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
