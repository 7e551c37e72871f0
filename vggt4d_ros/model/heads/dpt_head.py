# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Dense prediction (DPT) head of VGGT: depth, point maps and tracking features.

Four aggregator layers are re-assembled into a feature pyramid (x4, x2, x1, x1/2 of the patch
grid), fused coarse-to-fine by RefineNet-style blocks, upsampled to the image size and mapped to
values + confidence (or returned as features for the track head).

Module and parameter names follow the released checkpoint (``projects``, ``resize_layers``,
``scratch.layer{k}_rn``, ``scratch.refinenet{k}.resConfUnit{1,2}``, ``scratch.output_conv{1,2}``).
"""

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
import torch.nn.functional as F

from vggt4d_ros.model.heads.activations import activate_dense, check_activation_names
from vggt4d_ros.model.heads.embeddings import uv_position_embedding

# Largest output element count handed to one F.interpolate call (its int32 indexing limit).
_INTERPOLATE_MAX_ELEMENTS = 1_610_612_736
# Scale of the UV positional embedding added to DPT features.
_POS_EMBED_RATIO = 0.1
# Channels of the hidden layer of the final prediction convs.
_OUTPUT_HIDDEN_CHANNELS = 32

DenseOutput = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


def interpolate_bilinear(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear (``align_corners=True``) resize of ``x[N,C,h,w]`` to ``[N,C,*size]``.

    Splits along ``N`` when the output would overflow the kernel's 32-bit indexing.
    """
    output_elements = size[0] * size[1] * x.shape[0] * x.shape[1]
    if output_elements <= _INTERPOLATE_MAX_ELEMENTS:
        return F.interpolate(x, size=size, mode='bilinear', align_corners=True)
    pieces = torch.chunk(x, output_elements // _INTERPOLATE_MAX_ELEMENTS + 1, dim=0)
    return torch.cat(
        [F.interpolate(p, size=size, mode='bilinear', align_corners=True) for p in pieces]
    )


def _pos_embed_key(
    shape: Sequence[int], image_hw: Sequence[int], device: torch.device, dtype: torch.dtype
) -> Tuple:
    """Cache key of one embedding: ints and strings only, so compiled code guards on it cheaply."""
    return (int(shape[0]), int(shape[1]), int(shape[2]), int(image_hw[0]), int(image_hw[1]),
            str(device), str(dtype))


def _uv_embedding(
    shape: Sequence[int], image_hw: Sequence[int], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """``0.1 *`` the UV embedding ``[C,h,w]`` of a map of ``shape`` for images of ``image_hw``."""
    channels, height, width = shape
    embedding = uv_position_embedding(
        height, width, channels, aspect_ratio=image_hw[1] / image_hw[0], device=device
    )
    return (embedding * _POS_EMBED_RATIO).to(dtype)


class ResidualConvUnit(nn.Module):
    """``relu(x) + conv2(relu(conv1(relu(x))))``.

    The reference applies an in-place ReLU to its input, so the skip branch carries ``relu(x)``
    rather than ``x``; the checkpoint was trained that way and we reproduce it (out of place).
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x[N,F,h,w]`` to ``[N,F,h,w]``."""
        activated = F.relu(x)
        hidden = F.relu(self.conv1(activated), inplace=True)
        return self.conv2(hidden) + activated


class FeatureFusionBlock(nn.Module):
    """Fuse a coarser path with an optional skip feature, then upsample and project (1x1)."""

    def __init__(self, features: int, has_residual: bool = True) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.has_residual = has_residual
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(
        self,
        path: torch.Tensor,
        skip: Optional[torch.Tensor] = None,
        size: Optional[Tuple[int, int]] = None,
    ) -> torch.Tensor:
        """Fuse ``path[N,F,h,w]`` (+ ``skip[N,F,h,w]``) and resize to ``size`` (default x2)."""
        if self.has_residual:
            if skip is None:
                raise ValueError('this fusion block expects a skip feature')
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        if size is None:
            size = (path.shape[-2] * 2, path.shape[-1] * 2)
        return self.out_conv(interpolate_bilinear(path, size))


class DPTHead(nn.Module):
    """DPT head over VGGT aggregator layers.

    Args:
        dim_in: token channels (``2 * embed_dim``; 2048 for the released model).
        patch_size: ViT patch size in pixels.
        output_dim: output channels incl. the confidence channel (2: depth, 4: points).
        activation: value activation, ``'exp'`` (depth) or ``'inv_log'`` (points), ...
        conf_activation: confidence activation, ``'expp1'`` gives ``1 + exp(c)``.
        features: fusion width (256; 128 in the track head). Shrink for tiny configs.
        out_channels: per-layer projection widths (256, 512, 1024, 1024). Shrink for tiny
            configs.
        intermediate_layer_idx: which entries of the aggregated token list are used.
        pos_embed: add the UV sin/cos embedding to the projected and the final features.
        feature_only: return the upsampled features ``[B,S,features,H/r,W/r]`` instead of
            activated predictions (used by the track head).
        down_ratio: output resolution divisor ``r`` (2 in the track head).
    """

    def __init__(
        self,
        dim_in: int,
        patch_size: int = 14,
        output_dim: int = 4,
        activation: str = 'inv_log',
        conf_activation: str = 'expp1',
        features: int = 256,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        intermediate_layer_idx: Sequence[int] = (4, 11, 17, 23),
        pos_embed: bool = True,
        feature_only: bool = False,
        down_ratio: int = 1,
    ) -> None:
        super().__init__()
        if len(out_channels) != 4 or len(intermediate_layer_idx) != 4:
            raise ValueError('DPTHead needs exactly four layers and four projection widths')
        if not feature_only:
            check_activation_names(activation, conf_activation)
        self.patch_size = patch_size
        self.activation = activation
        self.conf_activation = conf_activation
        self.pos_embed = pos_embed
        self.feature_only = feature_only
        self.down_ratio = down_ratio
        self.intermediate_layer_idx = list(intermediate_layer_idx)

        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList([nn.Conv2d(dim_in, c, kernel_size=1) for c in out_channels])
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = self._build_scratch(out_channels, features, output_dim, feature_only)
        # UV embeddings of one image size, built by prepare_pos_embed (not in the state dict).
        self._pos_embeds: Dict[Tuple, torch.Tensor] = {}

    @staticmethod
    def _build_scratch(
        out_channels: Sequence[int], features: int, output_dim: int, feature_only: bool
    ) -> nn.Module:
        scratch = nn.Module()
        for level, channels in enumerate(out_channels, start=1):
            conv = nn.Conv2d(channels, features, kernel_size=3, padding=1, bias=False)
            setattr(scratch, f'layer{level}_rn', conv)
        scratch.refinenet1 = FeatureFusionBlock(features)
        scratch.refinenet2 = FeatureFusionBlock(features)
        scratch.refinenet3 = FeatureFusionBlock(features)
        scratch.refinenet4 = FeatureFusionBlock(features, has_residual=False)
        if feature_only:
            scratch.output_conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        else:
            scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
            scratch.output_conv2 = nn.Sequential(
                nn.Conv2d(features // 2, _OUTPUT_HIDDEN_CHANNELS, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(_OUTPUT_HIDDEN_CHANNELS, output_dim, kernel_size=1),
            )
        return scratch

    def forward(
        self,
        aggregated_tokens_list: List[Optional[torch.Tensor]],
        images: torch.Tensor,
        patch_start_idx: int,
        frames_chunk_size: Optional[int] = 8,
    ) -> DenseOutput:
        """Predict dense maps, ``frames_chunk_size`` frames at a time to bound memory.

        Args:
            aggregated_tokens_list: aggregator outputs ``[B,S,P,dim_in]``; only the entries in
                ``intermediate_layer_idx`` are read (others may be ``None``). They are cast to
                the head's parameter dtype, so a float32 head accepts bf16 tokens.
            images: ``[B,S,3,H,W]``; only its shape is used.
            patch_start_idx: index of the first patch token in ``P``.
            frames_chunk_size: frames per chunk; ``None`` or ``>= S`` runs all at once.

        Returns:
            ``feature_only``: features ``[B,S,features,H/r,W/r]``. Otherwise ``(values
            [B,S,H,W,output_dim-1], confidence [B,S,H,W])``.
        """
        num_frames = images.shape[1]
        image_hw = (images.shape[-2], images.shape[-1])
        if frames_chunk_size is None or frames_chunk_size >= num_frames:
            frames_chunk_size = num_frames
        if frames_chunk_size <= 0:
            raise ValueError(f'frames_chunk_size must be positive, got {frames_chunk_size}')
        embed_cache: Dict[Tuple[int, ...], torch.Tensor] = {}
        if frames_chunk_size == num_frames:
            return self._forward_frames(
                aggregated_tokens_list, slice(None), image_hw, patch_start_idx, embed_cache
            )
        outputs: List[torch.Tensor] = []
        for start in range(0, num_frames, frames_chunk_size):
            frames = slice(start, min(start + frames_chunk_size, num_frames))
            chunk = self._forward_frames(
                aggregated_tokens_list, frames, image_hw, patch_start_idx, embed_cache
            )
            parts = [chunk] if isinstance(chunk, torch.Tensor) else list(chunk)
            if not outputs:
                # Preallocate instead of concatenating so the peak holds one copy of the result.
                outputs = [p.new_empty((p.shape[0], num_frames) + p.shape[2:]) for p in parts]
            for output, part in zip(outputs, parts):
                output[:, frames] = part
        return outputs[0] if self.feature_only else (outputs[0], outputs[1])

    def _forward_frames(
        self,
        aggregated_tokens_list: List[Optional[torch.Tensor]],
        frames: slice,
        image_hw: Tuple[int, int],
        patch_start_idx: int,
        embed_cache: Dict[Tuple[int, ...], torch.Tensor],
    ) -> DenseOutput:
        """Run the head on the frames ``frames`` of every selected layer."""
        height, width = image_hw
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        pyramid = []
        for level, layer_idx in enumerate(self.intermediate_layer_idx):
            tokens = aggregated_tokens_list[layer_idx]
            if tokens is None:
                raise ValueError(f'aggregated layer {layer_idx} is needed by the DPT head')
            # Only this chunk's patch tokens are cast, to the head's own (parameter) dtype.
            tokens = tokens[:, frames, patch_start_idx:].to(self.norm.weight.dtype)
            tokens = self.norm(tokens)
            # [B,s,N,C] -> [B*s,C,h,w] (a strided view; the 1x1 conv accepts channels-last).
            x = tokens.flatten(0, 1).transpose(1, 2).unflatten(2, (grid_h, grid_w))
            x = self.projects[level](x)
            if self.pos_embed:
                x = self._add_pos_embed(x, image_hw, embed_cache)
            pyramid.append(self.resize_layers[level](x))

        batch_frames = tokens.shape[:2]
        fused = self._fuse(pyramid)
        out_hw = (
            int(grid_h * self.patch_size / self.down_ratio),
            int(grid_w * self.patch_size / self.down_ratio),
        )
        fused = interpolate_bilinear(fused, out_hw)
        if self.pos_embed:
            fused = self._add_pos_embed(fused, image_hw, embed_cache)
        if self.feature_only:
            return fused.unflatten(0, batch_frames)
        values, confidence = activate_dense(
            self.scratch.output_conv2(fused), self.activation, self.conf_activation
        )
        return (
            values.unflatten(0, batch_frames),
            confidence.unflatten(0, batch_frames),
        )

    def _fuse(self, pyramid: List[torch.Tensor]) -> torch.Tensor:
        """Fuse the pyramid (consumed) from coarsest to finest level; ``[N,features,4h,4w]``."""
        scratch = self.scratch
        convs = (scratch.layer1_rn, scratch.layer2_rn, scratch.layer3_rn, scratch.layer4_rn)
        # Pop each level as it is converted so its wide (up to 1024-channel) map is freed early.
        level1, level2, level3, level4 = [conv(pyramid.pop(0)) for conv in convs]
        out = scratch.refinenet4(level4, size=level3.shape[2:])
        del level4
        out = scratch.refinenet3(out, level3, size=level2.shape[2:])
        del level3
        out = scratch.refinenet2(out, level2, size=level1.shape[2:])
        del level2
        out = scratch.refinenet1(out, level1)
        del level1
        return scratch.output_conv1(out)

    def prepare_pos_embed(
        self, image_hw: Tuple[int, int], device: torch.device, dtype: torch.dtype
    ) -> None:
        """Build the UV embeddings for images of ``image_hw`` once, for every later call.

        They depend on the image size only, yet built inside ``forward`` they cost 1.3 ms per
        call for 8 frames at 392x518 on an H200 (float64 sines over ``[128,392,518]``), compiled
        or not. Call this outside compiled code (``VGGT.run_heads`` does): a compiled
        ``forward`` then reads them as inputs, where storing them itself would recompile it.
        One image size is kept; ``forward`` builds any embedding not prepared on the fly.
        """
        if not self.pos_embed:
            return
        image_hw = (int(image_hw[0]), int(image_hw[1]))
        keys = [
            _pos_embed_key(shape, image_hw, device, dtype)
            for shape in self._pos_embed_shapes(image_hw)
        ]
        if set(keys) == set(self._pos_embeds):
            return
        self._pos_embeds = {
            key: _uv_embedding(key[:3], image_hw, torch.device(device), dtype) for key in keys
        }

    def _pos_embed_shapes(self, image_hw: Tuple[int, int]) -> List[Tuple[int, int, int]]:
        """(channels, h, w) of every map ``forward`` adds an embedding to."""
        grid_h, grid_w = image_hw[0] // self.patch_size, image_hw[1] // self.patch_size
        shapes = [(conv.out_channels, grid_h, grid_w) for conv in self.projects]
        out_hw = (
            int(grid_h * self.patch_size / self.down_ratio),
            int(grid_w * self.patch_size / self.down_ratio),
        )
        shapes.append((self.scratch.output_conv1.out_channels,) + out_hw)
        return shapes

    def _add_pos_embed(
        self,
        x: torch.Tensor,
        image_hw: Tuple[int, int],
        cache: Dict[Tuple, torch.Tensor],
    ) -> torch.Tensor:
        """Add ``0.1 *`` the UV embedding to ``x[N,C,h,w]`` (prepared, or built once per call)."""
        key = _pos_embed_key(tuple(x.shape[1:]), image_hw, x.device, x.dtype)
        prepared = self._pos_embeds.get(key)
        if prepared is not None:
            return x + prepared
        if key not in cache:
            cache[key] = _uv_embedding(key[:3], image_hw, x.device, x.dtype)
        return x + cache[key]
