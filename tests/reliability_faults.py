"""Bad inputs for the reliability tests and benchmark: real images and the ways files go wrong.

``BAD_IMAGES`` maps a fault name to (file bytes, the skip reason the readers must report).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def real_images(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real digit images, uint8 ``[n, size, size, 3]``, and their labels (scikit-learn digits)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.random.default_rng(seed).permutation(len(d.images))[:n]
    small = np.round(d.images[idx] * (255 / 16)).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in small])
    return np.repeat(big[..., None], 3, axis=-1), d.target[idx]


def encode(image: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny, well-formed PNG whose header claims ``width x height`` pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (3 * 64 + 1) * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def real_png_bomb(width: int, height: int, grey: bool = True) -> bytes:
    """A complete, decodable all-black PNG of ``width x height`` (a few hundred KB for hundreds of Mpx).

    Unlike ``png_bomb`` its pixel data is all there: a decoder without a size
    guard really allocates ``width x height x channels`` bytes for it."""
    channels = 1 if grey else 3
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0 if grey else 2, 0, 0, 0)
    z = zlib.compressobj(9)
    row = b"\x00" * (1 + channels * width)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def header_bomb(fmt: str, width: int, height: int) -> bytes:
    """A GIF/BMP/PNG whose header claims ``width x height`` (pixel data missing: only the header is real)."""
    if fmt == "png":
        return png_bomb(width, height)
    if fmt == "gif":
        return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(dib) + 64, 0, 0, 14 + len(dib)) + dib + b"\x00" * 64


def _bad_images() -> dict[str, tuple[bytes, str]]:
    good = encode(real_images(1, 32)[0][0])
    rng = np.random.default_rng(1)
    return {
        "zero_byte": (b"", "empty_file"),
        "truncated": (good[: len(good) // 2], "truncated"),
        "wrong_format": (b"%PDF-1.4 this is a document, not an image\n", "not_an_image"),
        "corrupt_header": (b"\xff\xd8\xff" + rng.integers(0, 256, 300, dtype=np.uint8).tobytes() + b"\xff\xd9", "bad_header"),
        "decompression_bomb": (png_bomb(), "too_many_pixels"),
    }


BAD_IMAGES = _bad_images()


def write_bad_images(folder: Path, suffix: str = ".png") -> dict[str, Path]:
    """One file per fault in ``folder``; returns fault name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (data, _) in BAD_IMAGES.items():
        out[name] = folder / f"bad_{name}{suffix}"
        out[name].write_bytes(data)
    return out


def expected_skips(count: int = 1) -> dict[str, int]:
    """The ``skipped`` counter a reader must report for ``count`` copies of every bad image."""
    return {reason: count for _, reason in BAD_IMAGES.values()}


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<annotation><filename>&lol9;</filename><size><width>10</width><height>10</height></size></annotation>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotation><filename>&xxe;</filename><size><width>10</width><height>10</height></size></annotation>
"""
