# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Benchmark the VGGT4D window pipeline stage by stage (random weights, random images).

GPU (the target numbers):
    python -m vggt4d_ros.tools.bench_pipeline --frames 8 16 32 --height 392 --width 518

Multi-camera rigs (views x steps; ``--frames`` counts all images of a window):
    python -m vggt4d_ros.tools.bench_pipeline --frames 8 --views 1 2 4 --height 392 --width 518

Attention backend and fast mode (issue 17):
    python -m vggt4d_ros.tools.bench_pipeline --frames 8 16 32 --compile --attention flash4
    python -m vggt4d_ros.tools.bench_pipeline --frames 8 16 32 --compile --precision fast

Serial against two-stream windows (``PipelineConfig.overlap_streams``), one compiled model:
    python -m vggt4d_ros.tools.bench_pipeline --frames 8 --compile --overlap-streams both

CPU smoke run:
    python -m vggt4d_ros.tools.bench_pipeline --config tiny --device cpu --frames 4 \
        --height 56 --width 70 --dtype fp32

Prints a markdown table: median seconds per stage over the timed runs and the peak device
memory (``torch.cuda.max_memory_allocated``, weights included). Random weights say nothing
about mask quality, and the refinement's cost depends on how many pixels the coarse mask
holds (random weights give arbitrary masks; the table reports the coarse-mask fraction: the
window's mean and its fullest frame's, which sets the refinement's padded candidate count).
The ``cluster`` and ``refine`` stages are launch-bound: their CUDA-event times follow the host's
speed as much as their work; ``--torch-profile 8`` prints each stage's kernel count and kernel
time next to its timer.

With ``--overlap-streams on|both`` the stages the pipeline queues on its side stream are marked
with ``*`` (``VGGT4DPipeline.side_stages``): their times overlap the main stream's cues, coarse
and pass 2, so the stage columns add up to more than ``total``, which stays the window's span
on the device; the ``side`` column is the side stream's span. ``both`` times every window
serially and overlapped with the same model and checks that the two results are identical
(and that two serial runs are). ``--main-priority default high`` adds an overlapped row with
the window on a high-priority stream (its side stream then yields to it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time
from typing import Iterator, Sequence

import torch
from torch.nn.attention import sdpa_kernel
from torch.nn.attention import SDPBackend

from vggt4d_ros.model.attention import BACKENDS
from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.prepare import prepare_model
from vggt4d_ros.motion.refine import RefineConfig
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.motion.rig import RigLayout

dataclasses_replace = dataclasses.replace

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}
COLUMNS = ('pass1', 'heads1', 'cues', 'coarse', 'pass2', 'prepare', 'cluster', 'refine',
           'total')
OVERLAP_SETTINGS = ('off', 'on', 'both')
#: WindowResult fields the serial and the overlapped window must give bit for bit.
COMPARED = ('depth', 'depth_conf', 'intrinsics', 'extrinsics', 'saliency', 'coarse_masks',
            'refined_masks')
# SDPA backend orders to compare ('default' = PyTorch's own choice).
SDPA_ORDERS = {
    'cudnn': [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION,
              SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
    'flash': [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
    'efficient': [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, nargs='+', default=[8, 16, 32])
    parser.add_argument('--views', type=int, nargs='+', default=[1],
                        help='cameras of the rig: each window is views x (frames / views) '
                             'steps, step-major (1 = a single camera)')
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--config', choices=('full', 'tiny'), default='full')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', choices=tuple(DTYPES), default='bf16',
                        help='compute dtype of the network')
    parser.add_argument('--weights', choices=('cast', 'autocast'), default='cast',
                        help="'cast': weights in --dtype (fastest); 'autocast': fp32 weights "
                             'under autocast (the release mode)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--refine-mode', choices=('cluster', 'gradient', 'off'),
                        default='cluster')
    parser.add_argument('--neighbour-search', choices=('image', 'exact'), default='image')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the aggregator in place (slow first run)')
    parser.add_argument('--compile-mode', default=None,
                        help="torch.compile mode, e.g. 'max-autotune-no-cudagraphs'")
    parser.add_argument('--no-graphs', action='store_true',
                        help='run the post-processing eagerly (no CUDA graphs)')
    parser.add_argument('--profile', action='store_true',
                        help='synchronise after every stage (wall-clock stage times)')
    parser.add_argument('--attention', default='sdpa',
                        choices=BACKENDS,
                        help='attention backend (PipelineConfig.attention); a kernel that '
                             'cannot run a call falls back to sdpa, logged once')
    parser.add_argument('--precision', default='exact', choices=('exact', 'fast'),
                        help="PipelineConfig.precision: 'fast' = FP8 GEMMs in the aggregator "
                             '(results deviate: tools/bench_fast_mode.py)')
    parser.add_argument('--fp8-scaling', default='row', choices=('row', 'tensor'),
                        help='PipelineConfig.fp8_scaling (fast mode only)')
    parser.add_argument('--sdpa', nargs='+', default=['default'],
                        choices=('default',) + tuple(SDPA_ORDERS),
                        help='SDPA backend priority orders to compare (one table each)')
    parser.add_argument('--torch-profile', type=int, default=0, metavar='FRAMES',
                        help='profile one window of FRAMES frames with torch.profiler and '
                             'print the kernel time and launch count of every stage')
    parser.add_argument('--profile-top', type=int, default=12,
                        help='kernels listed per stage with --torch-profile')
    parser.add_argument('--overlap-streams', choices=OVERLAP_SETTINGS, default='off',
                        help="PipelineConfig.overlap_streams: 'on' queues the heads and the "
                             "refinement's pose-free half on a second CUDA stream; 'both' "
                             'times each window serially, then overlapped (one model) and '
                             'checks the results are identical')
    parser.add_argument('--main-priority', nargs='+', choices=('default', 'high'),
                        default=['default'],
                        help='overlapped rows: run each window on the current stream '
                             "('default') and/or on a new high-priority stream ('high'), so "
                             'that the main stream outranks the side stream (one row each)')
    parser.add_argument('--overlap-start', nargs='+', choices=('pass1', 'coarse'),
                        default=['pass1'],
                        help='overlapped rows: PipelineConfig.overlap_start, where the side '
                             "stream starts ('pass1' or 'coarse'; one row each)")
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


@contextlib.contextmanager
def attention_backends(name: str) -> Iterator[None]:
    """Run SDPA with the backend priority order ``name`` ('default': PyTorch's choice)."""
    if name == 'default':
        yield
        return
    with sdpa_kernel(SDPA_ORDERS[name], set_priority=True):
        yield


def build_pipeline(args: argparse.Namespace) -> VGGT4DPipeline:
    torch.manual_seed(args.seed)
    config = VGGTConfig.full() if args.config == 'full' else VGGTConfig.tiny()
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    with device:  # initialise on the device: far faster than 1.26 B parameters on the CPU
        model = VGGT(config).eval()
    if args.weights == 'cast':
        model = model.to(dtype)
    model = model.to(device)
    refine = RefineConfig(mode='cluster' if args.refine_mode == 'off' else args.refine_mode,
                          neighbour_search=args.neighbour_search)
    pipe_config = PipelineConfig(refine=refine, refine_enabled=args.refine_mode != 'off',
                                 profile=args.profile, cuda_graphs=not args.no_graphs,
                                 compile_model=args.compile, compile_mode=args.compile_mode,
                                 attention=args.attention, precision=args.precision,
                                 fp8_scaling=args.fp8_scaling,
                                 overlap_streams=args.overlap_streams == 'on')
    model = prepare_model(model, pipe_config, device)
    return VGGT4DPipeline(model, pipe_config, device=device, dtype=dtype)


@contextlib.contextmanager
def window_stream(priority: str, device: torch.device) -> Iterator[None]:
    """Run the block on a new high-priority CUDA stream ('high') or the current one.

    The pipeline's main stream is the caller's current stream: with 'high' the window's
    critical path (pass 1, cues, coarse, pass 2, refine) outranks its side stream when both
    have blocks waiting for the device.
    """
    if priority == 'default' or device.type != 'cuda':
        yield
        return
    outer = torch.cuda.current_stream(device)
    stream = torch.cuda.Stream(device, priority=-1)  # lower number = higher priority
    stream.wait_stream(outer)  # the images were made on the outer stream
    with torch.cuda.stream(stream):
        yield
    outer.wait_stream(stream)


def bench_one(pipe: VGGT4DPipeline, layout: RigLayout, args: argparse.Namespace,
              priority: str = 'default'
              ) -> tuple[dict[str, float], list[WindowResult]]:
    """Median stage times of ``layout``'s windows, and the first and last timed results.

    ``priority``: the main stream's, as :func:`window_stream`.
    """
    device = pipe.device
    frames = layout.num_frames
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.rand(frames, 3, args.height, args.width, generator=gen).to(device)
    stamps = layout.step_of_frame  # the views of one step share its stamp
    first_runs = []
    for _ in range(args.warmup):
        begin = time.perf_counter()
        with window_stream(priority, device):
            pipe.run_tensor(images, stamps, layout=layout)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        first_runs.append(time.perf_counter() - begin)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    runs: list[dict[str, float]] = []
    results: list[WindowResult] = []
    coarse_fraction = coarse_max = 0.0
    for _ in range(args.repeats):
        begin = time.perf_counter()
        with window_stream(priority, device):
            result = pipe.run_tensor(images, stamps, layout=layout)
        results[1:] = []  # keep the first and the last
        results.append(result)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        timings = dict(result.timings)
        timings['wall'] = time.perf_counter() - begin
        runs.append(timings)
        coarse_fraction = float(result.coarse_masks.float().mean())
        # The refinement pads every frame's candidates to the largest count: its work
        # follows the fullest frame, not the mean.
        coarse_max = float(result.coarse_masks.flatten(1).float().mean(1).max())
    row = {name: statistics.median(r.get(name, 0.0) for r in runs) for name in runs[0]}
    row['peak_gib'] = (torch.cuda.max_memory_allocated(device) / 2**30
                       if device.type == 'cuda' else float('nan'))
    row['coarse_fraction'] = coarse_fraction
    row['coarse_max'] = coarse_max
    # Warm-up cost: the first window of this size (compilation, graph recording).
    row['first'] = first_runs[0] if first_runs else float('nan')
    return row, results


def differing_fields(serial: WindowResult, overlapped: WindowResult) -> list[str]:
    """Return the :data:`COMPARED` fields two windows' results differ in (empty: identical)."""
    return [name for name in COMPARED
            if not torch.equal(getattr(serial, name), getattr(overlapped, name))]


def format_table(rows: dict[str, dict[str, float]],
                 side_stages: dict[str, Sequence[str]] | None = None) -> str:
    """Markdown table; rows keyed by the window label (frames, or views x steps).

    ``side_stages``: per row label, the stages that ran on the side stream (marked ``*``).
    """
    side_stages = side_stages or {}
    # total is the window's span on the device (first stage start to last stage end).
    header = ('| window | ' + ' | '.join(f'{c} (s)' for c in COLUMNS)
              + ' | side (s) | wall (s) | peak GiB | coarse px | max frame px | first run (s) |')
    lines = [header, '|' + '---|' * (len(COLUMNS) + 7)]
    for frames, row in rows.items():
        marked = side_stages.get(frames, ())
        cells = [f'{row.get(c, 0.0):.4f}' + ('*' if c in marked else '') for c in COLUMNS]
        side = f"{row['side']:.4f}" if 'side' in row else '-'
        lines.append(f'| {frames} | ' + ' | '.join(cells) + f' | {side}'
                     + f" | {row['wall']:.4f} | {row['peak_gib']:.2f}"
                     + f" | {100 * row['coarse_fraction']:.1f}%"
                     + f" | {100 * row['coarse_max']:.1f}% | {row['first']:.1f} |")
    return '\n'.join(lines)


def profile_stages(pipe: VGGT4DPipeline, frames: int, args: argparse.Namespace) -> str:
    """Kernel time, kernel count and top kernels of each stage of one window.

    The window runs with a device synchronisation after every stage, so a kernel belongs to
    the stage whose host-side interval contains its start.
    """
    from torch.profiler import profile, ProfilerActivity, record_function
    device = pipe.device
    images = torch.rand(frames, 3, args.height, args.width, device=device)
    stamps = list(range(frames))
    pipe.config = dataclasses_replace(pipe.config, profile=True)
    pipe.run_tensor(images, stamps)
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        with record_function('window'):
            result = pipe.run_tensor(images, stamps)
    stage_events = [e for e in prof.events() if e.name.startswith('stage:')]
    kernels = [e for e in prof.events() if e.device_type.name == 'CUDA']
    lines = [f'## torch.profiler, {frames} frames (synchronised stages)']
    for stage in stage_events:
        begin, end = stage.time_range.start, stage.time_range.end
        inside = [k for k in kernels if begin <= k.time_range.start < end]
        busy = sum(k.time_range.elapsed_us() for k in inside)
        by_name: dict[str, list[float]] = {}
        for k in inside:
            by_name.setdefault(k.name, []).append(k.time_range.elapsed_us())
        lines.append(f'{stage.name[6:]}: wall {(end - begin) / 1000:.2f} ms, kernels '
                     f'{len(inside)}, kernel time {busy / 1000:.2f} ms, '
                     f'timer {1000 * result.timings.get(stage.name[6:], 0.0):.2f} ms')
        top = sorted(by_name.items(), key=lambda item: -sum(item[1]))[:args.profile_top]
        for name, times in top:
            lines.append(f'    {sum(times) / 1000:7.2f} ms {len(times):5d}x {name[:90]}')
    pipe.config = dataclasses_replace(pipe.config, profile=args.profile)
    return '\n'.join(lines)


def layouts(frames: Sequence[int], views: Sequence[int]) -> list[RigLayout]:
    """Every (frames, views) combination as a rig layout; frames must be whole steps."""
    return [RigLayout.for_frames(count, num_views) for count in frames for num_views in views]


def _label(layout: RigLayout, overlap: bool = False, priority: str = 'default',
           start: str = 'pass1') -> str:
    """'8' for one camera, '2x4' (views x steps) for a rig; ' overlap' for two streams.

    ' hi': the main stream at high priority; ' @coarse': the side stream starts after the
    coarse stage (``PipelineConfig.overlap_start``).
    """
    label = str(layout.num_frames) if layout.num_views == 1 \
        else f'{layout.num_views}x{layout.num_steps}'
    return label + (' overlap' if overlap else '') + (' hi' if priority == 'high' else '') \
        + (' @coarse' if overlap and start == 'coarse' else '')


def variants(args: argparse.Namespace) -> list[tuple[bool, str, str]]:
    """(overlap_streams, main-stream priority, overlap_start) of every row, serial first."""
    overlapped = [(True, priority, start) for start in args.overlap_start
                  for priority in args.main_priority]
    return {'off': [(False, 'default', 'pass1')], 'on': overlapped,
            'both': [(False, 'default', 'pass1')] + overlapped}[args.overlap_streams]


def bench_layouts(pipe: VGGT4DPipeline, args: argparse.Namespace) -> tuple[
        dict[str, dict[str, float]], dict[str, tuple[str, ...]], list[str]]:
    """Time every layout in each ``--overlap-streams`` / ``--main-priority`` setting.

    Returns:
        rows by label, the side-stream stages by label, and result checks: whether the
        serial windows repeat bit for bit, and whether each overlapped window's result
        equals the serial one (with ``both``).

    """
    rows: dict[str, dict[str, float]] = {}
    marks: dict[str, tuple[str, ...]] = {}
    checks: list[str] = []
    for layout in layouts(args.frames, args.views):
        serial = None
        for overlap, priority, start in variants(args):
            pipe.config = dataclasses_replace(pipe.config, overlap_streams=overlap,
                                              overlap_start=start)
            label = _label(layout, overlap, priority, start)
            rows[label], results = bench_one(pipe, layout, args, priority)
            marks[label] = pipe.side_stages(layout.num_frames)
            if not results:
                continue
            if not overlap:
                serial = results[-1]
                if len(results) == 2:
                    checks.append(_check(f'{label}: serial runs', 'repeat bit for bit',
                                         differing_fields(results[0], results[1])))
            elif serial is not None:
                checks.append(_check(f'{label}: overlapped result',
                                     'identical to the serial one',
                                     differing_fields(serial, results[-1])))
    return rows, marks, checks


def _check(subject: str, same: str, differ: list[str]) -> str:
    return f"{subject} {same}" if not differ else f"{subject} DIFFER in {', '.join(differ)}"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    pipe = build_pipeline(args)
    device_name = (torch.cuda.get_device_name(pipe.device) if pipe.device.type == 'cuda'
                   else 'cpu')
    for order in args.sdpa:
        with attention_backends(order):
            rows, marks, checks = bench_layouts(pipe, args)
            print(f'VGGT4D pipeline, {args.config} model, {args.height}x{args.width}, '
                  f'{args.dtype} ({args.weights}), refine={args.refine_mode}, '
                  f'compile={args.compile} ({args.compile_mode}), '
                  f'graphs={not args.no_graphs}, sdpa={order}, attention={args.attention}, '
                  f'precision={args.precision} ({args.fp8_scaling}), profile={args.profile}, '
                  f'overlap_streams={args.overlap_streams}, torch {torch.__version__}, '
                  f'{device_name}')
            print(format_table(rows, marks), flush=True)
            if any(marks.values()):
                print('* ran on the side stream, overlapping cues/coarse/pass2: the stage '
                      'columns add up to more than total (the span on the device)')
            for line in checks:
                print(line, flush=True)
            if args.torch_profile:
                print(profile_stages(pipe, args.torch_profile, args), flush=True)


if __name__ == '__main__':
    main()
