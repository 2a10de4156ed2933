"""P x K batches for metric learning: P identities, K images of each (Hermans et al. 2017).

Online triplet mining needs positives in every batch; a shuffled batch of a
large identity set has almost none. Each batch here picks P distinct
identities at random and K distinct images of each, so every anchor has K-1
positives and (P-1)K negatives. Sampling is stateless and seeded (batch i
depends only on ``seed`` and i), vectorised in the TF graph, and endless:
give ``steps_per_epoch`` to ``fit``.

Identities with fewer than K images cannot fill their K slots and are left
out (``eligible_classes`` says which remain).

Example:
    >>> ds = pk_batches(x_train, y_train, p=8, k=4, seed=42)
    >>> images, labels = next(iter(ds))     # [32, 28, 28, 1] uint8, [32] int64
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipelines.decode import decode_image

AUTOTUNE = tf.data.AUTOTUNE


def eligible_classes(labels: np.ndarray, k: int) -> np.ndarray:
    """The identities with at least ``k`` examples, ascending."""
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return values[counts >= k]


def pk_indices(labels: np.ndarray, p: int, k: int, seed: int = 0) -> tf.data.Dataset:
    """Endless dataset of int64 index batches ``[P * K]`` into ``labels`` (identity-major order)."""
    labels = np.asarray(labels).reshape(-1)
    classes = eligible_classes(labels, k)
    if len(classes) < p:
        raise ValueError(
            f"a P x K batch needs {p} identities with at least {k} images each; only {len(classes)} have "
            f"that many. Lower p or k. Received: p={p}, k={k}"
        )
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, classes, side="left")
    counts = np.searchsorted(sorted_labels, classes, side="right") - starts
    order_t, starts_t, counts_t = (tf.constant(a, tf.int64) for a in (order, starts, counts))
    max_count = int(counts.max())

    def batch(step):
        s = tf.stack([tf.constant(seed, tf.int64), step])
        chosen = tf.random.experimental.stateless_shuffle(tf.range(len(classes), dtype=tf.int64), seed=s)[:p]
        scores = tf.random.stateless_uniform([p, max_count], seed=s + 1)
        valid = tf.range(max_count, dtype=tf.int64)[None, :] < tf.gather(counts_t, chosen)[:, None]
        picks = tf.math.top_k(tf.where(valid, scores, -1.0), k=k).indices  # K distinct members per identity
        positions = tf.gather(starts_t, chosen)[:, None] + tf.cast(picks, tf.int64)
        return tf.gather(order_t, tf.reshape(positions, [-1]))

    return tf.data.Dataset.counter().map(batch, num_parallel_calls=AUTOTUNE, deterministic=True)


def pk_batches(
    images: np.ndarray,
    labels: np.ndarray,
    p: int,
    k: int,
    seed: int = 0,
    channels: int = 3,
    image_size: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Endless ``(images [P*K, H, W, C] uint8, labels [P*K] int64)`` batches.

    ``images`` is a uint8 array ``[N, H, W, C]`` held in memory, or an array of
    image file paths (decoded to ``channels`` and resized to ``image_size``).
    """
    labels = np.asarray(labels).astype(np.int64)
    labels_t = tf.constant(labels)
    idx = pk_indices(labels, p, k, seed)
    if np.asarray(images).dtype.kind in "USO":
        paths = tf.constant(np.asarray(images).astype(str))

        def load(i):
            files = tf.gather(paths, i)
            spec = tf.TensorSpec([*(image_size or (None, None)), channels], tf.uint8)
            decoded = tf.map_fn(lambda f: decode_image(tf.io.read_file(f), channels, image_size), files, fn_output_signature=spec)
            return decoded, tf.gather(labels_t, i)
    else:
        images_t = tf.constant(images)

        def load(i):
            return tf.gather(images_t, i), tf.gather(labels_t, i)

    return idx.map(load, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
