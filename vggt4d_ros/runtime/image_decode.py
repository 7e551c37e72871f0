# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""ONE image decoder for the node and offline replay: raw and compressed camera images.

Both front ends hand over the fields of a ``sensor_msgs/Image`` (encoding, height, width,
step, is_bigendian, data) or of a ``sensor_msgs/CompressedImage`` (format, data) and get
HxWx3 uint8 RGB back, or an :class:`ImageDecodeError` saying why not. Input limits are
checked before any allocation: the pixel count and aspect ratio of a raw image come from its
header fields; those of a compressed image from its PNG/JPEG/... header, read without decoding
(a 140 KB PNG can hold 12000x12000 pixels, 432 MB decoded).

Conversions to RGB (defined for every accepted encoding):

- ``rgb8``: as is; ``bgr8``: channels reversed; ``rgba8`` / ``bgra8``: alpha dropped.
- ``mono8`` / ``8UC1``: grey replicated to three channels.
- ``mono16`` / ``16UC1``: ``round(v * 255 / 65535)`` (the full 16-bit range onto 8 bits),
  then grey; big-endian data is honoured.
- ``32FC1``: intensities in [0, 1] (``cv_bridge``'s float convention): clipped, times 255,
  rounded; NaN becomes 0.
"""

from __future__ import annotations

from dataclasses import dataclass
import io
from typing import Any
import warnings

import cv2
import numpy as np
from PIL import Image

from vggt4d_ros.geometry.image_transform import check_camera_size
from vggt4d_ros.geometry.image_transform import ImageSizeError
from vggt4d_ros.geometry.image_transform import MAX_ASPECT_RATIO

#: Accepted raw encodings: (channels, numpy dtype of one channel).
RAW_ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    'rgb8': (3, np.dtype(np.uint8)), 'bgr8': (3, np.dtype(np.uint8)),
    'rgba8': (4, np.dtype(np.uint8)), 'bgra8': (4, np.dtype(np.uint8)),
    'mono8': (1, np.dtype(np.uint8)), '8UC1': (1, np.dtype(np.uint8)),
    'mono16': (1, np.dtype(np.uint16)), '16UC1': (1, np.dtype(np.uint16)),
    '32FC1': (1, np.dtype(np.float32)),
}

#: Default pixel limit: 8K UHD (7680x4320, 33.2 MP, 100 MB as RGB). A 4000x3000 camera fits.
DEFAULT_MAX_PIXELS = 7680 * 4320


class ImageDecodeError(ValueError):
    """Image data that cannot be turned into pixels (short data, bad step, corrupt file)."""


class UnsupportedEncodingError(ImageDecodeError):
    """A raw encoding outside ``RAW_ENCODINGS``; the message is the encoding itself."""


class ImageLimitError(ImageDecodeError):
    """An image refused by the input limits (pixel count, aspect ratio) before decoding."""


@dataclass(frozen=True)
class ImageLimits:
    """Input limits checked before any pixel is allocated.

    Attributes:
        max_pixels: largest accepted width x height.
        max_aspect_ratio: largest accepted longer side / shorter side.

    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_aspect_ratio: float = MAX_ASPECT_RATIO

    def check(self, height: int, width: int, what: str = 'image') -> None:
        """Raise :class:`ImageLimitError` unless a ``height`` x ``width`` image is accepted."""
        if height <= 0 or width <= 0:
            raise ImageDecodeError(f'empty {what} {width}x{height} (WxH)')
        if height * width > self.max_pixels:
            raise ImageLimitError(
                f'{what} {width}x{height} (WxH) has {height * width} pixels, above the limit '
                f'of {self.max_pixels} (parameter max_image_pixels)')
        try:
            check_camera_size((height, width), self.max_aspect_ratio)
        except ImageSizeError as error:
            raise ImageLimitError(str(error)) from error


DEFAULT_LIMITS = ImageLimits()


def raw_to_array(encoding: str, height: int, width: int, step: int, is_bigendian: bool,
                 data: Any, limits: ImageLimits | None = DEFAULT_LIMITS) -> np.ndarray:
    """Pixels of a raw image in their own dtype, honouring ``step`` and byte order.

    Args:
        encoding: ROS image encoding (one of ``RAW_ENCODINGS``).
        height, width, step: the message's fields (step in bytes per row).
        is_bigendian: byte order of multi-byte channels.
        data: the bytes (bytes, array.array or a uint8 numpy array; not copied).
        limits: input limits; None only for trusted data (masks written by this package).

    Returns:
        A new native-endian array [H,W] (one channel) or [H,W,C].

    Raises:
        UnsupportedEncodingError, ImageLimitError, ImageDecodeError.

    """
    spec = RAW_ENCODINGS.get(encoding)
    if spec is None:
        raise UnsupportedEncodingError(encoding)
    channels, dtype = spec
    height, width, step = int(height), int(width), int(step)
    if limits is not None:
        limits.check(height, width, f'{encoding} image')
    elif height <= 0 or width <= 0:
        raise ImageDecodeError(f'empty {encoding} image {width}x{height} (WxH)')
    row_bytes = width * channels * dtype.itemsize
    buffer = np.frombuffer(data, dtype=np.uint8)
    if step < row_bytes or buffer.size < step * height:
        raise ImageDecodeError(f'{encoding} {width}x{height}: step {step} (rows need '
                               f'{row_bytes}), {buffer.size} bytes of data (need '
                               f'{step * height})')
    rows = buffer[:step * height].reshape(height, step)[:, :row_bytes]
    if is_bigendian and dtype.itemsize > 1:
        dtype = dtype.newbyteorder('>')
    pixels = np.ascontiguousarray(rows).view(dtype).astype(dtype.newbyteorder('='))
    return pixels.reshape((height, width) if channels == 1 else (height, width, channels))


def raw_to_rgb(encoding: str, height: int, width: int, step: int, is_bigendian: bool,
               data: Any, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode a raw image to RGB [H,W,3] uint8 (a new, contiguous array; see the module doc).

    Raises:
        UnsupportedEncodingError: the encoding is not in ``RAW_ENCODINGS``.
        ImageLimitError: too many pixels or an absurd aspect ratio (nothing allocated).
        ImageDecodeError: zero size, or step / data length do not match the size.

    """
    pixels = raw_to_array(encoding, height, width, step, is_bigendian, data, limits)
    if encoding == 'rgb8':
        return pixels
    if encoding in ('bgr8', 'rgba8', 'bgra8'):
        conversion = {'bgr8': cv2.COLOR_BGR2RGB, 'rgba8': cv2.COLOR_RGBA2RGB,
                      'bgra8': cv2.COLOR_BGRA2RGB}[encoding]
        return cv2.cvtColor(pixels, conversion)
    if pixels.dtype == np.uint16:
        # round(v * 255 / 65535) == (v + 128) // 257 for every 16-bit v, in integers.
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif pixels.dtype == np.float32:
        pixels = np.nan_to_num(pixels, nan=0.0, posinf=1.0, neginf=0.0)
        pixels = np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)


def compressed_size(data: Any) -> tuple[int, int]:
    """(height, width) from a compressed image's header, without decoding its pixels.

    Raises:
        ImageDecodeError: the header is not one of a format PIL and OpenCV both read.

    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(memoryview(data).tobytes())) as image:
                width, height = image.size
    except Image.DecompressionBombError as error:
        raise ImageLimitError(f'compressed image: {error}') from error
    except Exception as error:  # noqa: B902 - PIL raises many types for garbage headers
        raise ImageDecodeError(f'no readable image header ({type(error).__name__})') from error
    return int(height), int(width)


def compressed_to_rgb(data: Any, image_format: str = '',
                      limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode a compressed image (png, jpeg, ...) to RGB [H,W,3] uint8.

    The size is read from the header first and checked against ``limits``; only an accepted
    image is decoded (with OpenCV).

    Raises:
        ImageLimitError: the header announces too many pixels or an absurd aspect ratio.
        ImageDecodeError: empty data, unreadable header, or OpenCV cannot decode it.

    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError(f'empty {image_format!r} compressed image')
    height, width = compressed_size(buffer)
    limits.check(height, width, f'{image_format!r} compressed image')
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if decoded is None:
        raise ImageDecodeError(f'cannot decode {buffer.size} bytes of {image_format!r} data')
    if decoded.shape[:2] != (height, width):
        raise ImageDecodeError(f'{image_format!r} header says {width}x{height}, the data '
                               f'decodes to {decoded.shape[1]}x{decoded.shape[0]}')
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
