# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""DINOv2 ViT with register tokens, as VGGT uses it for its patch embedding.

Parameter names follow the released checkpoints (``aggregator.patch_embed.*``): ``cls_token``,
``pos_embed``, ``register_tokens``, ``mask_token``, ``patch_embed.proj``, ``blocks.N``, ``norm``.
Only the normalised patch tokens (``x_norm_patchtokens``) are returned.
"""

from functools import partial
import math

import torch
from torch import nn
import torch.nn.functional as F

from vggt4d_ros.model.layers import Block


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` convolution: ``[B,3,H,W] -> [B,(H/p)*(W/p),C]``."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed ``images[B,3,H,W]`` into row-major patch tokens ``[B,N,C]``."""
        return self.proj(images).flatten(2).transpose(1, 2)


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT (pre-norm blocks, LayerScale, LayerNorm eps 1e-6) with register tokens.

    Token order inside the ViT: ``[cls, registers, patches]``; the positional embedding is added
    to ``[cls, patches]`` before the registers are inserted, as in DINOv2.
    """

    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_register_tokens: int = 4,
        init_values: float = 1.0,
    ) -> None:
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.pos_grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.pos_grid ** 2 + 1, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        # Present in the checkpoints (masked-image training); unused at inference.
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.blocks = nn.ModuleList(
            [
                Block(
                    embed_dim,
                    num_heads,
                    mlp_ratio=mlp_ratio,
                    init_values=init_values,
                    norm_layer=norm_layer,
                )
                for _ in range(depth)
            ]
        )
        self.norm = norm_layer(embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        # Random weights only matter for tests and benchmarks; keep them well conditioned.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.normal_(self.register_tokens, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def interpolated_pos_embed(self, grid_hw: tuple) -> torch.Tensor:
        """Positional embedding for a ``hp x wp`` grid: ``[1, 1 + hp*wp, C]`` in fp32.

        Bicubic with antialiasing, resized by output size (DINOv2 ``interpolate_offset=0``), in
        fp32; returned unchanged when the grid is the training grid.
        """
        pos_embed = self.pos_embed.float()
        if tuple(grid_hw) == (self.pos_grid, self.pos_grid):
            return pos_embed
        channels = pos_embed.shape[-1]
        side = int(math.isqrt(pos_embed.shape[1] - 1))
        patch_pos = pos_embed[:, 1:].reshape(1, side, side, channels).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(
            patch_pos, size=tuple(grid_hw), mode='bicubic', antialias=True, align_corners=False
        )
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, channels)
        return torch.cat([pos_embed[:, :1], patch_pos], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode normalised images.

        Args:
            images: ``[B,3,H,W]``, ImageNet-normalised, ``H`` and ``W`` multiples of the patch.

        Returns:
            ``x_norm_patchtokens``: ``[B, (H/p)*(W/p), C]``.
        """
        batch = images.shape[0]
        grid_hw = (images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size)
        patches = self.patch_embed(images)
        # Under autocast the conv gives bf16 but the cls token is fp32: promote like torch.cat
        # does in the reference, so the residual stream stays fp32 there.
        dtype = torch.promote_types(self.cls_token.dtype, patches.dtype)
        cls_tokens = self.cls_token.expand(batch, -1, -1).to(dtype)
        x = torch.cat([cls_tokens, patches.to(dtype)], dim=1)
        x = x + self.interpolated_pos_embed(grid_hw).to(x.dtype)
        registers = self.register_tokens.expand(batch, -1, -1).to(x.dtype)
        x = torch.cat([x[:, :1], registers, x[:, 1:]], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 1 + self.num_register_tokens:]
