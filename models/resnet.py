"""ResNet-18/34/50/101 (He et al., "Deep Residual Learning for Image Recognition", 2015).

Stacked residual blocks (``models.blocks``): basic blocks (two 3x3 convs) for
18/34 layers, bottleneck blocks (1x1 -> 3x3 -> 1x1, 4x expansion) for 50/101.
The first block of a stage uses a projection shortcut (1x1 conv + BN) where
the shape changes, the others the identity; the skip joins before the ReLU.

Paper stem: 7x7/2 conv 64 -> 3x3/2 max pool. ``small=True`` replaces it with
one 3x3/1 conv and no pool, for 28-64 px inputs (Fashion-MNIST, CIFAR-size);
``width`` narrows every stage. Convs carry a bias like keras.applications, so
ResNet-50 at 224x224x3 / 1000 classes has exactly 25,636,712 parameters
(``use_bias=False`` gives torchvision's bias-free layout: 25,557,032 trainable).

The builder is rank-generic: a ``[L, C]`` input gives a Conv1D ResNet and a
``[D, H, W, C]`` input a Conv3D one (``models.nets1d`` / ``models.nets3d``).

Example:
    >>> from models import build
    >>> model = build("resnet18", (28, 28, 1), 10, small=True, width=0.5)
    >>> model.output.shape
    (None, 10)
"""

from __future__ import annotations

import keras

from models.blocks import (
    MAX_POOL,
    basic_block,
    bottleneck_block,
    classifier_head,
    conv_bn,
    image_input,
    scaled,
    signal_input,
)
from models.registry import register

# depth -> (block kind, blocks per stage)
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
STAGE_FILTERS = (64, 128, 256, 512)


def resnet_body(x, depth: int, rank: int, small: bool = False, width: float = 1.0, use_bias: bool = True):
    """Stem and the four residual stages; ``[N, *S, C] -> [N, *S/32 (small: /8), C']``."""
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}; received {depth}")
    kind, counts = DEPTHS[depth]
    block = basic_block if kind == "basic" else bottleneck_block
    if small:
        x = conv_bn(x, scaled(64, width), 3, 1, rank, use_bias=use_bias, name="conv1")
    else:
        x = conv_bn(x, scaled(64, width), 7, 2, rank, use_bias=use_bias, name="conv1")
        x = MAX_POOL[rank](3, strides=2, padding="same", name="pool1_pool")(x)
    for stage, (n_blocks, filters) in enumerate(zip(counts, STAGE_FILTERS, strict=True), start=2):
        for i in range(1, n_blocks + 1):
            stride = 2 if (i == 1 and stage > 2) else 1
            x = block(x, scaled(filters, width), stride, rank, use_bias=use_bias, name=f"conv{stage}_block{i}")
    return x


def build_resnet(input_shape, num_classes: int, depth: int = 50, small: bool = False, width: float = 1.0,
                 use_bias: bool = True, input_scale: float = 1.0 / 255) -> keras.Model:
    """A ResNet classifier. Input uint8 ``[N, H, W, C]`` (or float ``[N, L, C]`` / ``[N, D, H, W, C]``).

    Output: softmax probabilities ``[N, num_classes]``.
    """
    rank = len(input_shape) - 1
    if rank == 2:
        inputs, x = image_input(input_shape)
    else:
        inputs, x = signal_input(input_shape, input_scale)
    x = resnet_body(x, depth, rank, small, width, use_bias)
    outputs = classifier_head(x, num_classes, rank)
    suffix = "_small" if small else ""
    return keras.Model(inputs, outputs, name=f"resnet{depth}{'' if rank == 2 else f'_{rank}d'}{suffix}")


def _register(depth: int) -> None:
    @register(f"resnet{depth}")
    def builder(input_shape, num_classes, small: bool = False, width: float = 1.0, use_bias: bool = True):
        return build_resnet(input_shape, num_classes, depth, small, width, use_bias)

    builder.__doc__ = f"ResNet-{depth}; options: small (3x3 stem, no pool), width, use_bias."


for _depth in DEPTHS:
    _register(_depth)
