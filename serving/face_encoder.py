"""Face encoders as the faces commands use them: aligned crops in, embeddings out, and how to compare them.

Every encoder has ``encode(crops) -> [N, D]``, a ``threshold`` and a
``distance`` (how two embeddings are compared), the ``alignment`` its crops
need, a ``version`` naming the exact weights (a gallery refuses encodings of
another version) and a ``source`` (what ``--model`` to give to get it back):

- ``DlibFaceEncoder``: the pretrained default, dlib's face ResNet in Keras
  (``models.dlib_face_resnet``) on 150x150 dlib chips (alignment
  ``dlib_chip_150``), raw 128-d descriptors compared by Euclidean distance,
  threshold 0.6 (dlib's); version ``dlib_face_resnet@<16 hex digits of the
  .dat file's SHA-256>``.
- ``FaceEncoder``: an export in the TF Serving layout (a trained ``faces``
  recipe, or ``convforge faces export``), its signatures returning
  ``embedding``, ``assets/verification.json`` holding the threshold, the
  distance (``squared_l2`` of unit-length embeddings unless it says
  ``euclidean``), the alignment (``arcface_112`` unless it says otherwise),
  the input shape and the embedding size. Its version is
  ``<model name>/<version>@<fingerprint>``, the fingerprint being
  TensorFlow's SavedModel checksum.

Example:
    >>> encoder = open_encoder("dlib")                             # or an export folder, or a .dat file
    >>> encoder.encode(chips).shape, encoder.threshold, encoder.distance
    ((2, 128), 0.6, 'euclidean')
    >>> FaceEncoder("exports/faces_fashion_mnist").version
    'faces_fashion_mnist/3@5c1e0f2a9b7d4e61'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from serving.loader import predict_arrays, resolve_export
from serving.verification import read_verification

DLIB = "dlib"
DLIB_THRESHOLD = 0.6  # dlib's: two chips of one person lie within Euclidean distance 0.6
EUCLIDEAN, SQUARED_L2 = "euclidean", "squared_l2"
DLIB_CHIP_150, ARCFACE_112 = "dlib_chip_150", "arcface_112"


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
        self.source = str(self.path.parent)
        self.threshold = float(self.meta["threshold"])
        self.distance = self.meta.get("distance") if self.meta.get("distance") == EUCLIDEAN else SQUARED_L2
        self.alignment = self.meta.get("alignment", ARCFACE_112)
        self.channels = int(self.meta["input_shape"][2])
        self._served = tf.saved_model.load(str(self.path))

    def encode(self, crops: np.ndarray) -> np.ndarray:
        """uint8 RGB ``[N, H, W, 3]`` (any H, W: resized inside) -> float32 ``[N, D]``."""
        x = np.asarray(crops, np.uint8)
        if self.channels == 1:
            x = np.round(x @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
        return predict_arrays(self._served, x)["embedding"].astype(np.float32)


class DlibFaceEncoder:
    """dlib's pretrained face ResNet in Keras; ``encode`` takes 150x150 dlib chips (other sizes are resized)."""

    threshold = DLIB_THRESHOLD
    distance = EUCLIDEAN
    alignment = DLIB_CHIP_150

    def __init__(self, weights: str | Path = DLIB):
        from models.dlib_face_resnet import WEIGHTS_SHA256, dlib_face_resnet

        self.model = dlib_face_resnet(weights=str(weights))  # a .dat file must be dlib's released one (checksum)
        self.source = DLIB if str(weights) == DLIB else str(Path(weights).resolve())
        self.version = f"dlib_face_resnet@{WEIGHTS_SHA256[:16]}"
        self.path = None

    def encode(self, chips: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """uint8 RGB ``[N, 150, 150, 3]`` -> float32 descriptors ``[N, 128]`` (not normalised)."""
        x = np.asarray(chips, np.uint8)
        if x.shape[1:3] != (150, 150):
            x = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(x, (150, 150))), 0, 255), tf.uint8).numpy()
        out = [np.asarray(self.model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 128), np.float32)


def open_encoder(model: str | Path | None = None):
    """``"dlib"`` (or None): the pretrained default; a ``.dat`` file: dlib's net read from it; else an export folder.

    Raises ``FileNotFoundError`` (no such export) or ``OSError`` (weights missing or corrupt), one line each.
    """
    if model is None or str(model) == DLIB or str(model).endswith(".dat"):
        return DlibFaceEncoder(model or DLIB)
    return FaceEncoder(model)
