"""The face encoder f(x): a CNN ending in an L2-normalised embedding (FaceNet, 2015).

Two images of the same identity should land close, of different identities
far apart, in squared Euclidean distance d(x1, x2) = ||f(x1) - f(x2)||^2.
Because every embedding has unit length, d = 2 - 2 cos(f(x1), f(x2)) lies in
[0, 4], so one threshold works for every gallery and a dot product ranks
neighbours (``serving.gallery``).

The default body is a small VGG-style CNN (conv-BN-ReLU pairs and max pooling
per stage, global average pooling, a linear projection); ``backbone`` swaps in
a ``keras.applications`` network (transfer learning; ``weights`` is
"imagenet" where downloads work or a local weights file).

Example:
    >>> encoder = face_encoder((96, 96, 3), 0, embedding_dim=128)
    >>> encoder(np.zeros((2, 96, 96, 3), np.uint8)).shape
    TensorShape([2, 128])
"""

from __future__ import annotations

import keras
from keras import layers

from models.registry import register

# keras.applications networks that rescale inside (they take 0..255 pixels)
BACKBONES = ("MobileNetV3Small", "MobileNetV3Large", "EfficientNetB0", "EfficientNetV2B0", "ConvNeXtTiny")


@register("face_encoder")
def face_encoder(
    input_shape=(96, 96, 3),
    num_classes: int = 0,
    embedding_dim: int = 128,
    widths: tuple[int, ...] = (32, 64, 128),
    dropout: float = 0.0,
    backbone: str | None = None,
    weights: str | None = None,
) -> keras.Model:
    """Build the encoder f: uint8 ``[N, H, W, C]`` -> unit-length float32 ``[N, embedding_dim]``.

    Args:
        num_classes: ignored (an encoder has no classes; kept for ``models.build``).
        embedding_dim: size of the embedding (128 as in FaceNet).
        widths: filters of each stage of the default CNN (each stage halves H, W).
        dropout: dropout before the projection.
        backbone: a ``keras.applications`` name from ``BACKBONES`` instead of the default CNN.
        weights: the backbone's weights: None, "imagenet" or a local ``.h5``/``.weights.h5`` path.
    """
    inputs = keras.Input(shape=tuple(input_shape), dtype="uint8", name="image")
    if backbone:
        x = _backbone_features(inputs, backbone, weights)
    else:
        x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
        for stage, width in enumerate(widths, start=1):
            for conv in (1, 2):
                x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"stage{stage}_conv{conv}")(x)
                x = layers.BatchNormalization(momentum=0.9, name=f"stage{stage}_bn{conv}")(x)
                x = layers.ReLU(name=f"stage{stage}_relu{conv}")(x)
            x = layers.MaxPooling2D(2, padding="same", name=f"stage{stage}_pool")(x)
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(embedding_dim, use_bias=False, name="projection")(x)
    # centre the projections over the batch: at initialisation pooled ReLU features point the same way,
    # and unit vectors of nearly equal projections would start collapsed on one point
    x = layers.BatchNormalization(momentum=0.9, dtype="float32", name="projection_bn")(x)
    outputs = layers.UnitNormalization(axis=-1, dtype="float32", name="embedding")(x)
    return keras.Model(inputs, outputs, name="face_encoder")


def _backbone_features(inputs, backbone: str, weights: str | None):
    if backbone not in BACKBONES:
        raise ValueError(f"unknown encoder backbone {backbone!r}; choose one of {', '.join(BACKBONES)}. Received: backbone={backbone!r}")
    x = layers.Concatenate(name="grey_to_rgb")([inputs] * 3) if inputs.shape[-1] == 1 else inputs
    x = layers.Rescaling(1.0, name="to_float")(x)  # uint8 -> float 0..255; the backbone preprocesses inside
    net = getattr(keras.applications, backbone)(include_top=False, weights=weights, input_shape=(*inputs.shape[1:3], 3), pooling="avg")
    return net(x)
