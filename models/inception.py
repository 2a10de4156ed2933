"""Inception v1 / GoogLeNet (Szegedy et al., "Going Deeper with Convolutions", 2014).

An Inception module runs 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool side
by side ("same" padding) and concatenates them along the channels. 1x1
convolutions first shrink the channels feeding the 3x3 and 5x5 branches, and
follow the pool (the "pool proj"): that cuts the cost about tenfold (see
``models.one_by_one``). Nine modules are stacked (table 1 of the paper):

    conv 7x7/2 64 -> max pool 3/2 -> LRN -> conv 1x1 64 -> conv 3x3 192 -> LRN -> max pool 3/2
    3a 3b -> max pool 3/2 -> 4a 4b 4c 4d 4e -> max pool 3/2 -> 5a 5b
    -> average pool -> dropout 0.4 -> softmax ("main")

Two auxiliary side classifiers hang off 4a ("aux1") and 4d ("aux2"):
average pool 5x5/3 -> conv 1x1 128 -> FC 1024 -> dropout 0.7 -> softmax. They
help gradients reach the early layers during training, where their losses
are added with weight ``AUX_LOSS_WEIGHT`` = 0.3, and are dropped at inference:

    >>> from models import build
    >>> from models.inception import AUX_LOSS_WEIGHT, inference_model
    >>> model = build("inception_v1", (28, 28, 1), 10, small=True, width=0.25, aux=True)
    >>> sorted(model.output)          # dict outputs while training
    ['aux1', 'aux2', 'main']
    >>> model.compile("adam", loss="sparse_categorical_crossentropy",
    ...               loss_weights={"main": 1.0, "aux1": AUX_LOSS_WEIGHT, "aux2": AUX_LOSS_WEIGHT})
    >>> serving = inference_model(model)   # main output only, same weights

Small-input variant (``small=True``, 28-64 px): the 7x7/2 conv and first pool
become a 3x3/1 conv, so a 28x28 input reaches the 3a module at 14x14;
``width`` narrows every conv; ``batch_norm=True`` adds BatchNorm after each
conv (as later Inception versions did; the paper has none).
"""

from __future__ import annotations

import keras
from keras import layers

from models.blocks import image_input, scaled
from models.fused_batch_norm import FusedBatchNormalization
from models.local_response_norm import LocalResponseNormalization
from models.registry import register

AUX_LOSS_WEIGHT = 0.3

# name: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) -- table 1 of the paper
MODULES = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _conv(x, filters: int, kernel: int, name: str, strides: int = 1, batch_norm: bool = False):
    if not batch_norm:
        return layers.Conv2D(filters, kernel, strides=strides, padding="same", activation="relu", name=name)(x)
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def inception_module(x, spec: tuple[int, ...], name: str, width: float = 1.0, batch_norm: bool = False):
    """One module: ``[N, H, W, C] -> [N, H, W, #1x1 + #3x3 + #5x5 + pool proj]``."""
    f1, f3r, f3, f5r, f5, fp = (scaled(n, width) for n in spec)
    b1 = _conv(x, f1, 1, f"{name}_1x1", batch_norm=batch_norm)
    b2 = _conv(x, f3r, 1, f"{name}_3x3_reduce", batch_norm=batch_norm)
    b2 = _conv(b2, f3, 3, f"{name}_3x3", batch_norm=batch_norm)
    b3 = _conv(x, f5r, 1, f"{name}_5x5_reduce", batch_norm=batch_norm)
    b3 = _conv(b3, f5, 5, f"{name}_5x5", batch_norm=batch_norm)
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    b4 = _conv(b4, fp, 1, f"{name}_pool_proj", batch_norm=batch_norm)
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])


def aux_classifier(x, num_classes: int, name: str, width: float = 1.0, batch_norm: bool = False):
    """Side classifier: avg pool 5x5/3 -> 1x1 conv 128 -> FC 1024 -> dropout 0.7 -> softmax."""
    pool = min(5, x.shape[1], x.shape[2])
    x = layers.AveragePooling2D(pool, strides=3, name=f"{name}_avg_pool")(x)
    x = _conv(x, scaled(128, width), 1, f"{name}_conv", batch_norm=batch_norm)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(scaled(1024, width), activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name=name)(x)


@register("inception_v1")
def build_inception_v1(input_shape, num_classes: int, aux: bool = False, small: bool = False, width: float = 1.0,
                       batch_norm: bool = False, dropout: float = 0.4) -> keras.Model:
    """GoogLeNet: uint8 ``[N, H, W, C]`` -> softmax ``[N, num_classes]``.

    With ``aux=True`` the model has three named outputs ``{"main", "aux1",
    "aux2"}`` (each ``[N, num_classes]``); ``inference_model`` keeps "main".
    """
    def pool(x, name):
        return layers.MaxPooling2D(3, strides=2, padding="same", name=name)(x)

    inputs, x = image_input(input_shape)
    if small:
        x = _conv(x, scaled(64, width), 3, "conv1", batch_norm=batch_norm)
    else:
        x = _conv(x, scaled(64, width), 7, "conv1", strides=2, batch_norm=batch_norm)
        x = pool(x, "pool1")
    x = LocalResponseNormalization(name="norm1")(x)
    x = _conv(x, scaled(64, width), 1, "conv2_reduce", batch_norm=batch_norm)
    x = _conv(x, scaled(192, width), 3, "conv2", batch_norm=batch_norm)
    x = LocalResponseNormalization(name="norm2")(x)
    x = pool(x, "pool2")
    side = {}
    for name, spec in MODULES.items():
        if name in ("4a", "5a"):
            x = pool(x, f"pool{name[0]}")
        x = inception_module(x, spec, f"inception_{name}", width, batch_norm)
        if aux and name in ("4a", "4d"):
            key = "aux1" if name == "4a" else "aux2"
            side[key] = aux_classifier(x, num_classes, key, width, batch_norm)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    main = layers.Dense(num_classes, activation="softmax", dtype="float32", name="main")(x)
    outputs = {"main": main, **side} if aux else main
    return keras.Model(inputs, outputs, name="inception_v1_small" if small else "inception_v1")


def inference_model(model: keras.Model) -> keras.Model:
    """The main classifier alone (aux side branches dropped), sharing ``model``'s weights.

    ``[N, H, W, C] uint8 -> [N, num_classes]``; a model without side outputs is returned as is.
    """
    if not isinstance(model.output, dict):
        return model
    return keras.Model(model.input, model.get_layer("main").output, name=model.name)
