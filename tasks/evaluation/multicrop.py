"""Multi-crop evaluation: average a classifier's probabilities over several crops of each image.

The image (model size H x W) is first enlarged to ``(H / f, W / f)`` (``f`` =
``crop_fraction``, 0.875 by default), then crops of exactly H x W are taken:

- ``single``: no crop, the image as it is;
- ``1crop``: the centre crop;
- ``3crop``: start, centre and end along the longer side (left/centre/right
  for landscape or square images, top/centre/bottom for portrait), centred on
  the other side;
- ``10crop``: the four corners and the centre, and the horizontal mirrors of
  those five (AlexNet's test-time averaging).

All crops of a batch go through the model in one call: ``[N, H, W, C]`` ->
``[N * n_crops, H, W, C]`` -> probabilities ``[N, n_crops, K]`` -> mean over crops.

Example:
    >>> crops = multicrop(images, (28, 28), "10crop")           # [N, 10, 28, 28, C]
    >>> probs = multicrop_probabilities(model, images, "10crop")  # [N, K]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

MODES = {"single": 1, "1crop": 1, "3crop": 3, "10crop": 10}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"evaluation mode {mode!r} is unknown; choose one of: {', '.join(MODES)}")
    return mode


def crop_offsets(height: int, width: int, crop_h: int, crop_w: int, mode: str) -> list[tuple[int, int, bool]]:
    """``(top, left, mirrored)`` of each crop, in output order."""
    check_mode(mode)
    if crop_h > height or crop_w > width:
        raise ValueError(f"crop {crop_h}x{crop_w} is larger than the image {height}x{width}")
    cy, cx = (height - crop_h) // 2, (width - crop_w) // 2
    bottom, right = height - crop_h, width - crop_w
    if mode == "single":
        return [(0, 0, False)]
    if mode == "1crop":
        return [(cy, cx, False)]
    if mode == "3crop":
        if width >= height:
            return [(cy, 0, False), (cy, cx, False), (cy, right, False)]
        return [(0, cx, False), (cy, cx, False), (bottom, cx, False)]
    five = [(0, 0), (0, right), (bottom, 0), (bottom, right), (cy, cx)]
    return [(y, x, False) for y, x in five] + [(y, x, True) for y, x in five]


def multicrop(images: tf.Tensor, crop_size: tuple[int, int], mode: str) -> tf.Tensor:
    """Crops of a batch ``[N, H, W, C]`` -> ``[N, n_crops, crop_h, crop_w, C]`` (static slicing)."""
    images = tf.convert_to_tensor(images)
    height, width = int(images.shape[1]), int(images.shape[2])
    ch, cw = int(crop_size[0]), int(crop_size[1])
    crops = []
    for top, left, mirrored in crop_offsets(height, width, ch, cw, mode):
        crop = images[:, top : top + ch, left : left + cw, :]
        crops.append(tf.reverse(crop, axis=[2]) if mirrored else crop)
    return tf.stack(crops, axis=1)


def enlarge(images: tf.Tensor, crop_fraction: float) -> tf.Tensor:
    """Resize a uint8 batch ``[N, H, W, C]`` to ``(round(H / f), round(W / f))``, still uint8."""
    height, width = int(images.shape[1]), int(images.shape[2])
    size = (int(round(height / crop_fraction)), int(round(width / crop_fraction)))
    out = tf.image.resize(tf.cast(images, tf.float32), size, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), images.dtype)


def multicrop_probabilities(predict, images: tf.Tensor, mode: str, crop_fraction: float = 0.875) -> tf.Tensor:
    """Mean of ``predict`` over the crops of each image: ``[N, H, W, C]`` -> ``[N, K]``.

    ``predict`` maps ``[M, H, W, C]`` (the model's size) to probabilities ``[M, K]``.
    """
    check_mode(mode)
    images = tf.convert_to_tensor(images)
    if mode == "single":
        return tf.cast(predict(images), tf.float32)
    height, width, channels = (int(d) for d in images.shape[1:4])
    crops = multicrop(enlarge(images, crop_fraction), (height, width), mode)
    n = MODES[mode]
    probs = tf.cast(predict(tf.reshape(crops, [-1, height, width, channels])), tf.float32)
    return tf.reduce_mean(tf.reshape(probs, [-1, n, probs.shape[-1]]), axis=1)


def collect_multicrop(model, ds: tf.data.Dataset, mode: str, crop_fraction: float = 0.875) -> tuple[np.ndarray, np.ndarray]:
    """One pass over a batched ``(images, labels)`` dataset -> (labels ``[N]``, probabilities ``[N, K]``)."""
    step = tf.function(lambda x: multicrop_probabilities(lambda c: model(c, training=False), x, mode, crop_fraction),
                       reduce_retracing=True)
    labels, probs = [], []
    for x, y in ds:
        labels.append(y.numpy())
        probs.append(step(x).numpy())
    return np.concatenate(labels), np.concatenate(probs)
