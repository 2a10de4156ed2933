"""face-api.js' 68-point face landmark CNN (``FaceLandmark68Net``) as a Keras functional model.

A regression CNN in the sense of the notes' landmark detection: a face crop
in, 136 numbers out (x, y of 68 points, iBUG 300-W order: jaw 0-16, brows
17-26, nose 27-35, eyes 36-47, mouth 48-67). Architecture
(``src/faceFeatureExtractor`` and ``src/faceLandmarkNet`` of
``@vladmandic/face-api`` 1.7.15):

- input uint8 ``[N, 112, 112, 3]`` RGB, a square face crop resized to 112;
  ``(pixel - mean) / 255`` inside the model, mean (122.782, 117.001, 104.298);
- four densely connected blocks, each halving the size and setting the width
  (32, 64, 128, 256; 112 -> 56 -> 28 -> 14 -> 7 px). In a block, ``c0`` is a
  stride-2 conv (a plain 3x3 conv in the first block, a depthwise-separable
  3x3 in the others) then ReLU; ``c1 = sep(c0)``,
  ``c2 = sep(relu(c0 + c1))``, ``c3 = sep(relu(c0 + c1 + c2))``, and the block
  gives ``relu(c0 + c1 + c2 + c3)``; every ``sep`` is a 3x3
  depthwise-separable conv with bias, "same" padding;
- average pool 7x7 (stride 2, valid) -> ``[N, 1, 1, 256]`` -> fully connected
  256 -> 136, reshaped to ``[N, 68, 2]``: each point (x, y) as a fraction of
  the crop's side (0 = left/top edge, 1 = right/bottom edge).

Only stock Keras layers: the model saves and loads with ``safe_mode=True``.

Weights: the TF.js files ``face_landmark_68_model-weights_manifest.json`` +
``face_landmark_68_model.bin`` (uint8-quantised, 357 KB; fetched by
``pipelines.face_api_package.LANDMARK_68_FILES``), read by ``models.tfjs_weights``; the
``.bin`` is checked by its SHA-256.

Example:
    >>> model = face_landmark_68_net(weights="face_landmark_68_model-weights_manifest.json")
    >>> model(crops).shape            # crops: uint8 [N, 112, 112, 3], square face boxes
    TensorShape([N, 68, 2])
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import keras
import numpy as np
from keras import layers

from models.errors import WeightsUnavailableError
from models.registry import register
from models.tfjs_weights import TfjsFormatError, read_tfjs_weights

INPUT_SIZE = 112
MEAN = (122.782, 117.001, 104.298)
WIDTHS = (32, 64, 128, 256)
MANIFEST = "face_landmark_68_model-weights_manifest.json"
SHARD = "face_landmark_68_model.bin"
SHARD_SHA256 = "4611ef65c87d836d03d684b30eec4d195d8b219fa1dd58fc58945831c6b9299b"


def _sep(x, filters: int, name: str, strides: int = 1):
    return layers.SeparableConv2D(filters, 3, strides=strides, padding="same", name=name)(x)


def _dense_block(x, filters: int, name: str, first: bool):
    if first:
        c0 = layers.Conv2D(filters, 3, strides=2, padding="same", name=f"{name}_conv0")(x)
    else:
        c0 = _sep(x, filters, f"{name}_conv0", strides=2)
    c0 = layers.ReLU(name=f"{name}_relu0")(c0)
    c1 = _sep(c0, filters, f"{name}_conv1")
    s = layers.Add(name=f"{name}_sum1")([c0, c1])
    c2 = _sep(layers.ReLU(name=f"{name}_relu1")(s), filters, f"{name}_conv2")
    s = layers.Add(name=f"{name}_sum2")([s, c2])
    c3 = _sep(layers.ReLU(name=f"{name}_relu2")(s), filters, f"{name}_conv3")
    s = layers.Add(name=f"{name}_sum3")([s, c3])
    return layers.ReLU(name=f"{name}_out")(s)


@register("face_landmark_68_net")
def face_landmark_68_net(input_shape=(INPUT_SIZE, INPUT_SIZE, 3), num_classes: int = 0,
                         weights: str | os.PathLike | None = None, name: str = "face_landmark_68_net") -> keras.Model:
    """68 landmarks from square face crops: uint8 ``[N, 112, 112, 3]`` -> float32 ``[N, 68, 2]`` (x, y fractions).

    ``weights``: face-api's TF.js manifest (its ``.bin`` beside it), a Keras
    ``.weights.h5`` file, or None (random). ``num_classes`` is ignored.
    """
    if tuple(input_shape) != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"the 68-point landmark net takes 112x112 RGB crops. Received: input_shape={tuple(input_shape)}")
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), dtype="uint8", name="face")
    m = np.asarray(MEAN, np.float32)
    x = layers.Rescaling(1.0 / 255.0, offset=(-m / 255.0).tolist(), name="subtract_mean")(inputs)
    for i, filters in enumerate(WIDTHS):
        x = _dense_block(x, filters, f"dense{i}", first=i == 0)
    x = layers.AveragePooling2D(7, strides=2, padding="valid", name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(136, name="fc", dtype="float32")(x)
    outputs = layers.Reshape((68, 2), name="landmarks", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name=name)
    if weights:
        load_face_landmark_weights(model, weights)
    return model


def keras_weights(tfjs: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """face-api's tensors (``dense0/conv1/depthwise_filter``, ...) as Keras weight lists by layer name."""
    out = {}
    for i in range(len(WIDTHS)):
        for j in range(4):
            key = f"dense{i}/conv{j}"
            if i == 0 and j == 0:
                out["dense0_conv0"] = [tfjs[f"{key}/filters"], tfjs[f"{key}/bias"]]
            else:
                out[f"dense{i}_conv{j}"] = [tfjs[f"{key}/depthwise_filter"], tfjs[f"{key}/pointwise_filter"], tfjs[f"{key}/bias"]]
    out["fc"] = [tfjs["fc/weights"], tfjs["fc/bias"]]
    return out


def load_face_landmark_weights(model: keras.Model, weights: str | os.PathLike) -> None:
    """Load face-api's TF.js manifest (``.bin`` checked by SHA-256) or a Keras ``.weights.h5`` into ``model``.

    Raises ``WeightsUnavailableError`` (missing) or its subclass
    ``TfjsFormatError`` (bad bytes), one line naming the file and the fix.
    """
    path = Path(weights)
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file {path} not found; give face-api's {MANIFEST} or a .weights.h5 file")
    if path.name.endswith(".h5"):
        model.load_weights(path)
        return
    shard = path.parent / SHARD
    if shard.is_file() and hashlib.sha256(shard.read_bytes()).hexdigest() != SHARD_SHA256:
        raise TfjsFormatError(f"weights file {shard} is corrupt or not face-api 1.7.15's (SHA-256 mismatch); delete it to fetch it again")
    try:
        converted = keras_weights(read_tfjs_weights(path))
    except KeyError as err:
        raise TfjsFormatError(f"{path} has no tensor {err}; give face-api's {MANIFEST}") from None
    for layer_name, arrays in converted.items():
        model.get_layer(layer_name).set_weights(arrays)
