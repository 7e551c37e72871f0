# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Metric scale from an aligned depth image (registered to the colour camera).

Per window: for every frame with a depth image paired by stamp, sample the sensor depth at the
camera pixel each (strided) network pixel shows, and take log(sensor / VGGT) over pixels that are
static, confident and valid in both (sensor 0, NaN or outside [min_range, max_range] ignored).
The estimate is the median of all those log ratios: robust to holes, edges and outliers.

Both depths are z-depths along the same optical axis (VGGT's resize and crop keep the camera's
rays), so their ratio is the scale. Camera <-> network pixels follow ``ResizeCrop``: network
pixel centre x_n + 0.5 = (x_c + 0.5) * sx - left; the sensor is sampled at the nearest camera
pixel (no interpolation across depth edges).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from vggt4d_ros.geometry.image_transform import ResizeCrop
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.runtime.scale.config import DepthScaleConfig
from vggt4d_ros.runtime.scale.estimate import combine_frames
from vggt4d_ros.runtime.scale.estimate import ScaleEstimate
from vggt4d_ros.runtime.scale.samples import grid_stride
from vggt4d_ros.runtime.scale.samples import static_samples

#: Supported encodings and their unit in metres (16-bit: millimetres, 0 = invalid).
DEPTH_UNITS_M = {'16UC1': 0.001, 'mono16': 0.001, '32FC1': 1.0}


class DepthInputError(ValueError):
    """A depth image that cannot be used; ``reason`` is the counted outcome."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason


@dataclass
class DepthImage:
    """One depth image as received.

    Attributes:
        stamp_ns: header stamp (paired with the colour image's stamp).
        data: [H,W] uint16 millimetres ('16UC1'/'mono16') or float32 metres ('32FC1').
        encoding: ROS image encoding.

    """

    stamp_ns: int
    data: np.ndarray
    encoding: str


def checked_depth(image: DepthImage) -> tuple[np.ndarray, float]:
    """Check encoding and dtype; return the raw [H,W] array and its unit in metres.

    Raises:
        DepthInputError: unsupported encoding ('wrong_encoding') or not a 2-D array of the
            encoding's dtype ('wrong_shape').

    """
    unit = DEPTH_UNITS_M.get(image.encoding)
    if unit is None:
        raise DepthInputError('wrong_encoding', f'depth encoding {image.encoding!r} is not one '
                              f'of {sorted(DEPTH_UNITS_M)}')
    data = np.asarray(image.data)
    expected = np.uint16 if unit != 1.0 else np.float32
    if data.ndim != 2 or data.dtype != expected:
        raise DepthInputError('wrong_shape', f'depth {image.encoding} must be [H,W] '
                              f'{np.dtype(expected).name}, got {data.shape} {data.dtype}')
    return data, unit


def to_metres(raw: np.ndarray, unit: float) -> np.ndarray:
    """Raw depth values -> float32 metres, NaN where invalid (0 or non-finite)."""
    metres = raw.astype(np.float32) * np.float32(unit)
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def depth_in_metres(image: DepthImage) -> np.ndarray:
    """[H,W] float32 metres of a whole depth image, NaN where invalid (see checked_depth)."""
    return to_metres(*checked_depth(image))


def camera_pixel_indices(plan: ResizeCrop, rows: np.ndarray, cols: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest camera pixel of network pixels: (cam_rows, cam_cols, row_ok, col_ok).

    ``row_ok``/``col_ok`` are False where the network pixel shows no camera pixel (pad mode).
    """
    sx, sy = plan.scale_xy
    top, left = plan.offset_yx
    cam_x = np.floor((cols + 0.5 + left) / sx).astype(np.int64)
    cam_y = np.floor((rows + 0.5 + top) / sy).astype(np.int64)
    height, width = plan.camera_hw
    col_ok = (cam_x >= 0) & (cam_x < width)
    row_ok = (cam_y >= 0) & (cam_y < height)
    return np.clip(cam_y, 0, height - 1), np.clip(cam_x, 0, width - 1), row_ok, col_ok


class DepthScale:
    """Depth source; :meth:`estimate` once per window."""

    source = 'depth'

    def __init__(self, config: DepthScaleConfig | None = None) -> None:
        self.config = config or DepthScaleConfig()
        #: per-frame outcomes over the source's life ('used', 'no_depth', 'wrong_size', ...)
        self.frame_outcomes: Counter = Counter()

    def estimate(self, result: WindowResult, depths: Mapping[int, DepthImage]) -> ScaleEstimate:
        """Metres per unit of this window.

        Args:
            result: the window.
            depths: depth images by colour-image stamp (the pairing is done upstream); frames
                without one are skipped ('no_depth').

        """
        cfg = self.config
        stride = cfg.pixel_stride or grid_stride(result.transform.network_hw)
        samples = static_samples(result, stride, cfg.conf_percentile, cfg.mask_dilation_px)
        cam_rows, cam_cols, row_ok, col_ok = camera_pixel_indices(
            result.transform, samples.rows, samples.cols)
        inside = row_ok[:, None] & col_ok[None, :]
        outcomes: Counter = Counter()
        log_ratios = []
        for index, stamp in enumerate(result.stamps_ns):
            image = depths.get(int(stamp))
            outcome, ratios = self._frame(image, result.transform, samples.depth[index],
                                          samples.usable[index] & inside, cam_rows, cam_cols)
            outcomes[outcome] += 1
            if ratios is not None:
                log_ratios.append(ratios)
        self.frame_outcomes.update(outcomes)
        details = {'frames': dict(outcomes)}
        if not log_ratios:
            # The most specific reason: a bad image beats a missing one.
            bad = [o for o in outcomes if o not in ('used', 'no_depth', 'all_invalid')]
            reason = bad[0] if bad else ('all_invalid' if outcomes['all_invalid'] else
                                         'no_depth')
            return ScaleEstimate.failed(self.source, reason, details)
        return combine_frames(log_ratios, self.source, cfg.min_pixels, details)

    def _frame(self, image: DepthImage | None, plan: ResizeCrop, vggt: np.ndarray,
               usable: np.ndarray, cam_rows: np.ndarray, cam_cols: np.ndarray
               ) -> tuple[str, np.ndarray | None]:
        """Outcome and log ratios [K] of one frame."""
        if image is None:
            return 'no_depth', None
        try:
            raw, unit = checked_depth(image)
        except DepthInputError as error:
            return error.reason, None
        if raw.shape != tuple(plan.camera_hw):
            return 'wrong_size', None
        # Convert only the sampled pixels (a 640x480 image has 20x more than the grid).
        sensor = to_metres(raw[cam_rows[:, None], cam_cols[None, :]], unit)
        cfg = self.config
        with np.errstate(invalid='ignore'):
            ok = usable & (sensor >= cfg.min_range_m) & (sensor <= cfg.max_range_m)
        if not ok.any():
            return 'all_invalid', None
        return 'used', np.log(sensor[ok]) - np.log(vggt[ok].astype(np.float64))
