"""Decoding images safely: a cheap integrity check in Python, decoding in the TF graph.

``check_image_file`` reads only a file's first and last bytes and its header:
it catches missing, zero-byte, non-image and truncated JPEG/PNG files (no end
marker) and decompression bombs (a header claiming more than ``MAX_PIXELS``
pixels), so they are skipped before training. ``decode_image`` decodes,
converts channels and resizes inside the graph (runs in tf.data's thread
pool); it refuses a header over ``MAX_PIXELS`` before allocating anything, so
bytes that never passed the Python check (TFRecord shards) are guarded too.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import tensorflow as tf

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 64_000_000  # 8000 x 8000; a larger header is treated as a decompression bomb

_MAGIC = {
    b"\xff\xd8\xff": "jpeg",
    b"\x89PNG\r\n\x1a\n": "png",
    b"BM": "bmp",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
}


def sniff_format(head: bytes) -> str | None:
    """The image format from its first bytes, or None."""
    for magic, fmt in _MAGIC.items():
        if head.startswith(magic):
            return fmt
    return None


def check_image_file(path: str | os.PathLike) -> str | None:
    """None if ``path`` looks like a complete image, else the reason to skip it."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size == 0:
            return "empty_file"
        if size > MAX_IMAGE_BYTES:
            return "too_large"
        with p.open("rb") as f:
            head = f.read(16)
            f.seek(max(0, size - 64))
            tail = f.read()
    except OSError:
        return "unreadable"
    fmt = sniff_format(head)
    if fmt is None:
        return "not_an_image"
    if fmt == "jpeg" and b"\xff\xd9" not in tail:
        return "truncated"
    if fmt == "png" and b"IEND" not in tail:
        return "truncated"
    return _check_header(p)


def check_image_bytes(data: bytes) -> str | None:
    """Like ``check_image_file`` for bytes already in memory."""
    if not data:
        return "empty_file"
    fmt = sniff_format(data[:16])
    if fmt is None:
        return "not_an_image"
    if fmt == "jpeg" and b"\xff\xd9" not in data[-64:]:
        return "truncated"
    if fmt == "png" and b"IEND" not in data[-64:]:
        return "truncated"
    return _check_header(io.BytesIO(data))


def _check_header(source) -> str | None:
    """Read the header only (Pillow opens lazily): unreadable headers and bombs are refused."""
    from PIL import Image

    try:
        with Image.open(source) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        return "too_many_pixels"
    except Exception:  # noqa: BLE001 - Pillow raises many types for a damaged header
        return "bad_header"
    return "too_many_pixels" if width * height > MAX_PIXELS else None


def decode_image(data: tf.Tensor, channels: int, image_size: tuple[int, int] | None) -> tf.Tensor:
    """Encoded bytes -> uint8 ``[H, W, channels]`` (resized to ``image_size`` if given).

    Raises ``InvalidArgumentError`` (dropped by ``ignore_errors``) when the header
    claims more than ``MAX_PIXELS`` pixels, before any pixel buffer is allocated."""
    with tf.control_dependencies([tf.debugging.assert_less_equal(
            header_pixels(data), tf.constant(MAX_PIXELS, tf.int64), message="image header claims too many pixels")]):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    return resize_uint8(image, image_size)


def header_pixels(data: tf.Tensor) -> tf.Tensor:
    """int64 width x height read from a JPEG/PNG/GIF/BMP header in the graph (0 if unknown)."""
    padded = data + tf.constant(b"\0" * 32)

    def number(offset: int, size: int, big_endian: bool, signed: bool = False) -> tf.Tensor:
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, offset, size), tf.uint8), tf.int64)
        weights = [256 ** (size - 1 - i) if big_endian else 256**i for i in range(size)]
        value = tf.reduce_sum(raw * tf.constant(weights, tf.int64))
        return tf.where(value >= 2 ** (8 * size - 1), value - 2 ** (8 * size), value) if signed else value

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0] * shape[1]

    head = tf.strings.substr(padded, 0, 8)
    other = tf.case([
        (tf.equal(head, b"\x89PNG\r\n\x1a\n"), lambda: number(16, 4, True) * number(20, 4, True)),
        (tf.equal(tf.strings.substr(head, 0, 3), b"GIF"), lambda: number(6, 2, False) * number(8, 2, False)),
        (tf.equal(tf.strings.substr(head, 0, 2), b"BM"), lambda: tf.abs(number(18, 4, False, True) * number(22, 4, False, True))),
    ], default=lambda: tf.constant(0, tf.int64))
    return tf.cond(tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff"), jpeg, lambda: other)


def resize_uint8(image: tf.Tensor, image_size: tuple[int, int] | None) -> tf.Tensor:
    """Resize a uint8 image (or batch) with bilinear filtering and round back to uint8."""
    if image_size is None:
        return image
    resized = tf.image.resize(image, image_size, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
