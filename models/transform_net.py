"""Image transformation network for fast style transfer (Johnson, Alahi & Fei-Fei, 2016).

A fully convolutional encoder / residual / decoder network trained once per
style with perceptual costs, then stylising any image in one forward pass:

    9x9 conv (f) -> 3x3 conv stride 2 (2f) -> 3x3 conv stride 2 (4f)
    -> residual blocks (4f) x R
    -> upsample x2 + 3x3 conv (2f) -> upsample x2 + 3x3 conv (f) -> 9x9 conv (3)

with instance normalisation (``GroupNormalization(groups=-1)``) and ReLU after
every conv but the last. Upsampling followed by a convolution replaces the
paper's fractionally-strided convs (no checkerboard artefacts; Odena et al.,
2016).

One change from the paper, for short trainings: the last conv (initialised to
zero) predicts a change to the input in logit space (``LogitResidual``), so the
untrained net is the identity (content cost 0), training only has to learn the
style instead of first learning to reproduce the photo, and the output stays in
range without a hard clip that would stop gradients.

Input uint8 (or float in [0, 255]) ``(N, H, W, 3)`` with H and W multiples of
4 (``stylize`` pads any size with reflection and crops back); output float32
``(N, H, W, 3)`` in (-0.5, 255.5).

Example:
    >>> net = transform_net(filters=32, residual_blocks=5)
    >>> out = stylize(net, images_uint8)     # uint8 (N, H, W, 3)
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


@keras.saving.register_keras_serializable(package="convforge")
class LogitResidual(layers.Layer):
    """``out = 256 * sigmoid(logit((x + 0.5) / 256) + delta) - 0.5``: pixels ``x`` in [0, 255]
    changed by ``delta`` (same shape, unbounded); ``delta = 0`` gives ``x`` back; output in (-0.5, 255.5)."""

    def call(self, pixels, delta):
        p = (keras.ops.cast(pixels, "float32") + 0.5) / 256.0
        logit = keras.ops.log(p) - keras.ops.log1p(-p)
        return 256.0 * keras.ops.sigmoid(logit + keras.ops.cast(delta, "float32")) - 0.5


def _conv(x, filters: int, size: int, stride: int, name: str, norm_relu: bool = True):
    x = layers.Conv2D(filters, size, strides=stride, padding="same", name=f"{name}_conv")(x)
    if norm_relu:
        x = layers.GroupNormalization(groups=-1, name=f"{name}_in")(x)
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def _residual(x, filters: int, name: str):
    y = _conv(x, filters, 3, 1, f"{name}_a")
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_b_conv")(y)
    y = layers.GroupNormalization(groups=-1, name=f"{name}_b_in")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def transform_net(filters: int = 32, residual_blocks: int = 5, name: str = "transform_net") -> keras.Model:
    """Johnson et al. (2016) transformation network; ``filters`` = width of the first conv.

    Returns a functional model: RGB ``(N, H, W, 3)`` [0, 255] (H, W multiples of 4) -> float32
    ``(N, H, W, 3)`` in (-0.5, 255.5).
    """
    inputs = keras.Input((None, None, 3), name="image")
    pixels = layers.Activation("linear", dtype="float32", name="pixels")(inputs)  # cast to float32
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(pixels)
    x = _conv(x, filters, 9, 1, "enc1")
    x = _conv(x, 2 * filters, 3, 2, "enc2")
    x = _conv(x, 4 * filters, 3, 2, "enc3")
    for i in range(1, residual_blocks + 1):
        x = _residual(x, 4 * filters, f"res{i}")
    x = layers.UpSampling2D(2, interpolation="nearest", name="up1")(x)
    x = _conv(x, 2 * filters, 3, 1, "dec1")
    x = layers.UpSampling2D(2, interpolation="nearest", name="up2")(x)
    x = _conv(x, filters, 3, 1, "dec2")
    delta = layers.Conv2D(3, 9, padding="same", kernel_initializer="zeros", name="out_conv")(x)
    outputs = LogitResidual(dtype="float32", name="logit_residual")(pixels, delta)
    return keras.Model(inputs, outputs, name=name)


def stylize(net: keras.Model, images) -> tf.Tensor:
    """Stylise a batch of any size: uint8 ``(N, H, W, 3)`` -> uint8 ``(N, H, W, 3)``.

    Pads H and W with reflection to multiples of 4 (the two stride-2 stages),
    runs ``net`` and crops back.
    """
    images = tf.convert_to_tensor(images)
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    ph, pw = (-h) % 4, (-w) % 4
    x = tf.pad(tf.cast(images, tf.float32), [[0, 0], [0, ph], [0, pw], [0, 0]], mode="SYMMETRIC")
    y = net(x, training=False)[:, :h, :w, :]
    return tf.cast(tf.round(tf.clip_by_value(y, 0.0, 255.0)), tf.uint8)
