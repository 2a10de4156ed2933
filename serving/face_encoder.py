"""An exported face encoder, loaded back: aligned crops in, unit-length embeddings out.

The export (``tasks.faces``) is a TF Serving SavedModel whose signatures
return ``embedding``, with ``assets/verification.json`` holding the
verification threshold, the input shape and the embedding size. Its
*version* names the exact weights: ``<model name>/<version>@<fingerprint>``,
the fingerprint being TensorFlow's SavedModel checksum, so a gallery can
refuse encodings made by another encoder.

Example:
    >>> encoder = FaceEncoder("exports/faces_fashion_mnist")     # newest version
    >>> encoder.encode(crops).shape, encoder.threshold, encoder.version
    ((2, 128), 0.91, 'faces_fashion_mnist/3@5c1e0f2a9b7d4e61')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from serving.loader import predict_arrays, resolve_export
from serving.verification import read_verification


def encoder_version(export_path: str | Path) -> str:
    """``<model name>/<version>@<16 hex digits of the SavedModel checksum>``."""
    p = Path(export_path).resolve()
    checksum = tf.saved_model.experimental.read_fingerprint(str(p)).saved_model_checksum
    return f"{p.parent.name}/{p.name}@{checksum:016x}"


class FaceEncoder:
    """The newest (or given) version of an exported encoder; ``encode`` takes RGB crops."""

    def __init__(self, export_path: str | Path):
        self.path = resolve_export(export_path)
        self.meta = read_verification(self.path)
        self.version = encoder_version(self.path)
        self.threshold = float(self.meta["threshold"])
        self.channels = int(self.meta["input_shape"][2])
        self._served = tf.saved_model.load(str(self.path))

    def encode(self, crops: np.ndarray) -> np.ndarray:
        """uint8 RGB ``[N, H, W, 3]`` (any H, W: resized inside) -> float32 ``[N, D]``."""
        x = np.asarray(crops, np.uint8)
        if self.channels == 1:
            x = np.round(x @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
        return predict_arrays(self._served, x)["embedding"].astype(np.float32)
