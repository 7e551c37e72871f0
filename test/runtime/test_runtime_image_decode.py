# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The one image decoder: every accepted encoding, the limits before decoding, bad data."""

import cv2
import numpy as np
import pytest

from vggt4d_ros.geometry.image_transform import ImageSizeError
from vggt4d_ros.geometry.image_transform import plan_resize
from vggt4d_ros.runtime import image_decode as d


def _rgb(height=6, width=5):
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _raw(encoding, pixels, pad=0, bigendian=False):
    """(height, width, step, data) of ``pixels`` with ``pad`` bytes after each row."""
    array = np.ascontiguousarray(pixels)
    if bigendian:
        array = array.astype(array.dtype.newbyteorder('>'))
    rows = array.reshape(array.shape[0], -1).view(np.uint8)
    rows = np.concatenate([rows, np.full((rows.shape[0], pad), 7, np.uint8)], axis=1)
    return array.shape[0], array.shape[1], rows.shape[1], rows.tobytes()


@pytest.mark.parametrize('encoding, make', [
    ('rgb8', lambda rgb: rgb),
    ('bgr8', lambda rgb: rgb[..., ::-1]),
    ('rgba8', lambda rgb: np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 9, np.uint8)], -1)),
    ('bgra8', lambda rgb: np.concatenate([rgb[..., ::-1],
                                          np.full(rgb.shape[:2] + (1,), 9, np.uint8)], -1)),
])
def test_colour_encodings_give_the_same_rgb(encoding, make):
    rgb = _rgb()
    height, width, step, data = _raw(encoding, make(rgb), pad=3)
    out = d.raw_to_rgb(encoding, height, width, step, False, data)
    np.testing.assert_array_equal(out, rgb)
    assert out.flags.c_contiguous and out.dtype == np.uint8


def test_grey_encodings_have_defined_conversions():
    grey8 = np.array([[0, 17, 255]], np.uint8)
    for encoding in ('mono8', '8UC1'):
        out = d.raw_to_rgb(encoding, *_raw(encoding, grey8)[:3], False, grey8.tobytes())
        np.testing.assert_array_equal(out, np.repeat(grey8[..., None], 3, -1))
    grey16 = np.array([[0, 128, 129, 65535, 257 * 100]], np.uint16)
    expected = np.array([[0, 0, 1, 255, 100]], np.uint8)
    for encoding in ('mono16', '16UC1'):
        for bigendian in (False, True):
            height, width, step, data = _raw(encoding, grey16, pad=2, bigendian=bigendian)
            out = d.raw_to_rgb(encoding, height, width, step, bigendian, data)
            np.testing.assert_array_equal(out[..., 0], expected)
            np.testing.assert_array_equal(out[..., 0], np.rint(grey16.astype(float) * 255 / 65535))
    depth = np.array([[np.nan, -1.0, 0.5, 1.0, 7.0]], np.float32)
    out = d.raw_to_rgb('32FC1', *_raw('32FC1', depth)[:3], False, depth.tobytes())
    np.testing.assert_array_equal(out[..., 1], [[0, 0, 128, 255, 255]])


@pytest.mark.parametrize('encoding', ['yuv422', 'bayer_rggb8', '64FC1', '8UC3', 'RGB8', ''])
def test_unsupported_encodings_are_named(encoding):
    with pytest.raises(d.UnsupportedEncodingError) as error:
        d.raw_to_rgb(encoding, 2, 2, 6, False, bytes(12))
    assert str(error.value) == encoding


@pytest.mark.parametrize('height, width, step, length', [
    (0, 4, 12, 0), (4, 0, 0, 0),  # empty
    (4, 4, 11, 48),  # step shorter than a row
    (4, 4, 12, 47),  # data shorter than step x height
    (4, 4, 10**12, 48),  # absurd step
])
def test_inconsistent_sizes_are_decode_errors(height, width, step, length):
    with pytest.raises(d.ImageDecodeError):
        d.raw_to_rgb('rgb8', height, width, step, False, bytes(length))


def test_limits_refuse_before_touching_the_data():
    # 100000 x 100000 would be 30 GB; nothing is allocated: the data is only 12 bytes.
    with pytest.raises(d.ImageLimitError, match='max_image_pixels'):
        d.raw_to_rgb('rgb8', 100000, 100000, 300000, False, bytes(12))
    # The 2x2000 frame (2000 rows of 2 pixels): refused for its aspect ratio.
    with pytest.raises(d.ImageLimitError, match='aspect ratio'):
        d.raw_to_rgb('rgb8', 2000, 2, 6, False, bytes(12000))
    small = d.ImageLimits(max_pixels=100)
    with pytest.raises(d.ImageLimitError):
        d.raw_to_rgb('rgb8', 10, 11, 33, False, bytes(330), small)
    assert d.raw_to_rgb('rgb8', 10, 10, 30, False, bytes(300), small).shape == (10, 10, 3)


def test_plan_resize_refuses_absurd_aspect_ratios_and_bounds_the_resize():
    with pytest.raises(ImageSizeError, match='aspect ratio'):
        plan_resize((2000, 2), 'crop')
    with pytest.raises(ImageSizeError):
        plan_resize((2, 2000), 'pad')
    tallest = plan_resize((8000, 1000), 'crop')  # the limit itself is accepted
    assert tallest.resized_hw[0] * tallest.resized_hw[1] <= 8 * 518 * 518


def _png(rgb):
    ok, data = cv2.imencode('.png', rgb[..., ::-1])
    assert ok
    return data.tobytes()


def test_compressed_png_and_jpeg_decode_to_rgb():
    rgb = _rgb(16, 24)
    np.testing.assert_array_equal(d.compressed_to_rgb(_png(rgb), 'png'), rgb)
    smooth = np.zeros((16, 24, 3), np.uint8)
    smooth[..., 0] = np.arange(24) * 10  # red ramp, blue constant
    smooth[..., 2] = 200
    ok, jpeg = cv2.imencode('.jpg', smooth[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    out = d.compressed_to_rgb(np.frombuffer(jpeg.tobytes(), np.uint8), 'jpeg')
    assert out.shape == (16, 24, 3) and np.abs(out.astype(int) - smooth).max() < 8
    assert d.compressed_size(jpeg.tobytes()) == (16, 24)


def test_compressed_size_is_read_from_the_header_before_decoding(monkeypatch):
    # A 12000x12000 PNG of zeros is ~140 KB and would decode to 432 MB.
    big = _png(np.zeros((12000, 12000, 3), np.uint8))
    assert len(big) < 1_000_000
    assert d.compressed_size(big) == (12000, 12000)

    def no_decode(*args):
        raise AssertionError('decoded despite the limit')

    monkeypatch.setattr(d.cv2, 'imdecode', no_decode)
    with pytest.raises(d.ImageLimitError, match='max_image_pixels'):
        d.compressed_to_rgb(big, 'png')
    tall = _png(np.zeros((900, 100, 3), np.uint8))
    with pytest.raises(d.ImageLimitError, match='aspect ratio'):
        d.compressed_to_rgb(tall, 'png')


@pytest.mark.parametrize('data', [b'', b'\xff\xd8 garbage', b'\x89PNG\r\n\x1a\n' + bytes(30),
                                  bytes(range(256)) * 4])
def test_garbage_compressed_data_is_a_decode_error(data):
    with pytest.raises(d.ImageDecodeError):
        d.compressed_to_rgb(data, 'jpeg')


def test_truncated_png_is_a_decode_error():
    data = _png(_rgb(64, 64))
    with pytest.raises(d.ImageDecodeError):
        d.compressed_to_rgb(data[:len(data) // 2], 'png')
