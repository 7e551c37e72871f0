# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Benchmark the coarse-mask stage and the refinement's 3D k-means, eager vs CUDA graph.

Times, on random inputs of the pipeline's shapes:

* ``coarse``: :func:`motion.coarse.coarse_masks` (k-means with 64 clusters over the DINOv2
  patch features of all frames, cluster smoothing, upsampling, adaptive multi-Otsu), eagerly
  and replayed from a CUDA graph the way ``VGGT4DPipeline._coarse`` does, with the k-means steps
  eager or ``torch.compile``-d (``CoarseConfig.compile_kmeans``);
* ``kmeans3d``: the refinement's k-means (30 clusters over ``--points`` 3D points per frame,
  a random share invalid, padded to the pipeline's bucket size), eagerly and graphed.

GPU (the target numbers): ``python -m vggt4d_ros.tools.bench_coarse --frames 8 16 32``
(``--profile`` adds the kernel totals of one replay of each graphed variant).
CPU smoke run: ``python -m vggt4d_ros.tools.bench_coarse --device cpu --frames 2 --height 56
--width 70 --dim 64 --points 2000 --repeats 3``.

Prints a markdown table: median milliseconds over ``--repeats`` runs (CUDA events on the GPU,
``time.perf_counter`` on the CPU), the device kernels one eager run launches (torch.profiler on
the GPU; on the CPU the count of non-view aten operators, each of which is at least one kernel
on a GPU), and whether the variant's masks / labels equal the eager ones.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
from typing import Callable, Sequence

import torch
from torch.profiler import profile
from torch.profiler import ProfilerActivity
from torch.utils._python_dispatch import TorchDispatchMode

from vggt4d_ros.motion.coarse import coarse_mask_tensors
from vggt4d_ros.motion.coarse import CoarseConfig
from vggt4d_ros.motion.coarse import feature_clusters
from vggt4d_ros.motion.graphs import bucket_size
from vggt4d_ros.motion.graphs import GraphedFunction
from vggt4d_ros.motion.kmeans import kmeans
from vggt4d_ros.motion.kmeans import KMeansConfig
from vggt4d_ros.motion.kmeans import KMeansSteps
from vggt4d_ros.motion.kmeans import seed_uniforms
from vggt4d_ros.tools.timing import time_ms

PATCH = 14
#: Operators that launch no kernel (allocations, aliases); views are skipped separately.
NO_KERNEL = frozenset({'empty', 'empty_like', 'empty_strided', 'lift_fresh', 'detach', 'alias',
                       '_unsafe_view'})


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, nargs='+', default=[8, 16, 32])
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--dim', type=int, default=1024, help='patch feature channels')
    parser.add_argument('--points', type=int, default=30000,
                        help='3D k-means points per frame (before validity)')
    parser.add_argument('--valid', type=float, default=0.8, help='share of valid 3D points')
    parser.add_argument('--clusters3d', type=int, default=30)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--no-compile', action='store_true',
                        help='skip the torch.compile-d k-means variants')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--profile', action='store_true',
                        help='CUDA: print the kernels of one replay of each graphed variant')
    return parser.parse_args(argv)


