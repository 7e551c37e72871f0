# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Cost of the mask refinement (VGGT4D stage 3) and of its parts, on a synthetic window.

The window is plausible network output without a network: per frame a smooth depth surface
with a box in front of it that moves across the frames, a translating camera, smooth colours
and coarse masks on the box (~15 % of the image). Times (median of ``--repeats`` after
``--warmup`` calls; CUDA events on CUDA, wall clock on the CPU):

- the image-window kNN mean distance of the outlier removal, compiled and eager;
- the whole outlier removal (``statistical_inliers``);
- the 3D k-means of the candidates, eager and as the pipeline runs it (CUDA graphs), on CUDA
  also with the steps compiled for any candidate count (the pipeline with ``compile_model``);
- the final closing + dilation;
- ``refine_masks`` with the pipeline's k-means (the number the pipeline sees), and on CUDA
  also with the eager kNN (``compile_search=False``).

GPU machine::

    python -m vggt4d_ros.tools.bench_refine                      # 8 x 392 x 518 on CUDA
    python -m vggt4d_ros.tools.bench_refine --profile            # + top kernels of one call
    python -m vggt4d_ros.tools.bench_refine --coverage 0.05 0.15 0.3 0.6   # one table each

CPU check (small)::

    python -m vggt4d_ros.tools.bench_refine --device cpu --height 98 --width 126 --repeats 3
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from dataclasses import replace
from typing import Callable, Sequence

import torch

from vggt4d_ros.geometry.unproject import backproject
from vggt4d_ros.geometry.unproject import PIXEL_CENTRE
from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.motion.kmeans import kmeans
from vggt4d_ros.motion.kmeans import KMeansConfig
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.prepare import prepare_model
from vggt4d_ros.motion.refine import ClusterFn
from vggt4d_ros.motion.refine import compact_candidates
from vggt4d_ros.motion.refine import CompiledKnn
from vggt4d_ros.motion.refine import close_then_dilate
from vggt4d_ros.motion.refine import mean_knn_distance_image
from vggt4d_ros.motion.refine import refine_masks
from vggt4d_ros.motion.refine import RefineConfig
from vggt4d_ros.motion.refine import statistical_inliers
from vggt4d_ros.tools.timing import time_ms


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--frames', type=int, default=8)
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3, help='untimed calls (compiles too)')
    parser.add_argument('--frame-chunk', type=int, default=2, help='frames per kNN batch')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--compile-cpu', action='store_true',
                        help='also time the compiled kNN on the CPU (slow compile)')
    parser.add_argument('--profile', action='store_true',
                        help='print the top kernels of one refine_masks call')
    parser.add_argument('--coverage', type=float, nargs='+', default=[0.15],
                        help='fraction of each frame in the coarse mask (the moving box); '
                             'the k-means cost follows it')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


@dataclass
class Window:
    """Synthetic refinement inputs (shapes as ``refine_masks`` takes them)."""

    images: torch.Tensor  # [S,3,h,w]
    depth: torch.Tensor  # [S,h,w]
    coarse: torch.Tensor  # [S,h,w] bool
    cam_to_world: torch.Tensor  # [S,4,4]
    intrinsics: torch.Tensor  # [S,3,3]


def make_window(frames: int, height: int, width: int, seed: int,
                device: torch.device, coverage: float = 0.15) -> Window:
    """Build a smooth surface, a box moving in front of it, a translating camera.

    ``coverage``: the box's share of each frame (at most ~0.8).
    """
    scale = (coverage / 0.15) ** 0.5
    half_u, half_v = min(0.45 * scale, 0.95), min(0.33 * scale, 0.89)
    generator = torch.Generator().manual_seed(seed)
    v, u = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width),
                          indexing='ij')
    focal = 0.9 * width
    intrinsics = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    depth, images, coarse, poses = [], [], [], []
    for frame in range(frames):
        shift = 0.6 * frame / max(frames - 1, 1) - 0.3  # the box sweeps 30 % of the width
        box = ((u - shift).abs() < half_u) & ((v - 0.1).abs() < half_v)
        surface = 4 + 0.5 * torch.sin(2 * u + 0.1 * frame) + 0.3 * torch.cos(3 * v)
        noise = 0.005 * torch.randn(height, width, generator=generator)
        depth.append(torch.where(box, 2.0 + 0.1 * u, surface) * (1 + noise))
        colour = torch.stack([0.5 + 0.3 * torch.sin(5 * u), 0.5 + 0.3 * torch.cos(4 * v),
                              0.5 + 0.2 * torch.sin(3 * (u + v))])
        images.append(torch.where(box, torch.tensor([0.8, 0.2, 0.2]).view(3, 1, 1), colour))
        coarse.append(box)
        pose = torch.eye(4)
        pose[0, 3] = 0.02 * frame
        poses.append(pose)
    return Window(images=torch.stack(images).to(device), depth=torch.stack(depth).to(device),
                  coarse=torch.stack(coarse).to(device),
                  cam_to_world=torch.stack(poses).to(device),
                  intrinsics=intrinsics.expand(frames, 3, 3).contiguous().to(device))


def pipeline_cluster_fn(device: torch.device, compiled: bool = False) -> ClusterFn:
    """Return the refinement k-means exactly as ``VGGT4DPipeline`` runs it (graphs on CUDA).

    The pipeline is built around a tiny random VGGT: only its clustering is used.
    ``compiled``: as with ``compile_model`` on CUDA (k-means steps compiled, dynamic shapes).
    """
    config = PipelineConfig(refine=RefineConfig(compile_kmeans=compiled))
    pipeline = VGGT4DPipeline(prepare_model(VGGT(VGGTConfig.tiny()), config, device), config,
                              device)
    return pipeline._cluster


