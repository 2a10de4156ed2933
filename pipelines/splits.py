"""Deterministic train/val/test splits as unbatched tf.data datasets, and batching.

A dataset spec is a catalog name (``fashion_mnist``), ``folder:PATH`` (one
subfolder per class) or ``csv:PATH`` (a ``path,label`` manifest). Catalog sets
keep their own test split; file sets are split by a seeded permutation. Every
element is ``(uint8 image [H, W, C], int64 label)``.

Example:
    >>> s = load_splits("fashion_mnist", seed=42, val_fraction=0.1, train_limit=1000)
    >>> train = batch(s.train, 64, shuffle_buffer=1000, seed=42, training=True)
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from pipelines import catalog, sources
from pipelines.decode import decode_image, report_undecodable, resize_uint8

AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class Splits:
    """Unbatched train/val/test datasets and what a model needs to know about them."""

    train: tf.data.Dataset
    val: tf.data.Dataset | None
    test: tf.data.Dataset | None
    input_shape: tuple[int, int, int]
    class_names: list[str]
    sizes: dict[str, int]
    fingerprint: str
    skipped: Counter = field(default_factory=Counter)
    train_xy: tuple[np.ndarray, np.ndarray] | None = None  # in-memory training arrays, before ``convert``
    convert: Callable | None = None  # (images, labels) -> (images, labels): channels/size, works on batches


def _split_indices(n: int, fractions: tuple[float, float], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(round(n * fractions[0])), int(round(n * fractions[1]))
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


def _limit(idx: np.ndarray, limit: int | None) -> np.ndarray:
    return idx if limit is None else idx[: int(limit)]


def _convert(image: tf.Tensor, channels: int | None, image_size) -> tf.Tensor:
    if channels == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    elif channels == 1 and image.shape[-1] == 3:
        image = tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), tf.uint8)
    return resize_uint8(image, image_size)


def load_splits(
    spec: str,
    seed: int,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    train_limit: int | None = None,
    test_limit: int | None = None,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    derive: str | dict | None = None,
) -> Splits:
    """Load ``spec`` and split it; see the module docstring for the spec forms.

    ``derive`` (catalog sets only) turns the images into 1D sequences or 3D
    clips with ``pipelines.derived.derive`` (e.g. ``"rows"``).
    """
    size = tuple(image_size) if image_size else None
    if spec.startswith(("folder:", "csv:")):
        kind, path = spec.split(":", 1)
        files = sources.image_folder(path) if kind == "folder" else sources.csv_manifest(path)
        if not files.paths:
            raise ValueError(f"dataset {spec!r} has no readable images (skipped: {dict(files.skipped) or 'none'})")
        return _from_files(spec, files, seed, val_fraction, test_fraction, train_limit, test_limit, size, channels or 3)
    data = catalog.load_arrays(spec)
    if derive:
        return _derived(data, derive, seed, val_fraction, train_limit, test_limit)
    tr, va, _ = _split_indices(len(data.x_train), (val_fraction, 0.0), seed)
    tr = _limit(tr, train_limit)
    va = _limit(va, None if train_limit is None else max(1, int(round(train_limit * val_fraction))))
    te = _limit(np.arange(len(data.x_test)), test_limit)
    ch = channels or data.x_train.shape[-1]

    convert = None
    if ch != data.x_train.shape[-1] or size:
        def convert(im, lb):
            return _convert(im, ch, size), lb

    def make(x, y):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        return ds.map(convert, num_parallel_calls=AUTOTUNE) if convert else ds

    h, w = size or data.x_train.shape[1:3]
    return Splits(
        train=make(data.x_train[tr], data.y_train[tr]),
        val=make(data.x_train[va], data.y_train[va]) if len(va) else None,
        test=make(data.x_test[te], data.y_test[te]),
        input_shape=(int(h), int(w), int(ch)),
        class_names=list(data.class_names),
        sizes={"train": len(tr), "val": len(va), "test": len(te)},
        fingerprint=data.fingerprint(),
        train_xy=(data.x_train[tr], data.y_train[tr]),
        convert=convert,
    )


def _derived(data, spec, seed, val_fraction, train_limit, test_limit) -> Splits:
    """Catalog arrays turned into sequences or clips (no resizing, no channel change)."""
    from pipelines.derived import derive

    tr, va, _ = _split_indices(len(data.x_train), (val_fraction, 0.0), seed)
    tr = _limit(tr, train_limit)
    va = _limit(va, None if train_limit is None else max(1, int(round(train_limit * val_fraction))))
    te = _limit(np.arange(len(data.x_test)), test_limit)
    parts = {name: derive(spec, x[idx], y[idx]) for name, (x, y, idx) in
             {"train": (data.x_train, data.y_train, tr), "val": (data.x_train, data.y_train, va),
              "test": (data.x_test, data.y_test, te)}.items() if len(idx)}
    make = {name: tf.data.Dataset.from_tensor_slices(xy) for name, xy in parts.items()}
    return Splits(
        train=make["train"],
        val=make.get("val"),
        test=make.get("test"),
        input_shape=tuple(int(d) for d in parts["train"][0].shape[1:]),
        class_names=list(data.class_names),
        sizes={"train": len(tr), "val": len(va), "test": len(te)},
        fingerprint=f"{data.fingerprint()}-{json.dumps(spec, sort_keys=True)}",
        train_xy=parts["train"],
    )


def _from_files(spec, files, seed, val_fraction, test_fraction, train_limit, test_limit, size, channels) -> Splits:
    paths = np.array(files.paths)
    labels = np.array(files.labels, dtype=np.int64)
    tr, va, te = _split_indices(len(paths), (val_fraction, test_fraction), seed)
    tr, te = _limit(tr, train_limit), _limit(te, test_limit)
    if size is None:
        for path in paths[tr[:100]]:  # the first image that decodes gives the size (a damaged one does not)
            try:
                size = tuple(int(d) for d in decode_image(tf.io.read_file(path), channels, None).shape[:2])
                break
            except tf.errors.InvalidArgumentError:
                continue
        else:
            raise ValueError(f"dataset {spec!r}: none of its first {min(len(tr), 100)} training images can be decoded")

    def make(idx, split):
        if not len(idx):
            return None
        ds = tf.data.Dataset.from_tensor_slices((paths[idx], labels[idx]))
        ds = ds.map(lambda p, lb: (decode_image(tf.io.read_file(p), channels, size), lb), num_parallel_calls=AUTOTUNE)
        # a file that passed the header check but fails to decode is dropped, and counted in a warning line
        return report_undecodable(ds.ignore_errors(), len(idx), f"{spec} ({split})")

    digest = hashlib.sha256("\n".join(f"{p}\t{lb}" for p, lb in zip(files.paths, files.labels, strict=True)).encode()).hexdigest()[:16]
    return Splits(
        train=make(tr, "train"),
        val=make(va, "val"),
        test=make(te, "test"),
        input_shape=(size[0], size[1], channels),
        class_names=files.class_names,
        sizes={"train": len(tr), "val": len(va), "test": len(te)},
        fingerprint=digest,
        skipped=files.skipped,
    )


def batch(
    ds: tf.data.Dataset,
    batch_size: int,
    shuffle_buffer: int = 0,
    seed: int | None = None,
    training: bool = False,
    transform=None,
) -> tf.data.Dataset:
    """Shuffle (training only, reshuffled each epoch), batch, ``transform`` the batches, prefetch.

    ``transform(batched_ds) -> batched_ds`` is where per-batch work goes
    (augmentation, the tf.data service), before ``prefetch``.
    """
    if training and shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE)
    if transform is not None:
        ds = transform(ds)
    return ds.prefetch(AUTOTUNE)


def permuted_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int | None = None,
    convert: Callable | None = None,
    transform=None,
) -> tf.data.Dataset:
    """In-memory training arrays as batches of a new full permutation every epoch, ``transform``-ed, prefetched.

    The in-memory counterpart of ``batch(..., training=True)``: instead of
    passing every element through a shuffle buffer and re-batching it, each
    epoch draws one permutation of all indices (seeded: the same sequence of
    epochs run after run), gathers the arrays in that order once and slices
    them into batches, about half the pipeline's CPU per epoch; and the shuffle
    is complete rather than limited to a buffer. ``convert(images, labels)``
    (channel/size conversion) runs per batch, then ``transform``.

    Example:
        >>> s = load_splits("fashion_mnist", seed=42, train_limit=1000)
        >>> train = permuted_batches(*s.train_xy, 64, seed=42, convert=s.convert)
    """
    n = len(x)
    full = n // batch_size
    images, labels = tf.constant(x), tf.constant(y)

    def epoch(order):
        xs, ys = tf.gather(images, order), tf.gather(labels, order)
        cut = full * batch_size
        ds = tf.data.Dataset.from_tensor_slices((
            tf.reshape(xs[:cut], [full, batch_size, *x.shape[1:]]), tf.reshape(ys[:cut], [full, batch_size, *y.shape[1:]])))
        return ds.concatenate(tf.data.Dataset.from_tensors((xs[cut:], ys[cut:]))) if n % batch_size else ds

    ds = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(n).flat_map(epoch)
    if convert is not None:
        ds = ds.map(convert, num_parallel_calls=AUTOTUNE)
    if transform is not None:
        ds = transform(ds)
    return ds.prefetch(AUTOTUNE)
