"""TFRecord shards: write labelled images once, read them back interleaved and in parallel.

Layout written by ``write_shards`` (and ``convforge data pack``)::

    OUT/data-00000-of-00004.tfrecord ... data-00003-of-00004.tfrecord
    OUT/dataset.json      class names, counts, channels, skipped files by reason

Each record is a ``tf.train.Example`` with ``image/encoded`` (the original
JPEG/PNG bytes, or PNG for in-memory arrays), ``image/class/label`` (int64)
and ``image/filename``. Images are checked before they are written (corrupt,
truncated and zero-byte files are skipped and counted in ``dataset.json``);
reading interleaves the shards (``cycle_length`` at a time, in parallel) and
decodes in tf.data's thread pool. A damaged shard loses its tail with a
warning, never the epoch.

Example:
    >>> write_shards(image_folder("data/flowers"), "data/flowers-tfr", shards=8)
    >>> source = read_shards("data/flowers-tfr")
    >>> source.dataset                  # (uint8 [H, W, C], int64) elements
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipelines.decode import check_image_bytes, decode_image

META = "dataset.json"
FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


@dataclass
class Shards:
    """What ``read_shards`` returns: the dataset plus the metadata written beside it."""

    dataset: tf.data.Dataset
    class_names: list[str]
    count: int
    paths: list[str]
    skipped: Counter = field(default_factory=Counter)  # counted when the shards were packed


def example(encoded: bytes, label: int, filename: str = "") -> bytes:
    """One serialised ``tf.train.Example`` record."""
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "image/filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[filename.encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def encode_png(image: np.ndarray) -> bytes:
    """uint8 ``[H, W, C]`` (C = 1 or 3, RGB) -> PNG bytes."""
    return tf.io.encode_png(image).numpy()


def write_shards(
    items: Iterable[tuple[bytes, int, str]], out: str | Path, shards: int, class_names: list[str],
    channels: int | None = None, skipped: Counter | None = None, prefix: str = "data",
    image_size: tuple[int, int] | None = None,
) -> list[Path]:
    """Write ``(encoded bytes, label, filename)`` items round-robin into ``shards`` files
    under ``out`` and a ``dataset.json``; items whose bytes are not a complete image are
    skipped and counted. ``image_size`` records that every image has that size
    (in-memory arrays), so readers get a static shape. Returns the shard paths."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1; received {shards}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{prefix}-{i:05d}-of-{shards:05d}.tfrecord" for i in range(shards)]
    skipped = Counter(skipped or {})
    counts = Counter()
    writers = [tf.io.TFRecordWriter(str(p)) for p in paths]
    n = 0
    try:
        for encoded, label, name in items:
            problem = check_image_bytes(encoded)
            if problem:
                skipped[problem] += 1
                continue
            writers[n % shards].write(example(encoded, label, name))
            counts[int(label)] += 1
            n += 1
    finally:
        for w in writers:
            w.close()
    meta = {"class_names": list(class_names), "count": n, "channels": channels,
            "image_size": list(image_size) if image_size else None, "shards": [p.name for p in paths],
            "per_class": {class_names[k] if k < len(class_names) else str(k): v for k, v in sorted(counts.items())},
            "skipped": dict(skipped)}
    (out / META).write_text(json.dumps(meta, indent=2))
    return paths


def files_items(paths: list[str], labels: list[int], root: str | Path | None = None):
    """``(bytes, label, name)`` for files on disk (unreadable ones yield empty bytes: skipped)."""
    for path, label in zip(paths, labels, strict=True):
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = b""
        name = str(Path(path).relative_to(root)) if root else Path(path).name
        yield data, label, name


def array_items(images: np.ndarray, labels: np.ndarray):
    """``(PNG bytes, label, name)`` for in-memory uint8 images ``[N, H, W, C]``."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        yield encode_png(image), int(label), f"{i:06d}.png"


def read_shards(
    src: str | Path, channels: int | None = None, image_size: tuple[int, int] | None = None,
    cycle_length: int = 4, deterministic: bool = True,
) -> Shards:
    """Read a folder written by ``write_shards`` (or a glob of ``.tfrecord`` files):
    shards interleaved ``cycle_length`` at a time with parallel reads, records parsed and
    decoded in parallel -> ``(uint8 [H, W, C], int64 label)``."""
    src = Path(src)
    meta = json.loads((src / META).read_text()) if (src / META).is_file() else {}
    paths = sorted(str(p) for p in (src.glob("*.tfrecord") if src.is_dir() else src.parent.glob(src.name)))
    if not paths:
        raise FileNotFoundError(f"no .tfrecord shards at {src} (write them with `convforge data pack`)")
    channels = channels or meta.get("channels") or 3
    static = image_size or meta.get("image_size")
    files = tf.data.Dataset.from_tensor_slices(paths)
    records = files.interleave(
        lambda p: tf.data.TFRecordDataset(p).ignore_errors(log_warning=True),
        cycle_length=min(cycle_length, len(paths)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic,
    )

    def parse(record):
        e = tf.io.parse_single_example(record, FEATURES)
        image = decode_image(e["image/encoded"], channels, image_size)
        if static:
            image = tf.ensure_shape(image, [*static, channels])
        return image, e["image/class/label"]

    ds = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic).ignore_errors(log_warning=True)
    names = meta.get("class_names") or []
    return Shards(ds, names, int(meta.get("count", -1)), paths, Counter(meta.get("skipped", {})))
