"""Decoding images safely: one size guard for every decode path.

``check_image_file`` reads only a file's first and last bytes and its header:
it catches missing, zero-byte, non-image and truncated JPEG/PNG files (no end
marker) and decompression bombs (a header claiming more than ``max_pixels()``
pixels), so they are skipped before training. ``decode_image`` decodes,
converts channels and resizes inside the graph (tf.data's thread pool, and the
``serving_bytes`` signature of every export); it refuses a header over the
limit before allocating anything, so bytes that never passed the Python check
(TFRecord shards, requests to a served model) are guarded too. ``open_image``
is the same guard for Pillow (faces, style transfer): a bomb is an
``ImageTooLarge`` (a ``ValueError`` with a one-line message), never Pillow's
``DecompressionBombError``.

The limit is 64 Mpx (8000 x 8000); set ``CONVFORGE_MAX_PIXELS`` to change it.
An export keeps the limit it was written with.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from pathlib import Path

import tensorflow as tf

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 64_000_000  # 8000 x 8000; a larger header is treated as a decompression bomb
MAX_PIXELS_ENV = "CONVFORGE_MAX_PIXELS"


class ImageTooLarge(ValueError):
    """An image whose header claims more pixels than ``max_pixels()`` (a likely decompression bomb)."""


def max_pixels() -> int:
    """The pixel limit: ``CONVFORGE_MAX_PIXELS`` if set (a positive integer), else ``MAX_PIXELS``."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not raw:
        return MAX_PIXELS
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f"{MAX_PIXELS_ENV}={raw[:40]!r} must be a positive whole number of pixels (e.g. 64000000)")
    return int(raw)


def check_pixels(width: int, height: int, name: str) -> None:
    """Raise ``ImageTooLarge`` (one line naming ``name`` and the fix) when ``width x height`` is over the limit."""
    limit = max_pixels()
    if int(width) * int(height) > limit:
        raise ImageTooLarge(f"image {name} is {width}x{height} pixels, over the limit of {limit:,} "
                            f"(a decompression bomb?); downscale it or raise {MAX_PIXELS_ENV}")


@contextlib.contextmanager
def open_image(source, name: str | None = None):
    """``PIL.Image.open`` with the size guard applied to the header, before any pixel is decoded.

    ``source`` is a path, a file object or bytes. Raises ``ImageTooLarge`` for
    a bomb (Pillow's ``DecompressionBombError`` included), and Pillow's own
    errors (``UnidentifiedImageError``, ``OSError``) for unreadable files.
    """
    from PIL import Image

    name = name or ("image bytes" if isinstance(source, bytes) else str(source))
    Image.MAX_IMAGE_PIXELS = max_pixels()  # Pillow's own check (at twice this) agrees with ours
    try:
        with warnings.catch_warnings():  # over the limit is refused just below, not warned about
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"image {name} claims too many pixels (over twice the limit of {max_pixels():,}; "
                            f"a decompression bomb?); downscale it or raise {MAX_PIXELS_ENV}") from None
    with im:
        check_pixels(*im.size, name)
        yield im

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
    try:
        with open_image(source, "header"):
            pass
    except ImageTooLarge:
        return "too_many_pixels"
    except Exception:  # noqa: BLE001 - Pillow raises many types for a damaged header
        return "bad_header"
    return None


def decode_image(data: tf.Tensor, channels: int, image_size: tuple[int, int] | None) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes -> uint8 ``[H, W, channels]`` (resized to ``image_size`` if given).

    Raises ``InvalidArgumentError`` (dropped by ``ignore_errors``; a failed
    request when serving) when the header claims more than ``max_pixels()``
    pixels (read when the graph is traced) or the format is none of these four,
    before any pixel buffer is allocated. GIF and BMP become 1-channel too
    (TensorFlow decodes them only as RGB: converted to grey here)."""
    pixels = header_pixels(data)
    with tf.control_dependencies([
        tf.debugging.assert_positive(pixels, message="not a JPEG, PNG, GIF or BMP image"),
        tf.debugging.assert_less_equal(pixels, tf.constant(max_pixels(), tf.int64),
                                       message=f"image header claims more than {max_pixels()} pixels"),
    ]):
        image = _decode_channels(data, channels)
    return resize_uint8(image, image_size)


def _decode_channels(data: tf.Tensor, channels: int) -> tf.Tensor:
    if channels != 1:
        return tf.io.decode_image(data, channels=channels, expand_animations=False)
    head = tf.strings.substr(data, 0, 3)
    rgb_only = tf.logical_or(tf.equal(head, b"GIF"), tf.equal(tf.strings.substr(head, 0, 2), b"BM"))

    def grey_from_rgb():
        rgb = tf.io.decode_image(data, channels=3, expand_animations=False)
        return tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(rgb, tf.float32))), tf.uint8)

    image = tf.cond(rgb_only, grey_from_rgb, lambda: tf.io.decode_image(data, channels=1, expand_animations=False))
    image.set_shape([None, None, 1])
    return image


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


def report_undecodable(ds: tf.data.Dataset, expected: int, name: str) -> tf.data.Dataset:
    """``ds`` (decoded, after ``ignore_errors``) with a warning line at the end of every pass that lost elements.

    Files whose header and trailer are fine but whose body is damaged pass the
    cheap file check and only fail when decoded; ``ignore_errors`` drops them.
    This counts the elements that come through and, when a pass ends short of
    ``expected``, prints ``warning: K of N images of NAME could not be decoded``
    to stderr. It keeps no state outside the pipeline (a ``scan``), so it also
    runs on tf.data service workers.
    """
    dummy = tf.nest.map_structure(lambda s: tf.zeros([d if d is not None else 0 for d in s.shape], s.dtype),
                                  ds.element_spec)
    flagged = ds.map(lambda *x: (x if len(x) > 1 else x[0], False))
    flagged = flagged.concatenate(tf.data.Dataset.from_tensors((dummy, True)))

    def step(count, item):
        element, last = item
        dropped = tf.constant(expected, tf.int64) - count

        def warn():
            tf.print("warning:", dropped, "of", expected, f"images of {name} could not be decoded (damaged after a valid "
                     "header) and were skipped", output_stream=sys.stderr)
            return tf.constant(0, tf.int64)

        done = tf.cond(tf.logical_and(last, dropped > 0), warn, lambda: tf.constant(0, tf.int64))
        with tf.control_dependencies([done]):
            return count + tf.cast(tf.logical_not(last), tf.int64), (element, last)

    counted = flagged.scan(tf.constant(0, tf.int64), step)
    return counted.filter(lambda element, last: tf.logical_not(last)).map(lambda element, last: element)
