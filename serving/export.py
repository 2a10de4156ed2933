"""SavedModel export with serving signatures, in the TF Serving layout.

``export_image_model`` writes ``<root>/<name>/<version>/`` atomically (see
``serving.versions``) with two signatures:

- ``serving_default``: ``images`` uint8 ``[N, H, W, C]`` of any H, W; resized
  to the model's size inside the graph.
- ``serving_bytes``: ``image_bytes`` string ``[N]`` of encoded JPEG/PNG/BMP/GIF,
  decoded and resized inside the graph by the ``decode`` function the caller
  passes: ``pipelines.decode.decode_image``, the one guarded decoder (header
  size checked before decoding) that training uses too. serving does not
  import pipelines (import direction), so the task layer hands it over.

Both call the same ``fn(images_uint8) -> {output_name: tensor}``, so all
pre- and post-processing (softmax/argmax, decoding + NMS, L2 normalisation)
lives in the graph and a client sends only pixels or file bytes.

Example:
    >>> from pipelines.decode import decode_image
    >>> path = export_classifier(model, "exports", "fashion_lenet5", class_names, decode=decode_image)
    >>> served = tf.saved_model.load(str(path))
    >>> served.signatures["serving_default"](images=batch_uint8)["class_id"]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import keras
import tensorflow as tf

from serving.versions import write_version

CLASS_NAMES_FILE = "class_names.txt"


class ImageDecoder(Protocol):
    """``decode(data, channels, image_size) -> uint8 [H, W, channels]`` for one encoded image, in the graph.

    It must refuse oversized headers before decoding (``pipelines.decode.decode_image`` does)."""

    def __call__(self, data: tf.Tensor, channels: int, image_size: tuple[int, int] | None) -> tf.Tensor: ...


def resize_images(images: tf.Tensor, image_size: tuple[int, int] | None) -> tf.Tensor:
    """Resize a uint8 batch to ``image_size`` (identity when it already has that size)."""
    if image_size is None:
        return images
    target = tf.constant(image_size, tf.int32)

    def resize():
        out = tf.image.resize(images, image_size, antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)

    same = tf.reduce_all(tf.equal(tf.shape(images)[1:3], target))
    out = tf.cond(same, lambda: images, resize)
    return tf.ensure_shape(out, [None, image_size[0], image_size[1], images.shape[-1]])


def decode_batch(image_bytes: tf.Tensor, channels: int, image_size: tuple[int, int] | None,
                 decode: ImageDecoder) -> tf.Tensor:
    """Encoded images ``[N]`` -> uint8 ``[N, H, W, channels]`` (all the same size after resizing)."""

    def one(data):
        image = decode(data, channels, None)
        image.set_shape([None, None, channels])
        return resize_images(image[None], image_size)[0]

    spec = tf.TensorSpec([*(image_size or (None, None)), channels], tf.uint8)
    return tf.map_fn(one, image_bytes, fn_output_signature=spec)


def export_image_model(
    fn: Callable[[tf.Tensor], dict],
    track: keras.Model | list,
    root: str | Path,
    name: str,
    image_size: tuple[int, int] | None,
    channels: int,
    assets: dict[str, str] | None = None,
    *,
    decode: ImageDecoder,
) -> Path:
    """Export ``fn`` (uint8 images -> dict of named outputs) with both signatures.

    ``track`` is the Keras model (or list of models/layers) whose variables
    ``fn`` uses. ``assets`` maps file names to text written into ``assets/``.
    ``decode`` decodes one image of ``serving_bytes`` (see ``ImageDecoder``).
    Returns the new version folder.
    """
    size = tuple(int(s) for s in image_size) if image_size else None

    def writer(path: Path) -> None:
        archive = keras.export.ExportArchive()
        for item in track if isinstance(track, (list, tuple)) else [track]:
            archive.track(item)
        archive.add_endpoint(
            "serving_default",
            lambda images: fn(resize_images(images, size)),
            input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")],
        )
        archive.add_endpoint(
            "serving_bytes",
            lambda image_bytes: fn(decode_batch(image_bytes, channels, size, decode)),
            input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
        )
        archive.write_out(str(path), verbose=False)
        _write_assets(path, assets)

    return write_version(root, name, writer)


def export_classifier(
    model: keras.Model, root: str | Path, name: str, class_names: list[str], assets: dict[str, str] | None = None,
    *, decode: ImageDecoder,
) -> Path:
    """Export a softmax classifier: outputs ``probabilities`` ``[N, K]`` and ``class_id`` ``[N]``.

    The class names ship in ``assets/class_names.txt`` (one per line), next to
    any extra ``assets`` (e.g. the recipe that trained the model).
    """
    h, w, c = model.input_shape[1:4]
    files = {CLASS_NAMES_FILE: "\n".join(class_names) + "\n", **(assets or {})}
    return export_image_model(_classifier_outputs(model), model, root, name, (h, w), c, files, decode=decode)


def _classifier_outputs(model: keras.Model):
    def serve(inputs):
        probs = tf.cast(model(inputs, training=False), tf.float32)
        return {"probabilities": probs, "class_id": tf.argmax(probs, axis=-1, output_type=tf.int32)}

    return serve


def export_tensor_classifier(
    model: keras.Model, root: str | Path, name: str, class_names: list[str], assets: dict[str, str] | None = None
) -> Path:
    """Export a classifier of non-image inputs (1D sequences, 3D clips).

    One signature, ``serving_default``: ``inputs`` of the model's own dtype and
    shape ``[N, ...]``; outputs ``probabilities`` and ``class_id`` as for images.
    """
    spec = tf.TensorSpec([None, *model.input_shape[1:]], model.inputs[0].dtype, name="inputs")
    files = {CLASS_NAMES_FILE: "\n".join(class_names) + "\n", **(assets or {})}

    def writer(path: Path) -> None:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", _classifier_outputs(model), input_signature=[spec])
        archive.write_out(str(path), verbose=False)
        _write_assets(path, files)

    return write_version(root, name, writer)


def _write_assets(path: Path, assets: dict[str, str] | None) -> None:
    if assets:
        (path / "assets").mkdir(exist_ok=True)
        for filename, text in assets.items():
            (path / "assets" / filename).write_text(text)


def read_class_names(export_path: str | Path) -> list[str]:
    """The class names shipped with an export (empty if none)."""
    p = Path(export_path) / "assets" / CLASS_NAMES_FILE
    return p.read_text().splitlines() if p.is_file() else []
