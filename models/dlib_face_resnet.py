"""dlib's face recognition ResNet (King 2017) as a Keras functional model, with its pretrained weights.

The network behind ``dlib.face_recognition_model_v1`` and the
face_recognition package maps an aligned 150x150 RGB face chip to a 128-d
descriptor; two chips of one person lie within Euclidean distance 0.6
(99.38% on LFW as published). Architecture (dlib/examples/
dnn_face_recognition_ex.cpp, a ResNet-34 with fewer filters):

- input uint8 ``[N, 150, 150, 3]`` RGB; ``(pixel - mean) / 256`` per channel
  inside the model, mean (122.782, 117.001, 104.298) as stored in the file;
- stem: conv 7x7/2 (32, no padding) -> affine -> ReLU -> max pool 3x3/2
  (no padding): 150 -> 72 -> 35 px;
- residual blocks, each conv 3x3 -> affine -> ReLU -> conv 3x3 -> affine,
  added to the block's input, then ReLU; levels (filters x blocks): 32 x 3,
  64 x 4, 128 x 3, 256 x 3, 256 x 1 (35, 17, 8, 4, 2 px);
- the first block of every level but the first downsamples: its first conv
  has stride 2 and no padding, its shortcut is a 2x2/2 average pool of the
  input. Where the two sides differ in size (more channels; at 4 px the conv
  gives 1x1 and the pool 2x2) dlib adds them zero-padded at the end
  (``add_prev`` -> ``tt::add``); here a ``ZeroPadding3D`` on the smaller side;
- global average pool -> fully connected 256 -> 128 without bias: the
  descriptor ``[N, 128]`` (not normalised).

dlib's ``affine`` layers (frozen batch norms, gamma * x + beta per channel) are
folded into the convolution before them. Only stock Keras layers: the model
saves and loads with ``safe_mode=True``.

Weights come from ``dlib_face_recognition_resnet_model_v1.dat`` of the PyPI
package ``face-recognition-models`` (CC0), read by
``models.dlib_serialization`` (no dlib needed), checked by its SHA-256 and
converted once into a Keras weights file cached under
``$XDG_CACHE_HOME/convforge`` (``~/.cache/convforge``).

Example:
    >>> model = dlib_face_resnet(weights="dlib")
    >>> model(chips).shape          # chips: uint8 [N, 150, 150, 3], aligned (pipelines.face_crops)
    TensorShape([N, 128])
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
from keras import layers

from models.dlib_serialization import DlibFormatError, DlibLayer, parse_dlib_net
from models.errors import WeightsUnavailableError
from models.registry import register

PACKAGE = "face_recognition_models"
WEIGHTS_FILE = "dlib_face_recognition_resnet_model_v1.dat"
WEIGHTS_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
DLIB = "dlib"
CHIP_SIZE = 150
MEAN = (122.782, 117.001, 104.298)  # dlib's input_rgb_image defaults; the file's own values are loaded
LEVELS = (("level4", 32, 3, False), ("level3", 64, 4, True), ("level2", 128, 3, True), ("level1", 256, 3, True), ("level0", 256, 1, True))


class WeightsCorruptError(WeightsUnavailableError):
    """The weights file exists but its bytes are not the expected ones."""


def _pad_to(x, shape: tuple[int, int, int], name: str):
    """Zero-pad ``x`` ``[N, h, w, c]`` at the bottom, right and last channels up to ``shape`` (dlib's tt::add)."""
    h, w, c = x.shape[1:]
    if (h, w, c) == tuple(shape):
        return x
    x = layers.Reshape((h, w, c, 1), name=f"{name}_5d")(x)
    x = layers.ZeroPadding3D(((0, shape[0] - h), (0, shape[1] - w), (0, shape[2] - c)), name=f"{name}_pad")(x)
    return layers.Reshape(tuple(shape), name=f"{name}_4d")(x)


def _block(x, name: str, filters: int, down: bool):
    stride, padding = (2, "valid") if down else (1, "same")
    y = layers.Conv2D(filters, 3, strides=stride, padding=padding, name=f"{name}_conv1")(x)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    shortcut = layers.AveragePooling2D(2, 2, padding="valid", name=f"{name}_shortcut_pool")(x) if down else x
    shape = tuple(max(a, b) for a, b in zip(y.shape[1:], shortcut.shape[1:], strict=True))
    y, shortcut = _pad_to(y, shape, f"{name}_residual"), _pad_to(shortcut, shape, f"{name}_shortcut")
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def block_names() -> list[str]:
    """Residual block names in data-flow order (``level4_block1`` ... ``level0_block1``)."""
    return [f"{level}_block{i}" for level, _, blocks, _ in LEVELS for i in range(1, blocks + 1)]


def trunk_blocks(model: keras.Model) -> list[list[str]]:
    """Layer names of the stem and of each residual block, bottom to top (for freezing the top k)."""
    groups = [[layer.name for layer in model.layers if layer.name.startswith("stem_")]]
    return groups + [[layer.name for layer in model.layers if layer.name.startswith(f"{b}_")] for b in block_names()]


@register("dlib_face_resnet")
def dlib_face_resnet(input_shape=(CHIP_SIZE, CHIP_SIZE, 3), num_classes: int = 0, weights: str | None = DLIB,
                     mean=MEAN, name: str = "dlib_face_resnet") -> keras.Model:
    """The 128-d face encoder: uint8 chips ``[N, 150, 150, 3]`` -> float32 descriptors ``[N, 128]``.

    ``weights``: ``"dlib"`` (the packaged pretrained file), a path to a dlib
    ``.dat`` or Keras ``.weights.h5`` file, or None (random). ``num_classes``
    is ignored (an encoder has no classes).
    """
    if tuple(input_shape) != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"dlib's face ResNet takes 150x150 RGB chips. Received: input_shape={tuple(input_shape)}")
    inputs = keras.Input((CHIP_SIZE, CHIP_SIZE, 3), dtype="uint8", name="chip")
    m = np.asarray(mean, np.float32)
    x = layers.Rescaling(1.0 / 256.0, offset=(-m / 256.0).tolist(), name="subtract_mean")(inputs)
    x = layers.Conv2D(32, 7, strides=2, padding="valid", name="stem_conv")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(3, 2, padding="valid", name="stem_pool")(x)
    for level, filters, blocks, down in LEVELS:
        for i in range(1, blocks + 1):
            x = _block(x, f"{level}_block{i}", filters, down and i == 1)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(128, use_bias=False, name="descriptor", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name=name)
    if weights:
        load_dlib_face_weights(model, weights)
    return model


