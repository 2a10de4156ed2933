"""Read a network saved by dlib's DNN toolkit (``dlib::serialize(net)``) with NumPy alone.

dlib writes a network as nested objects, outermost (the loss) first. Each
``add_layer`` writes its version, then its whole sub-network, then its own
layer's details, so the file holds every wrapper's version top to bottom,
then the input layer, then the layers' details bottom to top, which is the
order the data flows in. ``tag`` and ``skip`` wrappers hold only a version.

The pieces (dlib/serialize.h, dlib/dnn/core.h, layers.h, input.h,
dlib/cuda/tensor.h):

- integer: a control byte (low 4 bits: how many little-endian bytes follow;
  bit 7: negative), then those bytes;
- float: two integers, mantissa then exponent (value = mantissa * 2**exponent);
- bool: the ASCII byte ``'1'`` or ``'0'``; string: its length, then the bytes;
- tensor: version 2, then num_samples, k, nr, nc, then raw little-endian
  float32 values in that (NCHW) order; an ``alias_tensor`` (a view into a
  layer's params) is version 1 and its four sizes;
- layer details start with a version string: ``con_4`` (params = filters
  ``[out, in, kh, kw]`` then biases), ``affine_`` (gamma then beta),
  ``relu_``, ``max_pool_2``/``avg_pool_2`` (window, stride, padding),
  ``add_prev_``, ``fc_2`` (weights ``[inputs, outputs]``, no bias here);
- after each layer's details ``add_layer`` appends three bools and its
  gradient buffers (empty tensors in a saved model).

Example:
    >>> net = read_dlib_net("dlib_face_recognition_resnet_model_v1.dat")
    >>> net.input_name, net.mean, [layer.kind for layer in net.layers[:4]]
    ('input_rgb_image_sized', (122.782, 117.001, 104.298), ['con', 'affine', 'relu', 'max_pool'])
    >>> net.layers[0].arrays["filters"].shape
    (32, 3, 7, 7)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DlibFormatError(ValueError):
    """The file is not the dlib network it should be (corrupt, truncated or another model)."""


@dataclass
class DlibLayer:
    """One computational layer: ``kind`` (con, affine, relu, max_pool, avg_pool, add_prev, fc), settings, arrays."""

    kind: str
    settings: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed network: its loss, its input layer (per-channel means, size) and its layers in data-flow order."""

    loss: str
    loss_settings: tuple
    input_name: str
    mean: tuple[float, float, float]
    input_size: tuple[int, int]
    wrapper_versions: list[int]
    layers: list[DlibLayer]


