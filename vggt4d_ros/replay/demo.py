# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The demo: render the synthetic scene into a bag, replay it, print where the report is.

``python -m vggt4d_ros.replay.demo --out demo_out`` writes ``demo_out/scene_bag`` (input bag
with ground truth) and the replay outputs under ``demo_out/replay`` (see docs/replay.md).
Without weights it runs the tiny random model on CPU in a few minutes; the report then says in
large letters that its numbers mean nothing about quality. ``--rig stereo|front_side`` renders a
two-camera rig instead and replays it as one (per-camera scores, the rig trajectory).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
import shutil
import sys

from vggt4d_ros.replay.errors import ReplayError
from vggt4d_ros.replay.rig_runner import run_rig_replay
from vggt4d_ros.replay.runner import ReplayConfig
from vggt4d_ros.replay.runner import run_replay
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SensorConfig
from vggt4d_ros.replay.synthetic import write_synthetic_bag
from vggt4d_ros.replay.synthetic_rig import rig_cameras
from vggt4d_ros.replay.synthetic_rig import rig_topics
from vggt4d_ros.replay.synthetic_rig import write_synthetic_rig_bag


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
    parser.add_argument('--rig', choices=('stereo', 'front_side'), default=None,
                        help='a two-camera rig (windows of steps x 2 cameras)')
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
    config = ReplayConfig(bag=bag, out_dir=args.out / 'replay', weights=args.weights,
                          device=args.device, window_size=args.window_size,
                          stride=args.stride, network_width=args.network_width,
                          perception=args.perception)
    if args.rig:
        return _rig_demo(args, scene, config)
    write_synthetic_bag(bag, scene, args.storage, sensors=SensorConfig())
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
        velocity = tracks['velocity_error_mean']
        # No matched track (e.g. random weights find no object): no velocity to score.
        velocity_text = f'{velocity:.3f}' if velocity == velocity else 'n/a (no matched track)'
        print(f"[demo] tracks: recall {tracks['recall']:.3f}, id switches "
              f"{tracks['id_switches']}, velocity error {velocity_text}")
    if metrics.get('random_weights'):
        print('[demo] RANDOM weights: these numbers mean nothing about VGGT4D quality')
    print(f'[demo] report: {summary.report}')
    return 0


def _rig_demo(args: argparse.Namespace, scene: SceneConfig, config: ReplayConfig) -> int:
    """Render the two-camera rig, replay it, print the per-camera scores."""
    write_synthetic_rig_bag(config.bag, scene, args.rig, args.storage)
    names = list(rig_cameras(args.rig))
    config = replace(config, image_topics=[rig_topics(name)['image'] for name in names],
                     camera_names=names)
    try:
        summary = run_rig_replay(config)
    except ReplayError as error:
        print(f'[demo] rig replay failed: {error}', file=sys.stderr)
        return 2
    print(f'[demo] {args.rig} rig: {summary.frames_out}/{summary.frames_in} images replayed')
    for name, scores in summary.metrics['cameras_out'].items():
        masks, trajectory = scores['masks'], scores['trajectory']
        line = f'[demo] {name}: '
        line += f"masks J {masks['j_mean']:.3f}, F {masks['f_mean']:.3f}" \
            if 'j_mean' in masks else masks.get('note', '')
        if 'ate_rmse' in trajectory:
            line += f", ATE {trajectory['ate_rmse']:.4f} m"
        print(line)
    if summary.metrics.get('random_weights'):
        print('[demo] RANDOM weights: these numbers mean nothing about VGGT4D quality')
    print(f'[demo] report: {summary.report}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
