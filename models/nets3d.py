"""3D conv nets for volumes and clips: ``[N, D, H, W, C]`` (depth or time first).

The same blocks as the 2D nets with Conv3D: an ``f x f x f`` filter spans
``f`` slices (or frames) as well as ``f x f`` pixels, so it sees motion in a
clip or structure across slices of a volume. The notes' arithmetic holds per
axis (``models.conv_arithmetic.output_shape`` takes three sizes).

* ``convnet3d``: conv3-BN-ReLU + max pool per entry of ``filters``, then global
  average pooling and softmax.
* ``resnet3d``: a ResNet (basic or bottleneck blocks, identity and projection
  shortcuts, ``a[l+2] = g(z[l+2] + a[l])``) with a 3x3x3 stem.

Example:
    >>> from models import build
    >>> model = build("convnet3d", (8, 28, 28, 1), 10, filters=(8, 16))
    >>> model.output.shape
    (None, 10)
"""

from __future__ import annotations

from models.blocks import plain_convnet
from models.registry import register
from models.resnet import build_resnet


def _check(input_shape) -> None:
    if len(input_shape) != 4:
        raise ValueError(f"3D nets take [depth, height, width, channels] inputs; received shape {tuple(input_shape)}")


@register("convnet3d")
def build_convnet3d(input_shape, num_classes: int, filters=(16, 32, 64), input_scale: float = 1.0 / 255):
    """Plain Conv3D net: ``[N, D, H, W, C] -> [N, num_classes]``."""
    _check(input_shape)
    return plain_convnet(input_shape, num_classes, filters, input_scale, name="convnet3d")


@register("resnet3d")
def build_resnet3d(input_shape, num_classes: int, depth: int = 18, width: float = 0.25,
                   input_scale: float = 1.0 / 255):
    """Conv3D ResNet-``depth`` with a small (3x3x3, stride 1) stem: ``[N, D, H, W, C] -> [N, num_classes]``."""
    _check(input_shape)
    return build_resnet(input_shape, num_classes, depth, small=True, width=width, input_scale=input_scale)
