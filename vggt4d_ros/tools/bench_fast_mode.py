# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Fast mode (FP8) against exact mode on the same weights and inputs: speed and deviation.

GPU (the numbers that count; FP8 tensor cores need compute capability 8.9+):
    python -m vggt4d_ros.tools.bench_fast_mode --frames 8 --compile

CPU (tiny model; the FP8 products are emulated in fp32, so only the deviation means anything):
    python -m vggt4d_ros.tools.bench_fast_mode --config tiny --device cpu --frames 4 \
        --height 56 --width 70 --dtype fp32

For each weight variant the exact window runs first, then the same model quantised with each
``--scaling``, on the same images. Weight variants:

- ``random``: the random initialisation (LayerScale 0.01 in the aggregator, as VGGT's init).
- ``outliers``: what trained ViTs look like to a quantiser: heavy-tailed weights (Student-t,
  3 degrees of freedom, same standard deviation), a few outlier channels in every GEMM input
  (the LayerNorm gain and bias of ``--outlier-fraction`` of the channels times
  ``--outlier-gain``, divided back out of the weight columns that read them, so the exact
  network computes the same function while the FP8 input scales see the outliers) and
  LayerScale ``--outlier-layer-scale`` so that the blocks matter to the output.

Deviation of fast from exact (the same window): pose encoding (pass 2's poses and pass 1's
intrinsics, ``[S,9]``) relative L2 and largest rotation difference; depth relative L2 and
median relative error; cue maps (dynamic saliency) relative L2; coarse and refined mask IoU
(dynamic pixels; 1 when both are empty). Random weights say nothing about the real model's
quality loss: check it on the real checkpoint (docs/performance.md).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import itertools
import math
import statistics
import time
from typing import Sequence

import torch
from torch import nn

from vggt4d_ros.geometry.pose_encoding import extri_intri_to_pose_encoding
from vggt4d_ros.model.attention import BACKENDS
from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.layers import Block
from vggt4d_ros.model.vggt import VGGT
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.pipeline import VGGT4DPipeline
from vggt4d_ros.motion.prepare import compile_model
from vggt4d_ros.motion.prepare import prepare_model
from vggt4d_ros.motion.result import WindowResult

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}
VARIANTS = ('random', 'outliers')
IMPLEMENTATIONS = ('ours', 'torchao')


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, nargs='+', default=[8])
    parser.add_argument('--height', type=int, default=392)
    parser.add_argument('--width', type=int, default=518)
    parser.add_argument('--config', choices=('full', 'tiny'), default='full')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', choices=tuple(DTYPES), default='bf16',
                        help='compute dtype (the weights are cast to it)')
    parser.add_argument('--weights', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument('--scaling', nargs='+', choices=('row', 'tensor'), default=['row'],
                        help='FP8 scale granularity (PipelineConfig.fp8_scaling)')
    parser.add_argument('--impl', nargs='+', choices=IMPLEMENTATIONS, default=['ours'],
                        help="FP8 implementation: 'ours' (PipelineConfig.precision='fast', "
                             "model.fp8) or 'torchao' (optional package, CUDA sm_89+ only: "
                             'its dynamic float8 quantize_ on the same layers)')
    parser.add_argument('--attention', default='sdpa',
                        choices=BACKENDS,
                        help='attention backend of both modes (PipelineConfig.attention)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model (both modes; slow first run)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--outlier-fraction', type=float, default=0.02)
    parser.add_argument('--outlier-gain', type=float, default=30.0)
    parser.add_argument('--outlier-layer-scale', type=float, default=0.1)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


@torch.no_grad()
def inject_outliers(model: VGGT, fraction: float, gain: float, layer_scale: float,
                    seed: int) -> None:
    """Give the aggregator's blocks trained-ViT statistics, in place (see the module docstring).

    The outlier channels are the same in every block (trained ViTs keep their large
    activations in a few fixed channels of the residual stream).
    """
    generator = torch.Generator().manual_seed(seed)
    aggregator = model.aggregator
    dim = aggregator.config.embed_dim
    count = max(1, round(fraction * dim))
    channels = torch.randperm(dim, generator=generator)[:count]
    # Sampled where the weights are (600 M values for the full model); StudentT draws from
    # the global generator of that device.
    device = aggregator.camera_token.device
    t_dist = torch.distributions.StudentT(torch.tensor(3.0, device=device))
    torch.manual_seed(seed)
    for block in list(aggregator.frame_blocks) + list(aggregator.global_blocks):
        for layer in block.modules():
            if isinstance(layer, nn.Linear):
                heavy = t_dist.sample(layer.weight.shape)
                heavy = heavy * (layer.weight.float().std() / heavy.std())
                layer.weight.copy_(heavy.to(layer.weight))
        _outlier_channels(block, channels.to(block.norm1.weight.device), gain)
        for scale in (block.ls1, block.ls2):
            if hasattr(scale, 'gamma'):
                scale.gamma.fill_(layer_scale)


def _outlier_channels(block: Block, channels: torch.Tensor, gain: float) -> None:
    """Scale LayerNorm outputs ``channels`` by ``gain`` and the reading columns by 1/gain."""
    for norm, linear in ((block.norm1, block.attn.qkv), (block.norm2, block.mlp.fc1)):
        norm.weight[channels] *= gain
        if norm.bias is not None:
            norm.bias[channels] *= gain
        linear.weight[:, channels] /= gain


def build_model(args: argparse.Namespace, variant: str) -> VGGT:
    """Build the seeded random model of ``variant`` on the device, weights in ``--dtype``."""
    torch.manual_seed(args.seed)
    config = VGGTConfig.full() if args.config == 'full' else VGGTConfig.tiny()
    device = torch.device(args.device)
    with device:
        model = VGGT(config).eval()
    if variant == 'outliers':
        inject_outliers(model, args.outlier_fraction, args.outlier_gain,
                        args.outlier_layer_scale, args.seed)
    return model.to(DTYPES[args.dtype])


def quantise_with_torchao(model: VGGT, scaling: str) -> None:
    """Quantise with torchao's dynamic float8 (e4m3) the layers that fast mode quantises.

    The last global block's qkv stays unquantised: pass 2's camera-only path slices its
    weight (``Attention.forward_queries``), which torchao's weight tensor need not support.
    """
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig
    from torchao.quantization import PerRow, PerTensor, quantize_
    granularity = PerRow() if scaling == 'row' else PerTensor()
    config = Float8DynamicActivationFloat8WeightConfig(granularity=granularity)
    aggregator = model.aggregator
    last_qkv = f'{aggregator.depth - 1}.attn.qkv'
    quantize_(aggregator.frame_blocks, config)
    quantize_(aggregator.global_blocks, config,
              filter_fn=lambda module, name: isinstance(module, nn.Linear) and name != last_qkv)


def run_mode(args: argparse.Namespace, variant: str, precision: str, scaling: str,
             images: torch.Tensor, impl: str = 'ours') -> tuple[WindowResult, float]:
    """Build, prepare and time one mode; returns (last result, median seconds per window)."""
    config = PipelineConfig(precision=precision, fp8_scaling=scaling,
                            attention=args.attention, compile_model=args.compile)
    device = torch.device(args.device)
    if impl == 'torchao':
        # Exact preparation without compilation and without the fused GELU (torchao's weight
        # is no plain tensor for the cuBLASLt epilogue), then torchao, then the compilation.
        exact = replace(config, precision='exact', fused_gelu=False, compile_model=False)
        model = prepare_model(build_model(args, variant), exact, device)
        quantise_with_torchao(model, scaling)
        if args.compile and device.type == 'cuda':
            compile_model(model)
    else:
        model = prepare_model(build_model(args, variant), config, device)
    pipe = VGGT4DPipeline(model, config, device=device, dtype=DTYPES[args.dtype])
    stamps = list(range(images.shape[0]))
    for _ in range(args.warmup):
        pipe.run_tensor(images, stamps)
    seconds = []
    result = None
    for _ in range(max(1, args.repeats)):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        begin = time.perf_counter()
        result = pipe.run_tensor(images, stamps)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - begin)
    return result, statistics.median(seconds)


