"""Building blocks shared by the 1D, 2D and 3D nets: inputs, conv-BN-ReLU, residual blocks.

Every block takes ``rank`` (1 = signals/sequences, 2 = images, 3 = volumes or
clips) and picks Conv1D/2D/3D and the matching pooling, so one residual block
serves all three. Layer names follow Keras' own ResNet (``conv2_block1_1_conv``)
so a reader can compare them with ``keras.applications``.

Residual blocks add the shortcut *before* the last activation, as in the notes:
``a[l+2] = g(z[l+2] + a[l])``. The shortcut is the identity when the shapes
agree and a 1x1 projection (conv + BN, with the block's stride) when they don't.

Example:
    >>> inputs, x = image_input((28, 28, 1))
    >>> x = basic_block(x, 32, stride=2, rank=2, name="demo")   # 14x14x32, projection shortcut
"""

from __future__ import annotations

import keras
from keras import layers

from models.fused_batch_norm import FusedBatchNormalization

CONV = {1: layers.Conv1D, 2: layers.Conv2D, 3: layers.Conv3D}
MAX_POOL = {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}
AVG_POOL = {1: layers.AveragePooling1D, 2: layers.AveragePooling2D, 3: layers.AveragePooling3D}
GLOBAL_AVG_POOL = {1: layers.GlobalAveragePooling1D, 2: layers.GlobalAveragePooling2D, 3: layers.GlobalAveragePooling3D}
BN_EPSILON = 1.001e-5  # keras.applications.ResNet's value


def scaled(filters: int, width: float) -> int:
    """``filters * width`` rounded, at least 4: the channel count of a narrowed net."""
    return max(4, int(round(filters * width)))


def image_input(input_shape, name: str = "image") -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """A uint8 image input ``[N, H, W, C]`` and its rescaled float ``[0, 1]`` version."""
    inputs = keras.Input(shape=tuple(input_shape), dtype="uint8", name=name)
    return inputs, layers.Rescaling(1.0 / 255, name="rescale")(inputs)


def signal_input(input_shape, scale: float = 1.0 / 255, name: str = "signal"):
    """A float input (``[N, L, C]`` or ``[N, D, H, W, C]``) multiplied by ``scale`` inside."""
    inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name=name)
    return inputs, layers.Rescaling(scale, name="rescale")(inputs)


def classifier_head(x, num_classes: int, rank: int, name: str = "predictions"):
    """Global average pooling then a softmax Dense: ``[N, ..., C] -> [N, num_classes]``."""
    x = GLOBAL_AVG_POOL[rank](name="avg_pool")(x)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name=name)(x)


def conv_bn(x, filters: int, kernel, strides=1, rank: int = 2, activation: str | None = "relu",
            use_bias: bool = True, name: str = "conv"):
    """Conv (same padding) -> BatchNorm -> activation (skipped if None): ``z`` then ``g(z)``."""
    x = CONV[rank](filters, kernel, strides=strides, padding="same", use_bias=use_bias, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def _shortcut(x, filters: int, stride: int, rank: int, use_bias: bool, name: str):
    """Identity when the shapes agree, else a 1x1 projection (conv + BN) with the block's stride."""
    if stride == 1 and x.shape[-1] == filters:
        return x
    return conv_bn(x, filters, 1, stride, rank, activation=None, use_bias=use_bias, name=f"{name}_0")


def residual_add(shortcut, z, name: str):
    """``a[l+2] = relu(z[l+2] + a[l])``: the skip joins before the activation."""
    x = layers.Add(name=f"{name}_add")([shortcut, z])
    return layers.Activation("relu", name=f"{name}_out")(x)


def basic_block(x, filters: int, stride: int = 1, rank: int = 2, use_bias: bool = True, name: str = "block"):
    """ResNet-18/34 block: two 3x3 convs. ``[N, *S, C] -> [N, *S/stride, filters]``."""
    shortcut = _shortcut(x, filters, stride, rank, use_bias, name)
    z = conv_bn(x, filters, 3, stride, rank, use_bias=use_bias, name=f"{name}_1")
    z = conv_bn(z, filters, 3, 1, rank, activation=None, use_bias=use_bias, name=f"{name}_2")
    return residual_add(shortcut, z, name)


def bottleneck_block(x, filters: int, stride: int = 1, rank: int = 2, use_bias: bool = True,
                     expansion: int = 4, name: str = "block"):
    """ResNet-50/101 block: 1x1 reduce -> 3x3 -> 1x1 expand to ``expansion * filters`` channels.

    The stride sits on the first 1x1 conv, as in the paper and keras.applications.ResNet50.
    """
    shortcut = _shortcut(x, expansion * filters, stride, rank, use_bias, name)
    z = conv_bn(x, filters, 1, stride, rank, use_bias=use_bias, name=f"{name}_1")
    z = conv_bn(z, filters, 3, 1, rank, use_bias=use_bias, name=f"{name}_2")
    z = conv_bn(z, expansion * filters, 1, 1, rank, activation=None, use_bias=use_bias, name=f"{name}_3")
    return residual_add(shortcut, z, name)


def plain_stack(x, filters: list[int], rank: int, pool: int = 2, name: str = "plain"):
    """A plain conv net body: per entry, conv3-BN-ReLU then max pooling by ``pool``."""
    for i, n in enumerate(filters, start=1):
        x = conv_bn(x, n, 3, 1, rank, name=f"{name}{i}")
        x = MAX_POOL[rank](pool, padding="same", name=f"{name}{i}_pool")(x)
    return x


def plain_convnet(input_shape, num_classes: int, filters=(32, 64, 128), input_scale: float = 1.0 / 255,
                  name: str = "convnet") -> keras.Model:
    """A plain conv net of any rank: float ``[N, *S, C]`` -> softmax ``[N, num_classes]``.

    Per entry of ``filters``: conv3-BN-ReLU and a 2x max pool; then global
    average pooling and a softmax Dense. Rank = ``len(input_shape) - 1``.
    """
    rank = len(input_shape) - 1
    inputs, x = signal_input(input_shape, input_scale)
    x = plain_stack(x, list(filters), rank)
    return keras.Model(inputs, classifier_head(x, num_classes, rank), name=name)
