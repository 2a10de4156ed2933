"""RoI pooling (Fast R-CNN): every region of interest pooled from ONE shared feature map to a fixed grid.

Fast R-CNN runs the convolutional trunk once per image; each proposal then
takes its features from that map instead of from its own warped crop. Here a
region becomes a ``pool_size x pool_size`` grid in two steps:

1. ``tf.image.crop_and_resize`` samples the region on a regular
   ``(pool_size * sampling) x (pool_size * sampling)`` lattice with bilinear
   interpolation, each sample at the centre of its sub-cell (RoIAlign's
   sampling points, no rounding of box edges);
2. max pooling over each ``sampling x sampling`` block gives one value per
   grid cell (RoI *max* pooling, as in the paper).

Coordinates: regions are normalised image boxes ``[ymin, xmin, ymax, xmax]``;
feature cell ``i`` of an ``h``-row map is centred at ``(i + 0.5) / h``, so an
image coordinate ``y`` is feature coordinate ``y * h - 0.5``; regions are
clipped to the span of cell centres ``[0, h - 1]`` before sampling.

Example:
    >>> pool = RoiPooling(pool_size=7)
    >>> pool([features, rois]).shape    # features [N, h, w, C], rois [N, R, 4]
    TensorShape([N, R, 7, 7, C])
"""

from __future__ import annotations

import keras
import tensorflow as tf


def roi_crop_boxes(rois: tf.Tensor, height: tf.Tensor, width: tf.Tensor, samples: int) -> tf.Tensor:
    """Normalised image boxes ``[..., 4]`` -> ``crop_and_resize`` boxes whose samples fall at sub-cell centres."""
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    y0 = tf.clip_by_value(rois[..., 0] * h - 0.5, 0.0, h - 1.0)
    x0 = tf.clip_by_value(rois[..., 1] * w - 0.5, 0.0, w - 1.0)
    y1 = tf.clip_by_value(rois[..., 2] * h - 0.5, 0.0, h - 1.0)
    x1 = tf.clip_by_value(rois[..., 3] * w - 0.5, 0.0, w - 1.0)
    y1, x1 = tf.maximum(y1, y0), tf.maximum(x1, x0)
    half_y = 0.5 * (y1 - y0) / samples
    half_x = 0.5 * (x1 - x0) / samples
    sy, sx = tf.maximum(h - 1.0, 1.0), tf.maximum(w - 1.0, 1.0)
    return tf.stack([(y0 + half_y) / sy, (x0 + half_x) / sx, (y1 - half_y) / sy, (x1 - half_x) / sx], axis=-1)


@keras.saving.register_keras_serializable(package="convforge")
class RoiPooling(keras.layers.Layer):
    """``[features [N, h, w, C], rois [N, R, 4]]`` -> pooled ``[N, R, pool_size, pool_size, C]``.

    Args:
        pool_size: the fixed output grid (7 in Fast R-CNN with VGG-16).
        sampling: bilinear samples per grid cell and axis; their maximum is the cell's value.
    """

    def __init__(self, pool_size: int = 7, sampling: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.sampling = int(sampling)

    def call(self, inputs):
        features, rois = inputs
        dtype = features.dtype
        features = tf.cast(features, tf.float32)
        rois = tf.cast(rois, tf.float32)
        n, r = tf.shape(rois)[0], tf.shape(rois)[1]
        shape = tf.shape(features)
        samples = self.pool_size * self.sampling
        boxes = tf.reshape(roi_crop_boxes(rois, shape[1], shape[2], samples), [-1, 4])
        index = tf.repeat(tf.range(n), r)
        crops = tf.image.crop_and_resize(features, boxes, index, [samples, samples], method="bilinear")
        pooled = tf.nn.max_pool2d(crops, self.sampling, self.sampling, "VALID")
        out = tf.reshape(pooled, [n, r, self.pool_size, self.pool_size, features.shape[-1]])
        return tf.cast(out, dtype)

    def compute_output_shape(self, input_shapes):
        features, rois = input_shapes
        return (features[0], rois[1], self.pool_size, self.pool_size, features[-1])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "sampling": self.sampling}
