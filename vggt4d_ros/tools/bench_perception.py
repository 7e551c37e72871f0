# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Added time of the planner outputs per window (dynamic cloud, tracks, grids), no network.

The synthetic scene (ball and crate in a room) runs through the oracle backend and the engine
at the network resolution of a 640x480 camera (392 x 518, windows of 8 frames, 4 new); the
engine is not timed. Timed per window: ``observations_from_window`` plus
``PerceptionTracker.update`` on the window's new frames, with the window results on
``--device`` (the torch stages run there), for a few settings. On CUDA the device is
synchronised before and after each window (wall time, what the node's worker thread pays)
and CUDA events give the GPU time; a warm-up pass runs first. The stage split comes from a
second pass with ``sync_timings`` (each stage waits for the device). Prints a markdown table
(wall ms per window p50 / p95 / max, GPU ms p50, stage means).

    python -m vggt4d_ros.tools.bench_perception --windows 20
    python -m vggt4d_ros.tools.bench_perception --device cuda   # the torch path on the GPU
    python -m vggt4d_ros.tools.bench_perception --device cuda --no-cuda-graphs  # all eager
    python -m vggt4d_ros.tools.bench_perception --only 'all outputs (grid stride 8)'
    python -m vggt4d_ros.tools.bench_perception --blobs 60   # many short-lived objects
    python -m vggt4d_ros.tools.bench_perception --device cuda --only 'cloud only' --profile 15

``--profile N`` adds, per setting, one more pass under ``torch.profiler`` (device kernels per
window: count and summed time, against the pass's wall time: how busy the GPU is) and under
``cProfile`` (the host's Python functions), each with its N largest rows.
"""

from __future__ import annotations

import argparse
import cProfile
from dataclasses import replace
import io
import pstats
import platform
import time

import numpy as np
import torch

from vggt4d_ros.runtime.sink import EngineOutput
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.runtime.window import WindowConfig
from vggt4d_ros.perception.config import GridConfig
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.perception.observation import observations_from_window
from vggt4d_ros.perception.perception_tracker import PerceptionTracker
from vggt4d_ros.perception.perception_tracker import STAGES
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticOracleView
from vggt4d_ros.replay.synthetic import SyntheticScene


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--windows', type=int, default=12, help='timed windows')
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--window-size', type=int, default=8)
    parser.add_argument('--stride', type=int, default=4, help='new frames per window')
    parser.add_argument('--fps', type=float, default=15.0)
    parser.add_argument('--device', default='cpu', help='where the window results live')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--seed', type=int, default=17)
    parser.add_argument('--blobs', type=int, default=0, metavar='N',
                        help="replace each frame's dynamic mask by N random discs (3-12 px "
                             'radius, new places every window): the worst case of a node '
                             'with random weights, hundreds of short-lived objects')
    parser.add_argument('--only', action='append', default=[], metavar='TEXT',
                        help='time only the settings whose label contains TEXT (repeatable)')
    parser.add_argument('--profile', type=int, default=0, metavar='N',
                        help='after the timed pass, profile one more pass (torch.profiler and '
                             'cProfile) and print the N largest rows of each')
    parser.add_argument('--split-passes', type=int, default=1, metavar='N',
                        help='the stage columns: median of N synced passes (the first of '
                             'which records the CUDA graphs)')
    parser.add_argument('--no-cuda-graphs', action='store_true',
                        help='run every stage eagerly on CUDA (perception.cuda_graphs off)')
    return parser.parse_args(argv)


def _windows(args: argparse.Namespace) -> tuple[list[EngineOutput], float]:
    """Engine outputs of the synthetic scene (untimed) and the first window's scale."""
    frames = args.window_size + args.stride * (args.windows - 1)
    scene = SyntheticScene(SceneConfig(num_frames=frames, fps=args.fps, seed=args.seed,
                                       supersample=1))
    backend = OracleBackend(scene=SyntheticOracleView(scene),
                            network_hw=(args.height, args.width), seed=args.seed)
    window = WindowConfig(window_size=args.window_size, stride=args.stride,
                          min_parallax_px=0, max_keyframe_interval_s=0)
    engine = PerceptionEngine(backend, window, MapperConfig())
    outputs = []
    for i in range(frames):
        stamp = int(round(i * 1e9 / args.fps))
        outputs.extend(engine.push(backend.camera_image(stamp), stamp))
    outputs.extend(engine.flush())
    for index, out in enumerate(outputs):
        if args.blobs:
            out.result.refined_masks = _blob_masks(out.result.refined_masks.shape, args.blobs,
                                                   args.seed + index)
        out.result = out.result.to(args.device)
    return outputs, backend.window_scales[0]


def _masks_label(blobs: int) -> str:
    return f'{blobs} random discs per frame' if blobs else "the scene's objects"


def _blob_masks(shape: torch.Size, count: int, seed: int) -> torch.Tensor:
    """[S,h,w] bool: ``count`` discs of 3-12 px radius at random places in every frame."""
    frames, height, width = shape
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:height, :width]
    masks = np.zeros(shape, bool)
    for mask in masks:
        for y, x, r in zip(rng.integers(0, height, count), rng.integers(0, width, count),
                           rng.integers(3, 13, count)):
            mask |= (rows - y) ** 2 + (cols - x) ** 2 <= r * r
    return torch.from_numpy(masks)


def _settings(scale: float) -> dict[str, PerceptionConfig]:
    """Return the configurations to time; lengths in the run's map units (scene metres x scale)."""
    grid = GridConfig(resolution=0.05 * scale, width=200, height=200,
                      origin_xy=(-5.0 * scale, -5.0 * scale), ground_z=0.0,
                      min_height=0.05 * scale, max_height=1.5 * scale, max_range=10 * scale)
    base = PerceptionConfig(grid=grid)
    return {
        'all outputs (grid stride 8)': base,
        'all outputs (grid stride 16)': replace(base, grid=replace(grid, pixel_stride=16)),
        'cloud + tracks (grids off)': replace(base, grid=replace(grid, enabled=False)),
        'cloud + tracks, surface centre (grids off)': replace(
            base, grid=replace(grid, enabled=False),
            tracker=replace(base.tracker, centre_model='surface')),
        'cloud + tracks, motion registration (grids off)': replace(
            base, grid=replace(grid, enabled=False),
            tracker=replace(base.tracker, motion_registration=True)),
        'cloud only': replace(base, grid=replace(grid, enabled=False),
                              tracker=replace(base.tracker, enabled=False)),
    }


def _time(outputs: list[EngineOutput], tracker: PerceptionTracker, device: str
          ) -> tuple[np.ndarray, np.ndarray, int]:
    """Wall ms and GPU ms (CUDA events; NaN on the CPU) per window, most tracks."""
    cuda = device.startswith('cuda')
    tracker.reset()  # tracks and grids start again; recorded CUDA graphs are kept
    totals, gpu, tracks = [], [], 0
    for out in outputs:
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                enable_timing=True)
            torch.cuda.synchronize()
            start.record()
        tic = time.perf_counter()
        result = tracker.update(observations_from_window(out.result, out.update))
        if cuda:
            end.record()
            torch.cuda.synchronize()
        totals.append(time.perf_counter() - tic)
        gpu.append(start.elapsed_time(end) if cuda else float('nan'))
        tracks = max(tracks, len(result.tracks))
    return np.array(totals) * 1e3, np.array(gpu), tracks


def _stages(outputs: list[EngineOutput], config: PerceptionConfig, passes: int = 1
            ) -> dict[str, float]:
    """Ms per window of each stage (the device waited for at every stage boundary).

    Each stage's mean over the windows of a pass, the median over ``passes`` passes: one
    tracker, reset between passes, so only the first records CUDA graphs, and the host
    stages (a fraction of a ms) are steadier than one pass's mean on a busy machine.
    """
    tracker = PerceptionTracker(config, sync_timings=True)
    means = []
    for _ in range(passes):
        tracker.reset()
        stages = dict.fromkeys(('copy',) + STAGES, 0.0)
        for out in outputs:
            tic = time.perf_counter()
            frames = observations_from_window(out.result, out.update)
            stages['copy'] += time.perf_counter() - tic
            for name, seconds in tracker.update(frames).timings.items():
                stages[name] += seconds
        means.append({k: v * 1e3 / len(outputs) for k, v in stages.items()})
    return {k: float(np.median([mean[k] for mean in means])) for k in means[0]}


def _one_pass(outputs: list[EngineOutput], tracker: PerceptionTracker) -> None:
    """Run every window through ``tracker`` once (untimed; the profiled passes)."""
    for out in outputs:
        tracker.update(observations_from_window(out.result, out.update))


def _profile(outputs: list[EngineOutput], tracker: PerceptionTracker, device: str,
             rows: int) -> str:
    """Return a report of one more pass: device kernels per window and the host's hot spots.

    The kernels (``torch.profiler``, CUDA only; replays of CUDA graphs included) give how
    busy the GPU is next to the pass's wall time; ``cProfile`` gives the host's Python
    functions (numpy calls included), which the torch profiler does not see.
    """
    from torch.profiler import profile
    from torch.profiler import ProfilerActivity

    cuda = device.startswith('cuda')
    lines = []
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    tracker.reset()
    tic = time.perf_counter()
    with profile(activities=activities) as prof:
        _one_pass(outputs, tracker)
        if cuda:
            torch.cuda.synchronize()
    wall = (time.perf_counter() - tic) * 1e3 / len(outputs)
    sort = 'self_cpu_time_total'
    if cuda:
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.time_range.elapsed_us() for e in kernels) * 1e-3 / len(outputs)
        lines.append(f'device kernels per window: {len(kernels) / len(outputs):.0f}, '
                     f'{busy:.2f} ms summed, against {wall:.2f} ms wall per window '
                     '(profiled pass)')
        sort = 'self_device_time_total'
    lines.append(prof.key_averages().table(sort_by=sort, row_limit=rows))
    tracker.reset()
    host = cProfile.Profile()
    host.enable()
    _one_pass(outputs, tracker)
    host.disable()
    text = io.StringIO()
    pstats.Stats(host, stream=text).sort_stats('tottime').print_stats(rows)
    lines.append(text.getvalue())
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    outputs, scale = _windows(args)
    outputs = outputs[1:]  # the first window has 8 new frames; time the steady state
    name = (torch.cuda.get_device_name(args.device) if args.device.startswith('cuda')
            else platform.processor() or platform.machine())
    print(f'# bench_perception: {len(outputs)} windows of {args.window_size} frames '
          f'({args.stride} new) at {args.height}x{args.width}, device {args.device} ({name}), '
          f'dynamic masks: {_masks_label(args.blobs)}, '
          f'{args.threads} torch thread(s), torch {torch.__version__}, CUDA graphs '
          f'{"off" if args.no_cuda_graphs else "on (CUDA only)"}')
    print()
    print('| setting | p50 ms | p95 ms | max ms | GPU p50 | copy | ' + ' | '.join(STAGES)
          + ' | tracks |')
    print('|---|---|---|---|---|---|' + '---|' * len(STAGES) + '---|')
    profiles = []
    for label, config in _settings(scale).items():
        if args.only and not any(text in label for text in args.only):
            continue
        config = replace(config, cuda_graphs=not args.no_cuda_graphs)
        tracker = PerceptionTracker(config)
        if args.device.startswith('cuda'):
            # Warm-up: kernels, allocator and the CUDA graphs' recordings (one per bucket,
            # ~10 ms each, once in a node's life), so the timed pass is the steady state.
            _time(outputs, tracker, args.device)
        totals, gpu, tracks = _time(outputs, tracker, args.device)
        stages = _stages(outputs, config, args.split_passes)
        split = ' | '.join(f'{stages[k]:.2f}' for k in ('copy',) + STAGES)
        print(f'| {label} | {np.percentile(totals, 50):.2f} | {np.percentile(totals, 95):.2f} '
              f'| {totals.max():.2f} | {np.median(gpu):.2f} | {split} | {tracks} |')
        if args.profile:
            profiles.append(f'## {label}\n\n```\n'
                            f'{_profile(outputs, tracker, args.device, args.profile)}```\n')
    for text in profiles:
        print()
        print(text)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
