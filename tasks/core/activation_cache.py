"""Cached frozen activations: run the frozen backbone over the data once, train the head on the result.

While only the head trains, the backbone computes the same features every
epoch. ``cached_features`` computes them once per split and stores them on
disk under ``<cache_dir>/<key>/<split>.npz``. The key hashes everything the
features depend on:

- the backbone: its name, input shape and every weight's name, shape and bytes
  (so other weights or another architecture never reuse a stale cache);
- the data: the dataset's fingerprint and the split settings (seed, limits,
  fractions) given by the caller;
- the preprocessing: image size and channels (and anything else the caller
  puts in ``key_parts``).

Change any of them and the key changes, so the cache is rebuilt. Files are
written atomically (temporary name, then rename): a killed run never leaves a
half-written cache that a later run would trust.

Example:
    >>> feats = cached_features(backbone, train_ds, {"data": fingerprint, "size": [64, 64]}, "cache", "train")
    >>> feats.features.shape, feats.rebuilt        # ((N, 1280), True) the first time, then False
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


@dataclass
class CachedFeatures:
    features: np.ndarray  # float32 [N, D]
    labels: np.ndarray  # int64 [N]
    path: Path
    rebuilt: bool
    seconds: float  # time spent computing (0 on a cache hit)


def weights_fingerprint(model: keras.Model) -> str:
    """sha256 of every weight's path, shape and bytes (the whole backbone, exactly)."""
    h = hashlib.sha256(model.name.encode())
    for var in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(var))
        h.update(f"{var.path}{value.shape}{value.dtype}".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def cache_key(backbone: keras.Model, key_parts: dict) -> str:
    """The cache folder name for ``backbone`` and the caller's data/preprocessing description."""
    parts = {
        "backbone": backbone.name,
        "input_shape": [d for d in backbone.input_shape[1:]],
        "weights": weights_fingerprint(backbone),
        **key_parts,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def compute_features(backbone: keras.Model, images: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Run ``backbone`` (inference mode) over a batched ``(images, labels)`` dataset."""
    predict = tf.function(lambda x: backbone(x, training=False), reduce_retracing=True)
    feats, labels = [], []
    for x, y in images:
        feats.append(np.asarray(predict(x), dtype=np.float32))
        labels.append(y.numpy())
    return np.concatenate(feats), np.concatenate(labels).astype(np.int64)


def cached_features(backbone: keras.Model, images: tf.data.Dataset, key_parts: dict, cache_dir: str | Path, split: str) -> CachedFeatures:
    """Features of ``images`` (batched, NOT shuffled) from the cache, computing them on a miss."""
    folder = Path(cache_dir) / cache_key(backbone, key_parts)
    path = folder / f"{split}.npz"
    if path.is_file():
        with np.load(path) as data:
            return CachedFeatures(data["features"], data["labels"], path, rebuilt=False, seconds=0.0)
    start = time.perf_counter()
    features, labels = compute_features(backbone, images)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{split}.{os.getpid()}.tmp.npz"
    np.savez(tmp, features=features, labels=labels)
    os.replace(tmp, path)
    meta = folder / "key.json"
    if not meta.is_file():
        meta.write_text(json.dumps({"backbone": backbone.name, **key_parts}, indent=2, sort_keys=True, default=str))
    return CachedFeatures(features, labels, path, rebuilt=True, seconds=seconds)


def feature_dataset(cached: CachedFeatures, batch_size: int, shuffle: bool = False, seed: int | None = None) -> tf.data.Dataset:
    """A batched ``(features, labels)`` dataset over cached features (reshuffled each epoch if asked)."""
    ds = tf.data.Dataset.from_tensor_slices((cached.features, cached.labels))
    if shuffle:
        ds = ds.shuffle(len(cached.labels), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