# -- weights ---------------------------------------------------------------------------
def package_weights_path() -> Path:
    """``dlib_face_recognition_resnet_model_v1.dat`` as installed by ``face-recognition-models``."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError("dlib's face encoder needs the package face-recognition-models; "
                                      "`pip install face-recognition-models==0.3.0` (or `make install`)")
    path = Path(spec.submodule_search_locations[0]) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise WeightsUnavailableError(f"{path} is missing; reinstall face-recognition-models==0.3.0")
    return path


def _plan() -> list[tuple[str, str]]:
    """(dlib layer kind, Keras layer name) in data-flow order, as dlib's file lists them."""
    plan = [("con", "stem_conv"), ("affine", "stem_conv"), ("relu", ""), ("max_pool", "")]
    for level, _, blocks, down in LEVELS:
        for i in range(1, blocks + 1):
            b = f"{level}_block{i}"
            plan += [("con", f"{b}_conv1"), ("affine", f"{b}_conv1"), ("relu", ""), ("con", f"{b}_conv2"), ("affine", f"{b}_conv2")]
            plan += [("avg_pool", "")] * (down and i == 1) + [("add_prev", ""), ("relu", "")]
    return plan + [("avg_pool", ""), ("fc", "descriptor")]


def keras_weights(dlib_layers: list[DlibLayer]) -> dict[str, list[np.ndarray]]:
    """Keras layer name -> weights, each affine folded into its convolution."""
    plan = _plan()
    kinds = [layer.kind for layer in dlib_layers]
    if kinds != [k for k, _ in plan]:
        raise DlibFormatError(f"the file's {len(kinds)} layers are not dlib's face recognition ResNet ({len(plan)} layers)")
    out: dict[str, list[np.ndarray]] = {}
    for layer, (kind, name) in zip(dlib_layers, plan, strict=True):
        if kind == "con":
            out[name] = [layer.arrays["filters"].transpose(2, 3, 1, 0), layer.arrays["biases"]]  # OIHW -> HWIO
        elif kind == "affine":
            kernel, bias = out[name]
            gamma, beta = layer.arrays["gamma"], layer.arrays["beta"]
            out[name] = [kernel * gamma, bias * gamma + beta]
        elif kind == "fc":
            out[name] = [layer.arrays["weights"]]
    return out


