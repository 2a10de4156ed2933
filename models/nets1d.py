"""1D conv nets for signals and sequences: ``[N, L, C]`` (length L, C channels per step).

The same blocks as the 2D nets with Conv1D in place of Conv2D (``models.blocks``
picks the layer by rank): filters are ``f`` wide and slide along one axis, so
the arithmetic of the notes holds with one spatial size (``models.conv_arithmetic``).

* ``convnet1d``: conv3-BN-ReLU + max pool per entry of ``filters``, then global
  average pooling and softmax.
* ``resnet1d``: a ResNet (basic or bottleneck blocks, identity and projection
  shortcuts, ``a[l+2] = g(z[l+2] + a[l])``) with a 3-wide stem.

Inputs are raw floats multiplied by ``input_scale`` inside (1/255 for
sequences read off uint8 images, see ``pipelines.derived``).

Example:
    >>> from models import build
    >>> model = build("resnet1d", (28, 28), 10, width=0.25)   # 28 rows of 28 pixels
    >>> model.output.shape
    (None, 10)
"""

from __future__ import annotations

from models.blocks import plain_convnet
from models.registry import register
from models.resnet import build_resnet


def _check(input_shape) -> None:
    if len(input_shape) != 2:
        raise ValueError(f"1D nets take [length, channels] inputs; received shape {tuple(input_shape)}")


@register("convnet1d")
def build_convnet1d(input_shape, num_classes: int, filters=(32, 64, 128), input_scale: float = 1.0 / 255):
    """Plain Conv1D net: ``[N, L, C] -> [N, num_classes]``."""
    _check(input_shape)
    return plain_convnet(input_shape, num_classes, filters, input_scale, name="convnet1d")


@register("resnet1d")
def build_resnet1d(input_shape, num_classes: int, depth: int = 18, width: float = 0.5,
                   input_scale: float = 1.0 / 255):
    """Conv1D ResNet-``depth`` with a small (3-wide, stride 1) stem: ``[N, L, C] -> [N, num_classes]``."""
    _check(input_shape)
    return build_resnet(input_shape, num_classes, depth, small=True, width=width, input_scale=input_scale)
