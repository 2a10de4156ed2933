"""The augmentation preview: originals beside augmented draws of a recipe's ``data.augment`` policy.

Each row is one training image: the original first, then ``versions``
augmented draws (the same code path training uses). Boxes and keypoints are
drawn when the dataset has them (``scenes:``, ``voc:``, ``coco:``, ``yolo:``).
Used by ``convforge augment-preview`` and logged with classification runs.
"""

from __future__ import annotations

from pathlib import Path


def _samples(data: dict, count: int, seed: int) -> dict:
    """A few originals of the recipe's dataset: images (list of uint8 HWC), maybe boxes/keypoints."""

    spec, size = data["dataset"], data["image_size"]
    kind, _, rest = spec.partition(":")
    if kind == "scenes":
        from pipelines.catalog import load_arrays
        from pipelines.scenes import LANDMARK_FLIP, background_photos, make_scenes

        objects = load_arrays(rest)
        scenes = make_scenes(objects.x_train[:500], objects.y_train[:500], background_photos(), count,
                             image_size=tuple(size or (128, 128)), seed=seed)
        return {"images": list(scenes.images), "boxes": scenes.boxes,
                "keypoints": [m.reshape(-1, 2) for m in scenes.landmarks], "flip_pairs": LANDMARK_FLIP}
    if kind in ("voc", "coco", "yolo"):
        from pipelines import annotations

        reader = {"voc": annotations.read_voc, "coco": annotations.read_coco, "yolo": annotations.read_yolo}[kind]
        ann = reader(rest)
        ds = annotations.detection_dataset(ann, channels=data["channels"] or 3, image_size=size).take(count)
        items = list(ds.as_numpy_iterator())
        out = {"images": [e["image"] for e in items], "boxes": [e["boxes"] for e in items]}
        if ann.keypoints is not None:
            out["keypoints"], out["flip_pairs"] = [e["keypoints"] for e in items], ann.flip_pairs()
        return out
    if kind in ("folder", "csv"):
        import tensorflow as tf

        from pipelines import sources
        from pipelines.decode import decode_image

        files = sources.csv_manifest(rest) if kind == "csv" else sources.image_folder(rest)
        return {"images": [decode_image(tf.io.read_file(p), data["channels"] or 3, size).numpy() for p in files.paths[:count]]}
    from pipelines.splits import load_splits

    splits = load_splits(spec, seed, train_limit=count, image_size=size, channels=data["channels"])
    return {"images": [image for image, _ in splits.train.as_numpy_iterator()]}


def _augmented(samples: dict, policy: list, versions: int, seed: int) -> list[list[dict]]:
    import numpy as np
    import tensorflow as tf

    from pipelines.augment import augment_dataset
    from pipelines.augment_policy import needs_pca

    pca = None
    if needs_pca(policy):
        from pipelines.pca_colour import fit_pca

        pca = fit_pca(np.concatenate([im.reshape(-1, im.shape[-1]) for im in samples["images"]]))
    rows = []
    for i, image in enumerate(samples["images"]):
        element = {"image": np.stack([image] * versions)}
        if "boxes" in samples:
            element["boxes"] = np.stack([samples["boxes"][i].reshape(-1, 4)] * versions)
            element["box_labels"] = np.zeros(element["boxes"].shape[:2], np.int64)
        if "keypoints" in samples:
            element["keypoints"] = np.stack([samples["keypoints"][i].reshape(-1, 2)] * versions)
        ds = augment_dataset(tf.data.Dataset.from_tensor_slices(element), policy, seed + i, pca, samples.get("flip_pairs"))
        rows.append(list(ds.as_numpy_iterator()))
    return rows


def _draw(ax, entry: dict) -> None:
    from matplotlib.patches import Rectangle

    image = entry["image"]
    h, w = image.shape[:2]
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
    for ymin, xmin, ymax, xmax in entry.get("boxes", []):
        ax.add_patch(Rectangle((xmin * w - 0.5, ymin * h - 0.5), (xmax - xmin) * w, (ymax - ymin) * h,
                               fill=False, edgecolor="lime", linewidth=1.2))
    if "keypoints" in entry and len(entry["keypoints"]):
        points = entry["keypoints"]
        shown = entry.get("keypoint_visible", [True] * len(points))
        points = points[[bool(v) for v in shown]]
        ax.scatter(points[:, 0] * w - 0.5, points[:, 1] * h - 0.5, s=8, c="red")
    ax.set_xticks([])
    ax.set_yticks([])


def write_preview(recipe: dict, output: str | Path, rows: int = 4, versions: int = 5) -> Path:
    """Render ``rows`` originals and ``versions`` augmented draws each of the recipe's
    ``data.augment`` policy to ``output`` (PNG). UserError for a bad policy."""
    fig = preview_figure(recipe, rows, versions)  # selects the Agg backend before pyplot is imported here
    import matplotlib.pyplot as plt

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def preview_figure(recipe: dict, rows: int = 4, versions: int = 5):
    """The preview as a matplotlib figure: ``rows`` x ``versions + 1`` axes, the original in column 0."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipelines.augment_policy import validate_policy
    from tasks.core.errors import UserError, clean_message

    data, seed = recipe["data"], int(recipe.get("seed") or 0)
    policy = data.get("augment") or []
    try:
        validate_policy(policy)
        samples = _samples(data, rows, seed)
        augmented = _augmented(samples, policy, versions, seed)
    except (ValueError, KeyError, FileNotFoundError) as err:
        raise UserError(f"augment-preview of {data['dataset']!r}: {clean_message(err)}") from None
    fig, axes = plt.subplots(len(augmented), versions + 1, figsize=(1.6 * (versions + 1), 1.6 * len(augmented)),
                             squeeze=False)
    for r, row in enumerate(augmented):
        original = {k: samples[k][r] for k in ("boxes", "keypoints") if k in samples}
        original["image"] = samples["images"][r]
        for c, entry in enumerate([original, *row]):
            _draw(axes[r, c], entry)
        axes[r, 0].set_ylabel(f"#{r}", fontsize=8)
    axes[0, 0].set_title("original", fontsize=8)
    for c in range(1, versions + 1):
        axes[0, c].set_title(f"augmented {c}", fontsize=8)
    title = "policy: " + (", ".join(str(p) for p in policy) or "none (identity)")
    fig.suptitle(textwrap.fill(title, int(22 * (versions + 1))), fontsize=7)
    fig.tight_layout()
    return fig