class _Reader:
    def __init__(self, data: bytes):
        self.raw = bytes(data)
        self.data, self.pos = memoryview(self.raw), 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise DlibFormatError("the file ends too early")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def peek_string(self) -> bool:
        """Does a plausible string (length, then printable bytes) start here?"""
        d, p = self.data, self.pos
        return p + 2 < len(d) and 1 <= (d[p] & 0x0F) <= 2 and d[p] & 0x80 == 0 and 32 <= d[p + 1 + (d[p] & 0x0F)] < 127

    def integer(self) -> int:
        control = self.byte()
        n = control & 0x0F
        if n == 0 or n > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte {control:#04x} at offset {self.pos - 1}")
        raw = bytes(self.data[self.pos : self.pos + n])
        if len(raw) != n:
            raise DlibFormatError("the file ends too early")
        self.pos += n
        value = int.from_bytes(raw, "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        return float(np.ldexp(float(mantissa), exponent)) if exponent < 32000 else float("nan")

    def boolean(self) -> bool:
        c = self.byte()
        if c not in (ord("0"), ord("1")):
            raise DlibFormatError(f"bad bool byte {c:#04x} at offset {self.pos - 1}")
        return c == ord("1")

    def string(self) -> str:
        n = self.integer()
        raw = bytes(self.data[self.pos : self.pos + n])
        if len(raw) != n or n > 256:
            raise DlibFormatError("bad string")
        self.pos += n
        return raw.decode("ascii", "replace")

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise DlibFormatError(f"bad tensor version at offset {self.pos}")
        shape = tuple(self.integer() for _ in range(4))
        n = int(np.prod(shape))
        if self.pos + 4 * n > len(self.data):
            raise DlibFormatError("the file ends inside a tensor")
        values = np.frombuffer(self.data, "<f4", n, self.pos).astype(np.float32).reshape(shape)
        self.pos += 4 * n
        return values

    def alias(self) -> tuple[int, ...]:
        if self.integer() != 1:
            raise DlibFormatError(f"bad alias_tensor version at offset {self.pos}")
        return tuple(self.integer() for _ in range(4))


def _split(params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Cut a layer's flat params into consecutive views of ``shapes``."""
    flat, out, start = params.reshape(-1), [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        if start + size > flat.size:
            raise DlibFormatError(f"params hold {flat.size} values, fewer than their views need")
        out.append(flat[start : start + size].reshape(shape))
        start += size
    return out


def _layer(r: _Reader) -> DlibLayer:
    version = r.string()
    if version in ("con_4", "con_5", "con_6"):
        params = r.tensor()
        filters, kh, kw, sy, sx, py, px = (r.integer() for _ in range(7))
        f_shape, b_shape = r.alias(), r.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.real()
        use_bias = r.boolean() if version in ("con_5", "con_6") else True
        if version == "con_6" and r.boolean():
            raise DlibFormatError("a convolution with a fused relu is not supported")
        shapes = (f_shape, b_shape) if use_bias else (f_shape,)
        arrays = dict(zip(("filters", "biases"), _split(params, *shapes), strict=False))
        if "biases" in arrays:
            arrays["biases"] = arrays["biases"].reshape(-1)
        return DlibLayer("con", {"filters": filters, "kernel": (kh, kw), "stride": (sy, sx), "padding": (py, px)}, arrays)
    if version in ("affine_", "affine_2"):
        params = r.tensor()
        g_shape, b_shape = r.alias(), r.alias()
        mode = r.integer()
        disabled = r.boolean() if version == "affine_2" else False
        gamma, beta = _split(params, g_shape, b_shape)
        return DlibLayer("affine", {"mode": mode, "disabled": disabled}, {"gamma": gamma.reshape(-1), "beta": beta.reshape(-1)})
    if version in ("relu_", "relu_2"):
        disabled = r.boolean() if version == "relu_2" else False
        return DlibLayer("relu", {"disabled": disabled})
    if version in ("max_pool_2", "avg_pool_2"):
        kh, kw, sy, sx, py, px = (r.integer() for _ in range(6))
        return DlibLayer(version[:-2], {"window": (kh, kw), "stride": (sy, sx), "padding": (py, px)})
    if version == "add_prev_":
        return DlibLayer("add_prev")
    if version in ("fc_2", "fc_3"):
        outputs, inputs = r.integer(), r.integer()
        params = r.tensor()
        w_shape, b_shape = r.alias(), r.alias()
        bias_mode = r.integer()
        for _ in range(4):
            r.real()
        use_bias = r.boolean() if version == "fc_3" else True
        (weights,) = _split(params, w_shape)
        return DlibLayer("fc", {"outputs": outputs, "inputs": inputs, "bias": bool(bias_mode == 0 and use_bias)},
                         {"weights": weights.reshape(inputs, outputs)})
    raise DlibFormatError(f"layer type {version!r} is not supported")


def parse_dlib_net(data: bytes) -> DlibNet:
    """Parse the bytes of a dlib network file (``loss -> ... -> input_rgb_image[_sized]``)."""
    r = _Reader(data)
    try:
        if r.integer() != 1:
            raise DlibFormatError("not a dlib network (bad loss-layer version)")
        loss = r.string()
        loss_settings = (r.real(), r.real()) if loss.startswith("loss_metric") else ()
        versions = []
        while not r.peek_string():  # the wrappers' versions, top to bottom
            versions.append(r.integer())
            if len(versions) > 10_000:
                raise DlibFormatError("no input layer found")
        input_name = versions and r.string()
        if input_name not in ("input_rgb_image", "input_rgb_image_sized"):
            raise DlibFormatError(f"input layer {input_name!r} is not supported")
        mean = (r.real(), r.real(), r.real())
        size = (r.integer(), r.integer()) if input_name == "input_rgb_image_sized" else (0, 0)
        layers = [_layer(r)]  # the lowest add_layer (it holds the input layer)
        for _ in range(3):
            r.boolean()
        for _ in range(3):
            r.tensor()
        if versions[-1] >= 3:
            r.integer()  # sample expansion factor
        while r.pos < len(r.data):
            layers.append(_layer(r))
            for _ in range(3):
                r.boolean()
            for _ in range(3):  # add_layer version 2: x_grad, cached_output, params_grad
                r.tensor()
    except (DlibFormatError, ValueError, OverflowError) as err:
        raise DlibFormatError(f"not a readable dlib network: {err}") from None
    return DlibNet(loss, loss_settings, input_name, mean, size, versions, layers)


def read_dlib_net(path: str | os.PathLike, sha256: str | None = None) -> DlibNet:
    """Parse the dlib network file at ``path``; with ``sha256``, refuse a file whose bytes differ.

    Raises ``DlibFormatError`` (one line naming the file) when the checksum or the format is wrong.
    """
    path = Path(path)
    data = path.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DlibFormatError(f"weights file {path} is corrupt (its SHA-256 is not {sha256[:16]}...)")
    try:
        return parse_dlib_net(data)
    except DlibFormatError as err:
        raise DlibFormatError(f"weights file {path}: {err}") from None
