# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""VGGT aggregator: DINOv2 patch embedding + alternating frame / global attention.

Per frame the token sequence is ``[camera(1), registers(R), patches(N)]`` (``P = 1 + R + N``).
Frame blocks attend within a frame (tokens ``[B*S,P,C]``), global blocks across all frames of a
window (tokens ``[B,S*P,C]``). Frame 0 of each window gets the first variant of the camera and
register tokens, the other frames the second variant.

Only the block outputs the heads consume are kept (``VGGTConfig.kept_layers``); the returned list
has one entry per block with ``None`` for the others, so heads index it like the reference list.
"""

from typing import Any, Callable, List, Optional, Tuple

import torch
from torch import nn

from vggt4d_ros.model.config import VGGTConfig
from vggt4d_ros.model.dinov2 import DinoVisionTransformer
from vggt4d_ros.model.hooks import CaptureRequest, Captures, KeyValueMask
from vggt4d_ros.model.layers import Block
from vggt4d_ros.model.rope import RopeTable, RotaryPositionEmbedding2D

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (tokens per block: [B,S,P,2C] or None, patch_start_idx, captures or None)
AggregatorOutput = Tuple[List[Optional[torch.Tensor]], int, Optional[Captures]]


def first_frame_variant(tokens: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """Expand special tokens ``[1,2,X,C]`` to ``[B*S,X,C]``: variant 0 for frame 0, else 1."""
    first = tokens[:, :1].expand(batch, 1, -1, -1)
    others = tokens[:, 1:].expand(batch, frames - 1, -1, -1)
    return torch.cat([first, others], dim=1).reshape(batch * frames, *tokens.shape[2:])


def _patches_only(x: torch.Tensor, batch: int, frames: int, start: int) -> torch.Tensor:
    """Global-block q or k ``[B,H,S*P,D]`` -> patch tokens ``[B,S,H,N,D]`` (contiguous)."""
    heads, head_dim = x.shape[1], x.shape[-1]
    x = x.reshape(batch, heads, frames, -1, head_dim)[:, :, :, start:]
    return x.permute(0, 2, 1, 3, 4).contiguous()


class Aggregator(nn.Module):
    """Alternating-attention transformer over a window of frames."""

    def __init__(self, config: VGGTConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_size = config.patch_size
        self.depth = config.depth
        self.patch_start_idx = config.patch_start_idx
        self.kept_layers = config.kept_layers
        self.patch_embed = DinoVisionTransformer(
            img_size=config.img_size,
            patch_size=config.patch_size,
            embed_dim=dim,
            depth=config.dino_depth,
            num_heads=config.dino_num_heads,
            mlp_ratio=config.mlp_ratio,
            num_register_tokens=config.num_register_tokens,
            init_values=config.dino_init_values,
        )
        # One RoPE module shared by every block (it has no parameters).
        self.rope = RotaryPositionEmbedding2D(frequency=config.rope_freq)
        self.frame_blocks = nn.ModuleList([self._make_block() for _ in range(config.depth)])
        self.global_blocks = nn.ModuleList([self._make_block() for _ in range(config.depth)])
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, dim) * 1e-6)
        self.register_token = nn.Parameter(
            torch.randn(1, 2, config.num_register_tokens, dim) * 1e-6
        )
        self.register_buffer('_resnet_mean', self._constant(IMAGENET_MEAN), persistent=False)
        self.register_buffer('_resnet_std', self._constant(IMAGENET_STD), persistent=False)
        for module in list(self.frame_blocks.modules()) + list(self.global_blocks.modules()):
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def _make_block(self) -> Block:
        config = self.config
        return Block(
            config.embed_dim,
            config.num_heads,
            mlp_ratio=config.mlp_ratio,
            init_values=config.init_values,
            qk_norm=config.qk_norm,
            rope=self.rope,
        )

    @staticmethod
    def _constant(values: tuple, device: Optional[torch.device] = None) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device).view(1, 1, 3, 1, 1)

    def _apply(self, fn: Callable[..., torch.Tensor], *args: Any, **kwargs: Any) -> 'Aggregator':
        # model.to(bfloat16) would round the ImageNet constants; rebuild them in fp32.
        super()._apply(fn, *args, **kwargs)
        device = self._resnet_mean.device
        self._resnet_mean = self._constant(IMAGENET_MEAN, device)
        self._resnet_std = self._constant(IMAGENET_STD, device)
        return self

    def embed_patches(self, images: torch.Tensor) -> torch.Tensor:
        """DINOv2 patch features of a window.

        Args:
            images: ``[B,S,3,H,W]`` in [0, 1].

        Returns:
            ``[B,S,N,C]`` (``x_norm_patchtokens``).
        """
        batch, frames, channels, height, width = images.shape
        if channels != 3:
            raise ValueError(f'expected 3 image channels, got {channels}')
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f'image size {height}x{width} is not a multiple of the patch {self.patch_size}'
            )
        normalised = (images.float() - self._resnet_mean) / self._resnet_std
        weight_dtype = self.patch_embed.patch_embed.proj.weight.dtype
        normalised = normalised.to(weight_dtype).reshape(batch * frames, channels, height, width)
        features = self.patch_embed(normalised)
        return features.reshape(batch, frames, *features.shape[1:])

    def forward(
        self,
        images: torch.Tensor,
        *,
        capture: Optional[CaptureRequest] = None,
        kv_mask: Optional[KeyValueMask] = None,
        patch_tokens: Optional[torch.Tensor] = None,
        camera_only: bool = False,
    ) -> AggregatorOutput:
        """Run the aggregator on a window.

        Args:
            images: ``[B,S,3,H,W]`` in [0, 1].
            capture: q/k/patch-feature capture request (see :mod:`vggt4d_ros.model.hooks`).
            kv_mask: remove dynamic keys/values in the first blocks; eagerly an empty mask
                takes the unmasked path (bit-identical to ``None``); under ``torch.compile``
                the masked path always runs (no host read, no graph break).
            patch_tokens: ``[B,S,N,C]`` DINOv2 features of these images from an earlier pass;
                skips the patch embedding.
            camera_only: only the camera head will read the output: keep the last layer
                alone, and only its camera tokens (``[B,S,1,2C]``); the last global block then
                computes the camera tokens' queries, projection and MLP only.

        Returns:
            ``(tokens, patch_start_idx, captures)``: ``tokens`` has ``depth`` entries,
            ``[B,S,P,2C]`` (frame | global output) at the kept layers and ``None`` elsewhere.
        """
        batch, frames, _, height, width = images.shape
        grid_hw = (height // self.patch_size, width // self.patch_size)
        if patch_tokens is None:
            patch_tokens = self.embed_patches(images)
        elif patch_tokens.shape[:3] != (batch, frames, grid_hw[0] * grid_hw[1]):
            raise ValueError(
                f'patch_tokens {tuple(patch_tokens.shape)} do not match images '
                f'{tuple(images.shape)} (expected [B,S,N,C] with N={grid_hw[0] * grid_hw[1]})'
            )
        captures = None
        if capture is not None:
            captures = Captures(patch_features=patch_tokens if capture.patch_features else None)

        dtype = torch.promote_types(self.camera_token.dtype, patch_tokens.dtype)
        tokens = torch.cat(
            [
                first_frame_variant(self.camera_token, batch, frames).to(dtype),
                first_frame_variant(self.register_token, batch, frames).to(dtype),
                patch_tokens.reshape(batch * frames, *patch_tokens.shape[2:]).to(dtype),
            ],
            dim=1,
        )
        frame_table = self.rope.build_table(
            grid_hw, self.patch_start_idx, self.config.embed_dim // self.config.num_heads,
            tokens.device, dtype,
        )
        global_table = (frame_table[0].repeat(frames, 1), frame_table[1].repeat(frames, 1))
        masks = None
        num_patches = grid_hw[0] * grid_hw[1]
        if kv_mask is not None and tuple(kv_mask.dynamic.shape) != (batch, frames, num_patches):
            raise ValueError(
                f'kv_mask.dynamic has shape {tuple(kv_mask.dynamic.shape)}, expected '
                f'{(batch, frames, num_patches)} ([B,S,N] for {height}x{width} images)'
            )
        if kv_mask is not None and self._masks_needed(kv_mask):
            masks = kv_mask.keep_masks(self.patch_start_idx)
        outputs = self._run_blocks(tokens, batch, frames, (frame_table, global_table), masks,
                                   kv_mask, capture, captures, camera_only)
        return outputs, self.patch_start_idx, captures

    @staticmethod
    def _masks_needed(kv_mask: KeyValueMask) -> bool:
        """Whether the masked path runs.

        Eagerly an empty mask takes the unmasked path (bit-identical to no mask), which costs
        one device-to-host read. Under ``torch.compile`` that read would break the graph, so
        the masked path always runs there: with nothing dynamic every key is kept, the same
        attention up to the masked kernel's rounding.
        """
        if torch.compiler.is_compiling():
            return bool(kv_mask.frame_blocks) or bool(kv_mask.global_blocks)
        return not kv_mask.is_empty()

    def _run_blocks(
        self,
        tokens: torch.Tensor,
        batch: int,
        frames: int,
        tables: Tuple[RopeTable, RopeTable],
        masks: Optional[Tuple[torch.Tensor, torch.Tensor]],
        kv_mask: Optional[KeyValueMask],
        capture: Optional[CaptureRequest],
        captures: Optional[Captures],
        camera_only: bool = False,
    ) -> List[Optional[torch.Tensor]]:
        """Alternate frame and global blocks; keep the outputs the heads need."""
        per_frame, channels = tokens.shape[1], tokens.shape[2]
        frame_table, global_table = tables
        q_blocks = set(capture.q_global_blocks) if capture is not None else set()
        k_blocks = set(capture.k_global_blocks) if capture is not None else set()
        last = self.depth - 1
        masked_last = masks is not None and last in kv_mask.global_blocks
        camera_only = camera_only and last not in q_blocks | k_blocks and not masked_last
        kept = (last,) if camera_only else self.kept_layers
        outputs: List[Optional[torch.Tensor]] = [None] * self.depth
        global_keep_index = None
        # The index path needs nonzero() (data-dependent shape): under torch.compile keep the
        # boolean mask instead so the graph does not break.
        if masks is not None and batch == 1 and not torch.compiler.is_compiling():
            global_keep_index = masks[1].reshape(-1).nonzero().squeeze(1)
        for index in range(self.depth):
            frame_mask = None
            global_mask = None
            if masks is not None:
                frame_mask = masks[0] if index in kv_mask.frame_blocks else None
                global_mask = masks[1] if index in kv_mask.global_blocks else None
            tokens = tokens.reshape(batch * frames, per_frame, channels)
            tokens = self.frame_blocks[index](tokens, pos=frame_table, attn_mask=frame_mask)
            frame_out = tokens
            tokens = tokens.reshape(batch, frames * per_frame, channels)
            if camera_only and index == last:
                outputs[index] = self._camera_tokens_out(frame_out, tokens, batch, frames,
                                                         global_table)
                break
            wants_qk = index in q_blocks or index in k_blocks
            global_index = global_keep = None
            if global_mask is not None and global_keep_index is not None:
                # One window: drop the dynamic keys/values by index (as the reference does) so
                # SDPA keeps its fused kernels and never builds an (S*P)^2 mask.
                global_index, global_mask = global_keep_index, None
            elif global_mask is not None and batch == 1:
                # Compiled: the same key dropping inside one opaque operator.
                global_keep, global_mask = global_mask.reshape(-1), None
            result = self.global_blocks[index](
                tokens, pos=global_table, attn_mask=global_mask, return_qk=wants_qk,
                kv_index=global_index, kv_keep=global_keep,
            )
            if wants_qk:
                tokens, q, k = result
                if index in q_blocks:
                    captures.q[index] = _patches_only(q, batch, frames, self.patch_start_idx)
                if index in k_blocks:
                    captures.k[index] = _patches_only(k, batch, frames, self.patch_start_idx)
            else:
                tokens = result
            if index in kept:
                outputs[index] = torch.cat(
                    [
                        frame_out.reshape(batch, frames, per_frame, channels),
                        tokens.reshape(batch, frames, per_frame, channels),
                    ],
                    dim=-1,
                )
        return outputs

    def _camera_tokens_out(
        self,
        frame_out: torch.Tensor,
        tokens: torch.Tensor,
        batch: int,
        frames: int,
        global_table: RopeTable,
    ) -> torch.Tensor:
        """Last layer for the camera head: ``[B,S,1,2C]`` (frame | global camera tokens)."""
        per_frame, channels = frame_out.shape[1], frame_out.shape[2]
        camera_index = torch.arange(frames, device=tokens.device) * per_frame
        global_out = self.global_blocks[self.depth - 1].forward_queries(
            tokens, camera_index, pos=global_table
        )
        return torch.cat(
            [
                frame_out.reshape(batch, frames, per_frame, channels)[:, :, :1],
                global_out.reshape(batch, frames, 1, channels),
            ],
            dim=-1,
        )