def cache_dir() -> Path:
    """Where converted weights are kept: ``$CONVFORGE_CACHE`` or ``$XDG_CACHE_HOME/convforge`` (``~/.cache/convforge``)."""
    if os.environ.get("CONVFORGE_CACHE"):
        return Path(os.environ["CONVFORGE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convforge"


def load_dlib_face_weights(model: keras.Model, weights: str | os.PathLike = DLIB, verify: bool = True) -> None:
    """Load ``"dlib"`` (the packaged file), a dlib ``.dat`` file or a Keras ``.weights.h5`` file into ``model``.

    A ``.dat`` file must have the SHA-256 of dlib's released
    ``dlib_face_recognition_resnet_model_v1.dat`` (``verify=False`` accepts
    another file of the same architecture); it is converted once and the
    result cached. Raises ``WeightsUnavailableError`` (missing) or
    ``WeightsCorruptError`` (bad bytes), one line naming the file and the fix.
    """
    if str(weights).endswith(".h5"):
        if not Path(weights).is_file():
            raise WeightsUnavailableError(f"weights file {weights} not found; pass 'dlib' or an existing file")
        model.load_weights(weights)
        return
    path = package_weights_path() if str(weights) == DLIB else Path(weights)
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file {path} not found; pass 'dlib' or an existing dlib .dat file")
    data = path.read_bytes()
    released = hashlib.sha256(data).hexdigest() == WEIGHTS_SHA256
    if verify and not released:
        raise WeightsCorruptError(f"weights file {path} is corrupt or not dlib's {WEIGHTS_FILE} (SHA-256 mismatch); "
                                  "reinstall it: pip install --force-reinstall face-recognition-models==0.3.0")
    cached = cache_dir() / f"dlib_face_resnet_{WEIGHTS_SHA256[:16]}.weights.h5"
    if released and cached.is_file():
        try:
            model.load_weights(cached)
            return
        except (OSError, ValueError):
            pass  # an unreadable cache is rebuilt below
    try:
        net = parse_dlib_net(data)
        converted = keras_weights(net.layers)
    except DlibFormatError as err:
        raise WeightsCorruptError(f"weights file {path}: {err}; give dlib's {WEIGHTS_FILE}") from None
    mean = np.asarray(net.mean, np.float32)
    if not np.allclose(-np.asarray(model.get_layer("subtract_mean").offset) * 256.0, mean, atol=1e-3):
        raise WeightsCorruptError(f"{path} subtracts the mean {tuple(mean.tolist())}; build the model with that mean")
    for name, values in converted.items():
        model.get_layer(name).set_weights(values)
    if released:
        _save_cache(model, cached)


def _save_cache(model: keras.Model, target: Path) -> None:
    """Write the converted weights atomically; a read-only cache folder is skipped silently."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".weights.h5", dir=target.parent)
        os.close(fd)
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, target)
    except OSError:
        pass
