"""Export of detectors that take region proposals beside the image (Fast R-CNN, R-CNN), TF Serving layout.

Selective search runs on the CPU outside any network (scikit-image's graph
segmentation and a greedy merge), so it cannot live in a SavedModel; the
client computes the proposals and sends them with the pixels. Everything else
(resizing, decoding, the network, box decoding and per-class NMS) is inside
the graph. Two signatures, as ``serving.export.export_image_model``:

- ``serving_default``: ``images`` uint8 ``[N, H, W, C]`` (any H, W) and
  ``proposals`` float32 ``[N, P, 4]``;
- ``serving_bytes``: ``image_bytes`` string ``[N]`` and ``proposals``.

Proposals are normalised ``[ymin, xmin, ymax, xmax]`` (so resizing does not
change them), computed on the image resized to the export's size; zero rows
pad. ``assets/proposals.json`` says how (``method``, ``image_size``,
``max_proposals``) so a client such as ``convforge detect`` can reproduce them.

Example:
    >>> path = export_proposal_model(fn, model, "exports", "scenes_fast_rcnn", (128, 128), 3,
    ...                              {PROPOSALS_FILE: json.dumps({"method": "selective_search", ...})},
    ...                              decode=decode_image)
    >>> served.signatures["serving_default"](images=batch, proposals=boxes)["detection_boxes"]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from serving.export import ImageDecoder, decode_batch, resize_images
from serving.versions import write_version

PROPOSALS_FILE = "proposals.json"


def export_proposal_model(fn: Callable[[tf.Tensor, tf.Tensor], dict], track, root: str | Path, name: str,
                          image_size: tuple[int, int], channels: int, assets: dict[str, str] | None = None, *,
                          decode: ImageDecoder) -> Path:
    """Export ``fn(images_uint8, proposals) -> {name: tensor}`` with both signatures; returns the version folder.

    ``track``: the Keras model (or list of models/layers) whose variables ``fn`` uses; ``decode``: the
    guarded decoder of ``serving_bytes`` (``pipelines.decode.decode_image``, as ``export_image_model``).
    """
    size = tuple(int(s) for s in image_size)
    proposals = tf.TensorSpec([None, None, 4], tf.float32, name="proposals")

    def writer(path: Path) -> None:
        archive = keras.export.ExportArchive()
        for item in track if isinstance(track, (list, tuple)) else [track]:
            archive.track(item)
        archive.add_endpoint("serving_default", lambda images, proposals: fn(resize_images(images, size), proposals),
                             input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8, name="images"),
                                              proposals])
        archive.add_endpoint("serving_bytes",
                             lambda image_bytes, proposals: fn(decode_batch(image_bytes, channels, size, decode), proposals),
                             input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"), proposals])
        archive.write_out(str(path), verbose=False)
        (path / "assets").mkdir(exist_ok=True)
        for filename, text in (assets or {}).items():
            (path / "assets" / filename).write_text(text)

    return write_version(root, name, writer)


def read_proposal_spec(export_path: str | Path) -> dict | None:
    """The export's ``proposals.json`` (how to compute its proposals), or None when it needs none."""
    p = Path(export_path) / "assets" / PROPOSALS_FILE
    return json.loads(p.read_text()) if p.is_file() else None
