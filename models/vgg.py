"""VGG-16 (Simonyan & Zisserman, "Very Deep Convolutional Networks", 2014, configuration D).

Only 3x3 convolutions, stride 1, "same" padding, ReLU; 2x2 stride-2 max pooling
after each of five blocks while the filters double 64 -> 128 -> 256 -> 512 (512):

    block1: 2 x conv64   block2: 2 x conv128   block3: 3 x conv256
    block4: 3 x conv512  block5: 3 x conv512   then FC 4096 -> FC 4096 -> softmax

with dropout 0.5 after both 4096-wide layers (as trained in the paper). At
224x224x3 and 1000 classes it has 138,357,544 parameters, exactly
``keras.applications.VGG16(weights=None)``; layer names match it.

Small-input variant (``small=True``, 28-64 px): the pools pad "same" so a
28x28 input still reaches 1x1 after five pools, and the FC layers default to
512 units; ``width`` narrows every conv.

Example:
    >>> from models import build
    >>> build("vgg16", (224, 224, 3), 1000).count_params()
    138357544
    >>> model = build("vgg16", (28, 28, 1), 10, small=True, width=0.25)
"""

from __future__ import annotations

import keras
from keras import layers

from models.blocks import image_input, scaled
from models.registry import register

# (filters, convs) per block: configuration D of the paper
CONFIG_D = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


@register("vgg16")
def build_vgg16(input_shape, num_classes: int, small: bool = False, width: float = 1.0,
                fc_units: int | None = None, dropout: float = 0.5) -> keras.Model:
    """VGG-16: uint8 ``[N, H, W, C]`` -> softmax ``[N, num_classes]``.

    Options: ``small`` (same-padded pools, FC 512), ``width`` (conv channel
    multiplier), ``fc_units`` (width of the two FC layers), ``dropout``.
    """
    if not small and min(input_shape[:2]) < 32:
        raise ValueError(f"VGG-16 needs inputs of at least 32x32 (five 2x2 pools); received {tuple(input_shape)}. "
                         "Use small=True or resize the images.")
    fc_units = fc_units or (512 if small else 4096)
    inputs, x = image_input(input_shape)
    for b, (filters, n_convs) in enumerate(CONFIG_D, start=1):
        for c in range(1, n_convs + 1):
            x = layers.Conv2D(scaled(filters, width), 3, padding="same", activation="relu",
                              name=f"block{b}_conv{c}")(x)
        x = layers.MaxPooling2D(2, strides=2, padding="same" if small else "valid", name=f"block{b}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = layers.Dense(fc_units, activation="relu", name=f"fc{i}")(x)
        x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="vgg16_small" if small else "vgg16")
