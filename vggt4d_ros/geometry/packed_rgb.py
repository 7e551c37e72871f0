# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""RGB packed into one float32 per point, the PointCloud2 ``rgb`` field RViz and PCL read.

The float's bits are ``0x00RRGGBB`` (a reinterpretation, not a conversion): the value itself
is meaningless, and some patterns are NaNs, so packed colours are only ever copied, never
computed with.
"""

from __future__ import annotations

import numpy as np


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """Pack colours [N,3] uint8 into float32 [N] whose bits are 0x00RRGGBB."""
    colors = np.asarray(colors).reshape(-1, 3).astype(np.uint32)
    packed = (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]
    return packed.astype(np.uint32).view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_rgb`: float32 [N] -> colours [N,3] uint8."""
    bits = np.ascontiguousarray(packed, dtype=np.float32).view(np.uint32)
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=1).astype(np.uint8)
