"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep CNNs", 2012).

The variant built here is the paper's two-GPU network in its Caffe (BVLC)
form: a 227x227x3 input, and conv2, conv4 and conv5 split into two groups
(the two GPUs' towers, which only meet at conv3 and the FC layers). At
227x227x3 / 1000 classes it has **60,965,224** parameters.

A grouped conv is written out as its towers: each half of the channels goes
through its own Conv2D (``conv2_gpu1``, ``conv2_gpu2``) and the halves are
concatenated (``conv2``). That is exactly ``Conv2D(groups=2)``, but trains
about 17x faster on TensorFlow's CPU kernels.

    conv1 96 11x11/4 -> LRN -> max pool 3x3/2      (55 -> 27)
    conv2 256 5x5 same, 2 groups -> LRN -> max pool 3x3/2    (27 -> 13)
    conv3 384 3x3 -> conv4 384 3x3, 2 groups -> conv5 256 3x3, 2 groups
    max pool 3x3/2 (13 -> 6) -> FC 4096 -> FC 4096 (dropout 0.5 each) -> softmax

ReLU everywhere, local response normalisation (``LocalResponseNormalization``,
k=2, n=5, alpha=1e-4, beta=0.75) and overlapping pooling (3x3 windows, stride 2).

Small-input variant (``small=True``, 28-64 px): conv1 becomes 3x3 stride 1,
the FC layers default to 512 units and ``width`` narrows the convs; the rest
(LRN, groups, overlapping pools, dropout) stays.

Example:
    >>> from models import build
    >>> build("alexnet", (227, 227, 3), 1000).count_params()
    60965224
"""

from __future__ import annotations

import keras
from keras import layers

from models.blocks import image_input, scaled
from models.local_response_norm import LocalResponseNormalization
from models.registry import register


def _conv(x, filters: int, kernel: int, name: str, strides: int = 1, padding: str = "same", groups: int = 1):
    """Conv + ReLU; with ``groups`` > 1, one conv per channel group (GPU tower), concatenated."""
    if groups == 1:
        return layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation="relu", name=name)(x)
    step = x.shape[-1] // groups
    towers = [
        layers.Conv2D(filters // groups, kernel, strides=strides, padding=padding, activation="relu",
                      name=f"{name}_gpu{g + 1}")(x[..., g * step : (g + 1) * step])
        for g in range(groups)
    ]
    return layers.Concatenate(name=name)(towers)


@register("alexnet")
def build_alexnet(input_shape, num_classes: int, small: bool = False, width: float = 1.0,
                  fc_units: int | None = None, dropout: float = 0.5) -> keras.Model:
    """AlexNet: uint8 ``[N, H, W, C]`` -> softmax ``[N, num_classes]``.

    Options: ``small`` (3x3/1 first conv, FC 512), ``width`` (conv channel
    multiplier, kept even for the two groups), ``fc_units``, ``dropout``.
    """
    def ch(n):
        return 2 * scaled(n // 2, width)

    fc_units = fc_units or (512 if small else 4096)
    inputs, x = image_input(input_shape)
    if small:
        x = _conv(x, ch(96), 3, "conv1")
    else:
        x = _conv(x, ch(96), 11, "conv1", strides=4, padding="valid")
    x = LocalResponseNormalization(name="norm1")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = _conv(x, ch(256), 5, "conv2", groups=2)
    x = LocalResponseNormalization(name="norm2")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = _conv(x, ch(384), 3, "conv3")
    x = _conv(x, ch(384), 3, "conv4", groups=2)
    x = _conv(x, ch(256), 3, "conv5", groups=2)
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    x = layers.Flatten(name="flatten")(x)
    for i in (6, 7):
        x = layers.Dense(fc_units, activation="relu", name=f"fc{i}")(x)
        x = layers.Dropout(dropout, name=f"drop{i}")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="alexnet_small" if small else "alexnet")
