"""1x1 convolutions: shrinking channels the way pooling shrinks height and width.

A 1x1 conv with ``nc`` filters maps ``[H, W, nc_prev] -> [H, W, nc]``: at each
pixel, ``nc`` dot products over the channels. Put in front of an expensive
conv (a "bottleneck"), it cuts the multiplies roughly tenfold. The notes'
Inception example, on a 28x28x192 volume:

    direct:     5x5 conv, 32 filters            28*28*32 * 5*5*192 = 120,422,400
    bottleneck: 1x1 conv, 16 filters            28*28*16 * 1*1*192 =   2,408,448
                then 5x5 conv, 32 filters       28*28*32 * 5*5*16  =  10,035,200
                                                             total =  12,443,648

Example:
    >>> cost_example()["ratio"]
    9.677...
    >>> direct_conv_model().count_params(), bottleneck_conv_model().count_params()
    (153632, 15920)
"""

from __future__ import annotations

import keras
from keras import layers

from models.conv_arithmetic import conv_multiplies

EXAMPLE_SHAPE = (28, 28, 192)


def direct_conv_model(input_shape=EXAMPLE_SHAPE, filters: int = 32, kernel: int = 5) -> keras.Model:
    """One ``kernel`` x ``kernel`` conv, same padding: float ``[N, H, W, C] -> [N, H, W, filters]``."""
    inputs = keras.Input(shape=tuple(input_shape), name="volume")
    outputs = layers.Conv2D(filters, kernel, padding="same", activation="relu", name="conv5x5")(inputs)
    return keras.Model(inputs, outputs, name="direct_5x5")


def bottleneck_conv_model(input_shape=EXAMPLE_SHAPE, filters: int = 32, kernel: int = 5,
                          bottleneck: int = 16) -> keras.Model:
    """A 1x1 conv to ``bottleneck`` channels, then the same conv: ``[N, H, W, C] -> [N, H, W, filters]``."""
    inputs = keras.Input(shape=tuple(input_shape), name="volume")
    x = layers.Conv2D(bottleneck, 1, activation="relu", name="conv1x1")(inputs)
    outputs = layers.Conv2D(filters, kernel, padding="same", activation="relu", name="conv5x5")(x)
    return keras.Model(inputs, outputs, name="bottleneck_1x1_5x5")


def cost_example(input_shape=EXAMPLE_SHAPE, filters: int = 32, kernel: int = 5, bottleneck: int = 16) -> dict:
    """Multiplies of both ways, from the arithmetic formulas: {"direct", "bottleneck", "ratio"}."""
    h, w, c = input_shape
    direct = conv_multiplies((h, w), filters, kernel, c)
    reduced = conv_multiplies((h, w), bottleneck, 1, c) + conv_multiplies((h, w), filters, kernel, bottleneck)
    return {"direct": direct, "bottleneck": reduced, "ratio": direct / reduced}
