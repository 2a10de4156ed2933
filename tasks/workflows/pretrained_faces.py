"""dlib's pretrained face encoder as a TF Serving export, like every convforge export.

``<export_dir>/<name>/<version>/`` holds a SavedModel with

- ``serving_default``: ``images`` uint8 ``[N, H, W, 3]``, aligned face chips
  (dlib's 150x150 chips, ``tasks.workflows.face_alignment``; other sizes are resized
  inside) -> ``embedding`` float32 ``[N, 128]``, dlib's raw descriptors;
- ``serving_bytes``: ``image_bytes`` string ``[N]`` of encoded chips (JPEG/PNG),
  decoded with the guarded decoder, same output.

Detection and alignment stay outside the graph (MTCNN and the landmark
predictor are not TensorFlow graphs): a client sends chips, not photos.
``assets/verification.json`` holds the threshold (0.6), the distance
(``euclidean``), the alignment (``dlib_chip_150``), the input shape and the
source file's SHA-256, so ``serving.face_encoder.FaceEncoder`` (and
``convforge faces ... --model EXPORT``) uses it as it uses the built-in one.

Example:
    >>> path = export_dlib_encoder("exports")            # exports/dlib_face_resnet/1
    >>> FaceEncoder(path).encode(chips).shape
    (2, 128)
"""

from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from models.dlib_face_resnet import WEIGHTS_FILE, WEIGHTS_SHA256, dlib_face_resnet
from pipelines.decode import decode_image
from serving.export import export_image_model
from serving.face_encoder import DLIB_CHIP_150, DLIB_THRESHOLD, EUCLIDEAN
from serving.verification import VERIFICATION_FILE


def export_dlib_encoder(export_dir: str | Path = "exports", name: str = "dlib_face_resnet", weights: str = "dlib") -> Path:
    """Write the encoder (weights: ``"dlib"`` or a dlib .dat file) under ``export_dir/name/<next version>``; returns that folder."""
    model = dlib_face_resnet(weights=weights)
    meta = {"threshold": DLIB_THRESHOLD, "distance": EUCLIDEAN, "alignment": DLIB_CHIP_150, "embedding_dim": 128,
            "input_shape": [150, 150, 3], "weights": WEIGHTS_FILE, "weights_sha256": WEIGHTS_SHA256}

    def serve(images):
        return {"embedding": tf.cast(model(images, training=False), tf.float32)}

    return export_image_model(serve, model, export_dir, name, (150, 150), 3, {VERIFICATION_FILE: json.dumps(meta, indent=2)},
                              decode=decode_image)
