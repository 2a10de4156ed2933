"""``convforge predict EXPORT|models:/NAME@ALIAS IMAGE... [--top-k K]``: classify images with an exported model.

A ``models:/`` URI is resolved in MLflow's model registry (alias or version);
the registered export is downloaded into a temporary folder, so the images go
through the same graph TF Serving runs.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="top-k labels for images, through an exported SavedModel",
                       description="Send image files through the export's serving_bytes signature (decoding and "
                                   "resizing happen inside the graph) and print the top-k classes.")
    p.add_argument("export", help="an export folder (<dir>/<name> for its newest version, or <dir>/<name>/<version>), "
                                  "or a registered model: models:/NAME@ALIAS or models:/NAME/VERSION")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, GIF)")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to print per image (default 3)")
    p.add_argument("--workdir", default=".", help="folder holding mlflow.db when MLFLOW_TRACKING_URI is unset")
    p.set_defaults(func=run)


def read_images(paths: list[str]) -> list[bytes]:
    """Read image files, refusing missing and corrupt ones with a clear error."""
    from pipelines.decode import check_image_bytes
    from tasks.core.errors import UserError

    out = []
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"image {path} does not exist")
        data = p.read_bytes()
        problem = check_image_bytes(data)
        if problem:
            raise UserError(f"image {path} cannot be used ({problem.replace('_', ' ')}); give a JPEG, PNG, BMP or GIF file")
        out.append(data)
    return out


def load_export_or_fail(export: str):
    from serving.loader import load_export, resolve_export
    from tasks.core.errors import UserError

    try:
        path = resolve_export(export)
    except FileNotFoundError as err:
        raise UserError(f"{err}; give an export folder written by `convforge train` or `convforge export`") from None
    return path, load_export(path)


def run(args) -> int:
    images = read_images(args.images)
    if not args.export.startswith("models:/"):
        return _predict(args, images, args.export)
    import tempfile

    from tasks.core.model_registry import fetch_export
    from tasks.core.tracking import configure

    configure(args.workdir)
    with tempfile.TemporaryDirectory(prefix="convforge-registered-") as tmp:
        return _predict(args, images, str(fetch_export(args.export, tmp)))


def _predict(args, images: list[bytes], export: str) -> int:
    import numpy as np

    from serving.export import read_class_names

    path, served = load_export_or_fail(export)
    names = read_class_names(path)
    probs = predict_images(path, served, images, args.images)["probabilities"]
    for image, p in zip(args.images, probs, strict=True):
        top = np.argsort(p)[::-1][: args.top_k]
        labels = ", ".join(f"{names[i] if i < len(names) else i} {p[i]:.3f}" for i in top)
        print(f"{image}: {labels}")
    return 0


def predict_images(path, served, images: list[bytes], names: list[str]) -> dict:
    """``serving_bytes`` outputs for encoded images; ``UserError`` naming the export or the image that fails.

    An export of 1D sequences or 3D clips has no ``serving_bytes`` (it takes
    tensors): said in one line. An image the graph cannot decode (a damaged
    body, a header over the pixel limit) is named, found by retrying one by one.
    """
    import tensorflow as tf

    from serving.loader import input_specs, predict_bytes
    from tasks.core.errors import UserError, first_line

    if "serving_bytes" not in served.signatures:
        specs = {k: f"{v.dtype.name} {v.shape}" for k, v in input_specs(served.signatures["serving_default"]).items()}
        raise UserError(f"export {path} takes tensors ({specs}), not image files; `convforge predict` needs an image "
                        "export; evaluate this one with `convforge evaluate EXPORT`")
    try:
        return predict_bytes(served, images)
    except tf.errors.InvalidArgumentError:
        pass
    for name, data in zip(names, images, strict=True):
        try:
            predict_bytes(served, [data])
        except tf.errors.InvalidArgumentError as err:
            raise UserError(f"image {name} cannot be decoded by the export ({first_line(err)}); give an undamaged JPEG, PNG, "
                            "BMP or GIF file") from None
    raise UserError(f"export {path} failed on these images together; send them one at a time")
