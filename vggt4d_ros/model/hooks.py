# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""What VGGT4D needs from the backbone: q/k capture (pass 1) and key/value masking (pass 2).

Shapes: ``B`` batch, ``S`` frames, ``N = hp*wp`` patch tokens per frame, ``P = 5 + N`` tokens
per frame (camera, 4 registers, patches), ``H`` heads, ``D`` head dim, ``C`` channels.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import torch


@dataclass(frozen=True)
class CaptureRequest:
    """Which intermediate tensors a forward pass should return in ``out['captures']``.

    Attributes:
        q_global_blocks: global-attention block indices whose queries are captured.
        k_global_blocks: global-attention block indices whose keys are captured.
        patch_features: also return DINOv2's ``x_norm_patchtokens``.
    """

    q_global_blocks: Tuple[int, ...] = ()
    k_global_blocks: Tuple[int, ...] = ()
    patch_features: bool = True


@dataclass
class Captures:
    """Tensors captured during a forward pass (compute dtype, on the model's device).

    Attributes:
        q: global block index -> queries ``[B,S,H,N,D]`` exactly as fed to attention (after
            QK-norm and RoPE), patch tokens only.
        k: global block index -> keys ``[B,S,H,N,D]``, same convention.
        patch_features: DINOv2 patch features ``[B,S,N,C]`` (``None`` if not requested).
    """

    q: Dict[int, torch.Tensor] = field(default_factory=dict)
    k: Dict[int, torch.Tensor] = field(default_factory=dict)
    patch_features: Optional[torch.Tensor] = None


@dataclass(frozen=True, eq=False)
class KeyValueMask:
    """Remove the keys and values of dynamic patch tokens in the first attention blocks.

    Every query is kept and the special tokens are never removed, so no softmax row is empty.
    This is the same as a ``-inf`` additive bias on the dynamic key columns.

    Attributes:
        dynamic: ``Bool[B,S,N]``, True = dynamic patch (its key/value is removed).
        frame_blocks: frame-attention block indices that are masked.
        global_blocks: global-attention block indices that are masked.
    """

    dynamic: torch.Tensor
    frame_blocks: Sequence[int] = range(5)
    global_blocks: Sequence[int] = range(5)

    def is_empty(self) -> bool:
        """Return True when nothing is masked (this reads one bool back from the device)."""
        if not self.frame_blocks and not self.global_blocks:
            return True
        return not bool(self.dynamic.any())

    def keep_masks(self, num_special: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Boolean SDPA masks (True = may be attended to).

        Args:
            num_special: special tokens in front of each frame's patches (always kept).

        Returns:
            ``frame_keep[B*S,1,1,P]`` for frame attention and ``global_keep[B,1,1,S*P]`` for
            global attention, with ``P = num_special + N``.
        """
        batch, frames, _ = self.dynamic.shape
        special = torch.ones(
            batch, frames, num_special, dtype=torch.bool, device=self.dynamic.device
        )
        keep = torch.cat([special, ~self.dynamic.bool()], dim=2)
        frame_keep = keep.reshape(batch * frames, 1, 1, -1)
        global_keep = keep.reshape(batch, 1, 1, -1)
        return frame_keep, global_keep