def relative_l2(value: torch.Tensor, reference: torch.Tensor) -> float:
    """``||value - reference|| / ||reference||`` in fp64."""
    value, reference = value.double(), reference.double()
    return float((value - reference).norm() / reference.norm().clamp(min=1e-30))


def mask_iou(value: torch.Tensor, reference: torch.Tensor) -> float:
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    value, reference = value.bool(), reference.bool()
    union = (value | reference).sum().item()
    return 1.0 if union == 0 else (value & reference).sum().item() / union


def rotation_deg(extrinsics: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest angle (degrees) between the rotations of ``[S,3,4]`` camera poses."""
    relative = extrinsics[:, :3, :3].double() @ reference[:, :3, :3].double().transpose(1, 2)
    cosine = ((relative.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return math.degrees(float(torch.acos(cosine).max()))


def deviation(fast: WindowResult, exact: WindowResult) -> dict[str, float]:
    """Deviation of a fast-mode window from the exact one (see the module docstring)."""
    hw = tuple(exact.depth.shape[-2:])
    pose_fast = extri_intri_to_pose_encoding(fast.extrinsics.float(), fast.intrinsics.float(),
                                             hw)
    pose_exact = extri_intri_to_pose_encoding(exact.extrinsics.float(),
                                              exact.intrinsics.float(), hw)
    depth_rel = ((fast.depth.double() - exact.depth.double()).abs()
                 / exact.depth.double().abs().clamp(min=1e-12))
    return {
        'pose_enc': relative_l2(pose_fast, pose_exact),
        'rot_deg': rotation_deg(fast.extrinsics, exact.extrinsics),
        'depth': relative_l2(fast.depth, exact.depth),
        'depth_med': float(depth_rel.median()),
        'cues': relative_l2(fast.saliency, exact.saliency),
        'coarse_iou': mask_iou(fast.coarse_masks, exact.coarse_masks),
        'refined_iou': mask_iou(fast.refined_masks, exact.refined_masks),
        'coarse_px': float(exact.coarse_masks.float().mean()),
    }


def main(argv: Sequence[str] | None = None) -> list[dict[str, object]]:
    """Print the speed and deviation table; returns its rows."""
    args = parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    print(f'# fast mode vs exact, {args.config} model, {args.height}x{args.width}, '
          f'{args.dtype}, attention={args.attention}, compile={args.compile}, '
          f'torch {torch.__version__}, {name}')
    print('| frames | weights | mode | ms / window | speed-up | pose enc rel | rot deg | '
          'depth rel | depth med rel | cues rel | coarse IoU | refined IoU |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|')
    rows: list[dict[str, object]] = []
    for frames in args.frames:
        generator = torch.Generator().manual_seed(args.seed)
        images = torch.rand(frames, 3, args.height, args.width, generator=generator)
        images = images.to(device)
        for variant in args.weights:
            exact, exact_s = run_mode(args, variant, 'exact', 'row', images)
            print(f'| {frames} | {variant} | exact | {1e3 * exact_s:.1f} | 1.00 | - | - | - | - '
                  f'| - | - (coarse {100 * float(exact.coarse_masks.float().mean()):.1f} %) '
                  '| - |', flush=True)
            for impl, scaling in itertools.product(args.impl, args.scaling):
                label = scaling if impl == 'ours' else f'{impl} {scaling}'
                try:
                    fast, fast_s = run_mode(args, variant, 'fast', scaling, images, impl)
                except Exception as error:  # noqa: BLE001 - an optional package may not run
                    print(f'| {frames} | {variant} | fast ({label}) | failed: '
                          f'{type(error).__name__}: {str(error).splitlines()[0][:80]} |')
                    continue
                dev = deviation(fast, exact)
                rows.append({'frames': frames, 'weights': variant, 'scaling': scaling,
                             'impl': impl, 'exact_s': exact_s, 'fast_s': fast_s, **dev})
                print(f"| {frames} | {variant} | fast ({label}) | {1e3 * fast_s:.1f} | "
                      f'{exact_s / fast_s:.2f} | {dev["pose_enc"]:.2e} | '
                      f'{dev["rot_deg"]:.3f} | {dev["depth"]:.2e} | {dev["depth_med"]:.2e} | '
                      f'{dev["cues"]:.2e} | {dev["coarse_iou"]:.3f} | '
                      f'{dev["refined_iou"]:.3f} |', flush=True)
    return rows


if __name__ == '__main__':
    main()
