"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998).

conv 5x5x6 -> average pool 2x2 -> conv 5x5x16 -> average pool 2x2 -> FC 120 ->
FC 84 -> softmax, with tanh activations, as in the paper. A 28x28 input gets
"same" padding on the first conv (the paper's 32x32 input padded the digits by
2 pixels), so both sizes give the same 61,706 parameters for 10 classes.
"""

from __future__ import annotations

import keras
from keras import layers

from models.registry import register


@register("lenet5")
def lenet5(input_shape=(28, 28, 1), num_classes: int = 10, activation: str = "tanh", pooling: str = "avg") -> keras.Model:
    """Build LeNet-5.

    Input: uint8 ``[N, H, W, C]`` (28x28 or 32x32 as in the paper; rescaled to
    [0, 1] inside). Output: softmax probabilities ``[N, num_classes]``.

    Args:
        activation: "tanh" (the paper) or "sigmoid", "relu".
        pooling: "avg" (the paper's subsampling) or "max".

    Example:
        >>> model = lenet5((28, 28, 1), 10)
        >>> model.count_params()
        61706
    """
    pool = {"avg": layers.AveragePooling2D, "max": layers.MaxPooling2D}[pooling]
    first_padding = "same" if input_shape[0] < 32 else "valid"
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = layers.Conv2D(6, 5, padding=first_padding, activation=activation, name="c1_conv")(x)
    x = pool(2, name="s2_pool")(x)
    x = layers.Conv2D(16, 5, activation=activation, name="c3_conv")(x)
    x = pool(2, name="s4_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation=activation, name="c5_fc")(x)
    x = layers.Dense(84, activation=activation, name="f6_fc")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="lenet5")
