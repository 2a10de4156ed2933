"""Read TensorFlow.js weights: a ``*-weights_manifest.json`` and the binary shards it names.

The manifest is a list of groups, each ``{"paths": [shard files], "weights":
[{"name", "shape", "dtype", "quantization"?}, ...]}``; the shards of a group,
concatenated, hold its tensors back to back in manifest order, little-endian.
A quantised tensor is stored as ``uint8`` or ``uint16`` codes ``q`` and read
back as ``q * scale + min`` (TF.js' affine quantisation; ``float16``
quantisation is stored as IEEE halves).

Example:
    >>> weights = read_tfjs_weights("face_landmark_68_model-weights_manifest.json")
    >>> weights["fc/weights"].shape
    (256, 136)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from models.errors import WeightsUnavailableError

_DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4"), "uint8": np.dtype("u1"), "uint16": np.dtype("<u2"),
           "float16": np.dtype("<f2")}


class TfjsFormatError(WeightsUnavailableError):
    """A TF.js manifest or shard is malformed; the message names the file."""


def _tensor(spec: dict, buffer: bytes, offset: int, manifest: Path) -> tuple[np.ndarray, int]:
    shape = [int(d) for d in spec["shape"]]
    quant = spec.get("quantization")
    stored = _DTYPES.get(quant["dtype"] if quant else spec["dtype"])
    if stored is None:
        raise TfjsFormatError(f"{manifest}: {spec['name']} has an unsupported dtype; give a float32 or uint8/uint16/float16-quantised model")
    count = int(np.prod(shape))
    end = offset + count * stored.itemsize
    if end > len(buffer):
        raise TfjsFormatError(f"{manifest}: the weight shards end before {spec['name']}; the .bin files are truncated, fetch them again")
    codes = np.frombuffer(buffer, stored, count, offset)
    if quant and quant["dtype"] in ("uint8", "uint16"):
        values = codes.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
    else:
        values = codes.astype(np.float32 if spec["dtype"] == "float32" else codes.dtype)
    return values.reshape(shape), end


def read_tfjs_weights(manifest: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a TF.js weights manifest, by name, as NumPy arrays (quantised ones dequantised to float32)."""
    manifest = Path(manifest)
    try:
        groups = json.loads(manifest.read_text())
    except FileNotFoundError:
        raise WeightsUnavailableError(f"weights manifest {manifest} not found; give an existing *-weights_manifest.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TfjsFormatError(f"{manifest} is not a TF.js weights manifest ({type(err).__name__}); fetch it again") from None
    out: dict[str, np.ndarray] = {}
    try:
        for group in groups:
            shards = [manifest.parent / p for p in group["paths"]]
            missing = [str(s) for s in shards if not s.is_file()]
            if missing:
                raise WeightsUnavailableError(f"{manifest} names {missing[0]}, which is missing; keep the .bin shards beside the manifest")
            buffer = b"".join(s.read_bytes() for s in shards)
            offset = 0
            for spec in group["weights"]:
                out[spec["name"]], offset = _tensor(spec, buffer, offset, manifest)
            if offset != len(buffer):
                raise TfjsFormatError(f"{manifest}: the shards hold {len(buffer) - offset} bytes more than the manifest names; "
                                      "the manifest and the .bin files do not match")
    except (KeyError, TypeError, ValueError) as err:
        raise TfjsFormatError(f"{manifest} is not a TF.js weights manifest (bad entry: {err}); fetch it again") from None
    return out
