"""Loading exports back: resolve ``<root>/<name>[/<version>]`` and call its signatures.

Example:
    >>> served = load_export("exports/fashion_mnist_lenet5")      # newest version
    >>> out = predict_bytes(served, [open("shoe.png", "rb").read()])
    >>> out["probabilities"].shape
    (1, 10)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from serving.versions import latest_version


def resolve_export(path: str | Path) -> Path:
    """A version folder: ``path`` itself if it holds a SavedModel, else its newest version."""
    p = Path(path)
    if (p / "saved_model.pb").is_file():
        return p
    if p.is_dir():
        return latest_version(p)
    raise FileNotFoundError(f"export {p} does not exist")


def load_export(path: str | Path):
    """``tf.saved_model.load`` of the resolved version folder."""
    return tf.saved_model.load(str(resolve_export(path)))


def predict_bytes(served, images: list[bytes], batch_size: int = 64) -> dict[str, np.ndarray]:
    """Call ``serving_bytes`` on encoded images in batches; outputs concatenated as numpy."""
    return _call_batched(served.signatures["serving_bytes"], "image_bytes", images, batch_size)


def predict_arrays(served, images: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Call ``serving_default`` in batches: uint8 ``[N, H, W, C]`` for image exports, or the
    ``inputs`` tensors (1D sequences, 3D clips) of a tensor export, cast to its dtype."""
    fn = served.signatures["serving_default"]
    (argument, spec), *_ = input_specs(fn).items()
    return _call_batched(fn, argument, images, batch_size, spec.dtype)


def input_specs(fn) -> dict[str, tf.TensorSpec]:
    """A concrete signature's inputs: argument name -> TensorSpec."""
    return dict(fn.structured_input_signature[1])


def _call_batched(fn, argument: str, values, batch_size: int, dtype: tf.DType | None = None) -> dict[str, np.ndarray]:
    parts: dict[str, list] = {}
    for i in range(0, len(values), batch_size):
        chunk = values[i : i + batch_size]
        out = fn(**{argument: tf.constant(np.asarray(chunk, dtype.as_numpy_dtype) if dtype is not None else chunk)})
        for key, value in out.items():
            parts.setdefault(key, []).append(value.numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}
