"""Decoding images safely: a cheap integrity check in Python, decoding in the TF graph.

``check_image_file`` reads only a file's first and last bytes: it catches
missing, zero-byte, non-image and truncated JPEG/PNG files (no end marker), so
they are skipped before training. ``decode_image`` decodes, converts channels
and resizes inside the graph (runs in tf.data's thread pool).
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
MAX_IMAGE_BYTES = 64 * 1024 * 1024

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
    return None


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
    return None


def decode_image(data: tf.Tensor, channels: int, image_size: tuple[int, int] | None) -> tf.Tensor:
    """Encoded bytes -> uint8 ``[H, W, channels]`` (resized to ``image_size`` if given)."""
    image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    return resize_uint8(image, image_size)


def resize_uint8(image: tf.Tensor, image_size: tuple[int, int] | None) -> tf.Tensor:
    """Resize a uint8 image (or batch) with bilinear filtering and round back to uint8."""
    if image_size is None:
        return image
    resized = tf.image.resize(image, image_size, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