def _knn_all_frames(points: torch.Tensor, valid: torch.Tensor, config: RefineConfig,
                    chunk: int, search: CompiledKnn | None) -> torch.Tensor:
    return torch.cat([
        mean_knn_distance_image(points[f:f + chunk], valid[f:f + chunk], config.sor_neighbours,
                                config.image_radius, search)
        for f in range(0, points.shape[0], chunk)])


def run(args: argparse.Namespace, coverage: float = 0.15) -> list[tuple[str, float, str]]:
    """Time every part; rows of (name, median ms, note)."""
    device = torch.device(args.device)
    window = make_window(args.frames, args.height, args.width, args.seed, device, coverage)
    config = RefineConfig()
    valid = torch.isfinite(window.depth) & (window.depth > 0)
    points = backproject(window.depth, window.intrinsics, window.cam_to_world,
                         pixel_offset=PIXEL_CENTRE)

    def timed(fn: Callable[[], object]) -> float:
        return time_ms(fn, device, args.repeats, args.warmup)

    rows = []
    compiled_knn = device.type == 'cuda' or args.compile_cpu
    # One compiled search for the whole run, as the pipeline keeps one.
    search = CompiledKnn()
    if compiled_knn:
        rows.append(('kNN mean distance, compiled', timed(
            lambda: _knn_all_frames(points, valid, config, args.frame_chunk, search)),
            f'chunks of {args.frame_chunk} frames'))
    eager_note = 'window views + sort' if device.type == 'cuda' else 'shifted slices + topk'
    rows.append(('kNN mean distance, eager', timed(
        lambda: _knn_all_frames(points, valid, config, args.frame_chunk, None)), eager_note))
    inliers = statistical_inliers(points, valid, config, args.frame_chunk, search)
    rows.append(('statistical_inliers', timed(
        lambda: statistical_inliers(points, valid, config, args.frame_chunk, search)),
        'kNN + frame statistics'))
    candidates = (inliers & window.coarse).flatten(1)
    index, slot_valid = compact_candidates(candidates)
    cand_points = points.flatten(1, 2).gather(1, index.unsqueeze(-1).expand(-1, -1, 3))
    km = KMeansConfig(config.clusters, config.kmeans_iterations, None, config.seed)
    rows.append(('k-means, eager', timed(lambda: kmeans(cand_points, km, slot_valid)),
                 f'{index.shape[1]} candidate slots per frame'))
    cluster = pipeline_cluster_fn(device)
    rows.append(('k-means, as the pipeline', timed(lambda: cluster(cand_points, slot_valid, km)),
                 'CUDA graph on CUDA'))
    compiled_cluster = None
    if device.type == 'cuda':
        compiled_cluster = pipeline_cluster_fn(device, compiled=True)
        rows.append(('k-means, as the compiled pipeline', timed(
            lambda: compiled_cluster(cand_points, slot_valid, km)),
            'CUDA graph of steps compiled for any candidate count'))
    rows.append(('close + dilate', timed(lambda: close_then_dilate(window.coarse)), ''))
    inputs = (window.images, window.depth, window.coarse, window.cam_to_world, window.intrinsics)
    rows.append(('refine_masks, as the pipeline', timed(
        lambda: refine_masks(*inputs, config, cluster_fn=cluster, search=search)),
        'the number to watch'))
    if compiled_cluster is not None:
        rows.append(('refine_masks, as the compiled pipeline', timed(
            lambda: refine_masks(*inputs, config, cluster_fn=compiled_cluster, search=search)),
            'compile_model'))
    if device.type == 'cuda':
        eager_search = replace(config, compile_search=False)
        rows.append(('refine_masks, as the pipeline, eager kNN', timed(
            lambda: refine_masks(*inputs, eager_search, cluster_fn=cluster)),
            'compile_search=False'))
    if args.profile:
        if compiled_knn:
            _profile('kNN mean distance, compiled', lambda: _knn_all_frames(
                points, valid, config, args.frame_chunk, search), device)
        _profile('refine_masks, as the pipeline',
                 lambda: refine_masks(*inputs, config, cluster_fn=cluster, search=search), device)
    return rows


def _profile(label: str, fn: Callable[[], object], device: torch.device) -> None:
    """Print the 20 most expensive kernels (CPU ops on the CPU) of one call, and their count."""
    print(f'\n## profile of one call: {label}')
    activities = [torch.profiler.ProfilerActivity.CPU]
    sort_by = 'self_cpu_time_total'
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        sort_by = 'self_device_time_total'
    with torch.profiler.profile(activities=activities) as prof:
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by=sort_by, row_limit=20))
    if device.type == 'cuda':
        kernels = [event for event in prof.events()
                   if event.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(event.time_range.elapsed_us() for event in kernels) / 1e3
        print(f'{label}: {len(kernels)} kernels, {busy:.2f} ms of kernel time\n')


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    print(f'# refinement, {args.frames} x {args.height} x {args.width}, torch '
          f'{torch.__version__}, {name}, median of {args.repeats}')
    for coverage in args.coverage:
        rows = run(args, coverage)
        print(f'\ncoarse mask coverage {100 * coverage:.0f} %')
        print('| part | median ms | note |')
        print('|---|---|---|')
        for part, ms, note in rows:
            print(f'| {part} | {ms:.2f} | {note} |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