class _OperatorCounter(TorchDispatchMode):
    """Count the aten operators below autograd that are neither views nor allocations."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func: torch._ops.OpOverload, types: tuple,
                           args: tuple = (), kwargs: dict | None = None) -> object:
        name = func._schema.name.split('::')[-1]
        if not func.is_view and name not in NO_KERNEL:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


def count_kernels(fn: Callable[[], object], device: torch.device) -> int:
    """Kernels one call of ``fn`` launches (GPU: profiled; CPU: non-view aten operators)."""
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        kernels = [e for e in prof.events() if e.device_type.name == 'CUDA']
        return len(kernels)
    with _OperatorCounter() as counter:
        fn()
    return sum(counter.counts.values())


@dataclasses.dataclass
class Row:
    """One line of the table."""

    stage: str
    variant: str
    frames: int
    size: str
    ms: float
    kernels: str
    same: str

    def markdown(self) -> str:
        return (f'| {self.stage} | {self.variant} | {self.frames} | {self.size} | '
                f'{self.ms:.2f} | {self.kernels} | {self.same} |')


def kernel_table(fn: Callable[[], object], top: int = 15) -> str:
    """Markdown table of the kernels of one ``fn()`` call (CUDA, graph replays included).

    Kernels inside a replayed CUDA graph are traced individually by CUPTI.
    """
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for event in prof.events():
        if event.device_type.name == 'CUDA':
            entry = totals[event.name[:90]]
            entry[0] += 1
            entry[1] += event.time_range.elapsed_us() / 1e3
    lines = ['| kernel | count | total ms |', '|---|---|---|']
    ranked = sorted(totals.items(), key=lambda item: -item[1][1])
    lines += [f'| {name} | {count} | {ms:.3f} |' for name, (count, ms) in ranked[:top]]
    count = sum(c for c, _ in totals.values())
    total = sum(ms for _, ms in totals.values())
    lines.append(f'| all {len(totals)} kinds | {count} | {total:.3f} |')
    return '\n'.join(lines)


def coarse_rows(args: argparse.Namespace, frames: int, device: torch.device,
                profiles: list[tuple[str, str]]) -> list[Row]:
    """Time the coarse stage for ``frames`` frames: eager, graphed, graphed + compiled.

    With ``--profile``, appends (title, kernel table) of each graphed variant to ``profiles``.
    """
    hp, wp = args.height // PATCH, args.width // PATCH
    generator = torch.Generator().manual_seed(frames)
    features = torch.randn(frames, hp * wp, args.dim, generator=generator).to(device)
    saliency = torch.rand(frames, hp, wp, generator=generator).to(device)
    image_hw = (hp * PATCH, wp * PATCH)
    size = f'{frames * hp * wp}x{args.dim}'
    rows, reference = [], None
    variants = [('eager', False, False), ('cuda graph', True, False)]
    if not args.no_compile and device.type == 'cuda':  # compile_kmeans is CUDA-only
        variants += [('eager, compiled k-means', False, True),
                     ('cuda graph, compiled k-means', True, True)]
    for name, graphed, compiled in variants:
        if graphed and device.type != 'cuda':
            continue
        config = CoarseConfig(compile_kmeans=compiled)
        km = feature_clusters(config, frames * hp * wp)
        uniforms = seed_uniforms(km.clusters, 1, km.seed).to(device)
        runner = GraphedFunction(coarse_mask_tensors) if graphed else coarse_mask_tensors
        # One set of step functions per variant, as the pipeline keeps one (compiles once).
        steps = KMeansSteps(compiled=compiled)

        def run(runner=runner, config=config, uniforms=uniforms,
                steps=steps) -> tuple[torch.Tensor, ...]:
            return runner(saliency, features, uniforms, image_hw=image_hw, config=config,
                          steps=steps)

        outputs = run()
        reference = outputs if reference is None else reference
        same = (torch.equal(outputs[3], reference[3]) and torch.equal(outputs[4], reference[4]))
        kernels = str(count_kernels(run, device)) if not graphed else '1 graph'
        rows.append(Row('coarse', name, frames, size, time_ms(run, device, args.repeats),
                        kernels, 'yes' if same else 'no'))
        if args.profile and graphed:
            profiles.append((f'coarse, {name}, {frames} frames', kernel_table(run)))
    return rows


def _cluster_labels(points: torch.Tensor, valid: torch.Tensor, uniforms: torch.Tensor, *,
                    config: KMeansConfig) -> tuple[torch.Tensor]:
    """Labels of the refinement's k-means as a 1-tuple (the pipeline's graphed form)."""
    return (kmeans(points, config, valid, uniforms)[0],)


def kmeans3d_rows(args: argparse.Namespace, frames: int, device: torch.device) -> list[Row]:
    """Time the refinement's 3D k-means: eager on the raw count, graphed on the bucket size."""
    generator = torch.Generator().manual_seed(100 + frames)
    count = args.points
    padded = bucket_size(count, ratio=2.0)  # what VGGT4DPipeline._cluster pads to
    points = torch.zeros(frames, padded, 3)
    points[:, :count] = 3 * torch.randn(frames, count, 3, generator=generator)
    valid = torch.zeros(frames, padded, dtype=torch.bool)
    valid[:, :count] = torch.rand(frames, count, generator=generator) < args.valid
    points, valid = points.to(device), valid.to(device)
    config = KMeansConfig(clusters=args.clusters3d)
    uniforms = seed_uniforms(config.clusters, frames, config.seed).to(device)
    rows = []
    eager = kmeans(points[:, :count], config, valid[:, :count], uniforms)[0]

    def run_eager() -> torch.Tensor:
        return kmeans(points[:, :count], config, valid[:, :count], uniforms)[0]

    rows.append(Row('kmeans3d', 'eager', frames, f'{count}x3', time_ms(run_eager, device,
                    args.repeats), str(count_kernels(run_eager, device)), 'yes'))
    if device.type == 'cuda':
        graphed = GraphedFunction(_cluster_labels)

        def run_graphed() -> torch.Tensor:
            return graphed(points, valid, uniforms, config=config)[0]

        same = torch.equal(run_graphed()[:, :count], eager)
        rows.append(Row('kmeans3d', 'cuda graph', frames, f'{padded}x3 (bucket)',
                        time_ms(run_graphed, device, args.repeats), '1 graph',
                        'yes' if same else 'no'))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the markdown table."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    print(f'# Coarse stage and 3D k-means, {args.height}x{args.width}, torch {torch.__version__}'
          f', {name}, median of {args.repeats}')
    print('| stage | variant | frames | points | ms | kernels (eager run) | same as eager |')
    print('|---|---|---|---|---|---|---|')
    profiles: list[tuple[str, str]] = []
    with torch.inference_mode():
        for frames in args.frames:
            rows = coarse_rows(args, frames, device, profiles)
            for row in rows + kmeans3d_rows(args, frames, device):
                print(row.markdown(), flush=True)
    for title, table in profiles:
        print(f'\n## Kernels of one replay: {title}\n{table}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
