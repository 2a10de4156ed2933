"""Detection and landmark annotations: Pascal VOC XML, COCO JSON (with keypoints), YOLO txt.

Every reader returns an ``Annotated`` in ONE internal convention:

* ``boxes``: float32 ``[N, 4]`` per image, normalised ``[ymin, xmin, ymax, xmax]``
  in ``[0, 1]`` over pixel edges (the ``tf.image`` order): a box covering pixel
  columns ``a .. b`` (0-based, inclusive) has ``xmin = a / W``, ``xmax = (b + 1) / W``.
  VOC's 1-based inclusive ``xmin`` becomes ``(xmin - 1) / W``; COCO's
  ``[x, y, w, h]`` becomes ``[y / H, x / W, (y + h) / H, (x + w) / W]``; YOLO's
  ``cx cy w h`` is already normalised.
* ``labels``: int64 ``[N]`` indices into ``class_names``.
* ``keypoints`` (COCO keypoints): float32 ``[N, K, 2]`` normalised
  ``(x, y)`` with ``visible`` bool ``[N, K]``; ``keypoint_names`` name the ``K``
  landmarks and ``flip_pairs()`` pairs their symmetric labels for mirroring.

Bad input never stops a run: unreadable, truncated or zero-byte images, files
whose paths escape the dataset root, malformed XML/JSON entries and bad
label lines are left out and counted in ``skipped`` (a ``Counter`` by reason;
tasks put ``dict(skipped)`` into ``Inputs.info["skipped"]`` and the trainer
logs each as the MLflow metric ``skipped_<reason>``).

Example:
    >>> ann = read_yolo("data/scenes_yolo")
    >>> ds = detection_dataset(ann, channels=3)       # dicts: image, boxes, box_labels
    >>> ann.skipped                                      # Counter({'bad_label_line': 2, 'truncated': 1})
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipelines.decode import IMAGE_SUFFIXES, check_image_file, decode_image
from pipelines.flip_pairs import FlipPairs
from pipelines.sources import inside_root


@dataclass
class Annotated:
    """Images with boxes (and optionally keypoints) in the internal convention above."""

    paths: list[str] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    keypoints: list[np.ndarray] | None = None
    visible: list[np.ndarray] | None = None
    keypoint_names: list[str] | None = None
    skipped: Counter = field(default_factory=Counter)

    def flip_pairs(self, sides: str = "image") -> FlipPairs | None:
        """The keypoints' symmetric labels by name (``pipelines.flip_pairs``; ``sides="subject"``
        for names that are the subject's own sides, as COCO persons'); None without keypoints."""
        if self.keypoints is None:
            return None
        names = self.keypoint_names or [str(i) for i in range(self.keypoints[0].shape[1])]
        return FlipPairs.from_names(names, sides)

    def add(self, path: Path, boxes, labels, keypoints=None, visible=None) -> None:
        problem = check_image_file(path)
        if problem:
            self.skipped[problem] += 1
            return
        self.paths.append(str(path))
        self.boxes.append(np.asarray(boxes, np.float32).reshape(-1, 4))
        self.labels.append(np.asarray(labels, np.int64).reshape(-1))
        if keypoints is not None:
            self.keypoints = (self.keypoints or []) + [np.asarray(keypoints, np.float32)]
            self.visible = (self.visible or []) + [np.asarray(visible, bool)]


def _valid(box, skipped: Counter) -> bool:
    ymin, xmin, ymax, xmax = box
    ok = all(np.isfinite(box)) and -1e-6 <= ymin < ymax <= 1 + 1e-6 and -1e-6 <= xmin < xmax <= 1 + 1e-6
    if not ok:
        skipped["bad_box"] += 1
    return ok


def _resolve(root: Path, name: str, skipped: Counter) -> Path | None:
    try:
        return inside_root(root, name)
    except ValueError:
        skipped["escapes_root"] += 1
        return None


def read_voc(root: str | Path, split: str | None = None, class_names: list[str] | None = None) -> Annotated:
    """Pascal VOC: ``root/Annotations/*.xml`` and ``root/JPEGImages/<filename>``;
    ``split`` reads the ids in ``root/ImageSets/Main/<split>.txt``. Classes are
    ``class_names`` or the sorted names found."""
    root = Path(root)
    out, parsed = Annotated(), []
    if split:
        ids = inside_root(root, Path("ImageSets") / "Main" / f"{split}.txt").read_text().split()
        files = [_resolve(root / "Annotations", f"{i}.xml", out.skipped) for i in ids]  # ids escaping: counted
    else:
        files = sorted((root / "Annotations").glob("*.xml"))
    for xml in filter(None, files):
        try:
            tree = ET.parse(xml).getroot()
            name = tree.findtext("filename", "").strip()
            w, h = int(tree.findtext("size/width")), int(tree.findtext("size/height"))
            if not name or w <= 0 or h <= 0:
                raise ValueError
        except (ET.ParseError, OSError, TypeError, ValueError):
            out.skipped["bad_annotation"] += 1
            continue
        objects = []
        for obj in tree.iter("object"):
            try:
                b = [float(obj.findtext(f"bndbox/{k}")) for k in ("ymin", "xmin", "ymax", "xmax")]
                box = [(b[0] - 1) / h, (b[1] - 1) / w, b[2] / h, b[3] / w]
                label = obj.findtext("name", "").strip()
            except (TypeError, ValueError):
                out.skipped["bad_box"] += 1
                continue
            if label and _valid(box, out.skipped):
                objects.append((box, label))
            elif not label:
                out.skipped["bad_box"] += 1
        path = _resolve(root / "JPEGImages", name, out.skipped)
        if path is not None:
            parsed.append((path, objects))
    out.class_names = class_names or sorted({label for _, objs in parsed for _, label in objs})
    index = {n: i for i, n in enumerate(out.class_names)}
    for path, objects in parsed:
        known = [(b, index[c]) for b, c in objects if c in index]
        out.skipped["unknown_class"] += len(objects) - len(known)
        out.add(path, [b for b, _ in known], [c for _, c in known])
    out.skipped = +out.skipped
    return out


def read_coco(json_path: str | Path, images_dir: str | Path | None = None) -> Annotated:
    """COCO ``instances`` JSON; images under ``images_dir`` (default: ``images/`` beside the
    JSON). Crowd regions are left out (counted as ``crowd``); keypoints are read when present."""
    json_path = Path(json_path)
    images_dir = Path(images_dir) if images_dir else json_path.parent / "images"
    try:
        raw = json.loads(json_path.read_text())
        categories = sorted(raw["categories"], key=lambda c: c["id"])
        images = {im["id"]: im for im in raw["images"]}
        annotations = raw.get("annotations", [])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"COCO file {json_path} cannot be read: {err}") from None
    index = {c["id"]: i for i, c in enumerate(categories)}
    out = Annotated(class_names=[str(c["name"]) for c in categories])
    k = max((len(a["keypoints"]) // 3 for a in annotations if isinstance(a, dict) and isinstance(a.get("keypoints"), list)),
            default=0)
    named = [c["keypoints"] for c in categories if isinstance(c.get("keypoints"), list) and len(c["keypoints"]) == k]
    out.keypoint_names = [str(n) for n in named[0]] if k and named else None
    per_image: dict = {i: [] for i in images}
    for a in annotations:
        try:
            im = images[a["image_id"]]
            x, y, bw, bh = (float(v) for v in a["bbox"])
            w, h = float(im["width"]), float(im["height"])
            box = [y / h, x / w, (y + bh) / h, (x + bw) / w]
            label = index[a["category_id"]]
            marks = np.asarray(a.get("keypoints") or [0.0] * 3 * k, np.float32).reshape(k, 3)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            out.skipped["bad_box"] += 1
            continue
        if a.get("iscrowd"):
            out.skipped["crowd"] += 1
        elif _valid(box, out.skipped):
            per_image[a["image_id"]].append((box, label, marks / [w, h, 1.0]))
    for image_id, objects in per_image.items():
        path = _resolve(images_dir, str(images[image_id].get("file_name", "")), out.skipped)
        if path is None:
            continue
        boxes, labels = [o[0] for o in objects], [o[1] for o in objects]
        if k:
            marks = np.array([o[2] for o in objects], np.float32).reshape(-1, k, 3)
            out.add(path, boxes, labels, marks[..., :2], marks[..., 2] > 0)
        else:
            out.add(path, boxes, labels)
    out.skipped = +out.skipped
    return out


def read_yolo(root: str | Path, class_names: list[str] | None = None) -> Annotated:
    """YOLO txt: ``root/images/<name>.<ext>`` with ``root/labels/<name>.txt`` lines
    ``class cx cy w h`` (normalised); classes from ``class_names`` or ``root/classes.txt``.
    An image without a label file has no objects (a background image)."""
    root = Path(root)
    if class_names is None and (root / "classes.txt").is_file():
        class_names = [n.strip() for n in (root / "classes.txt").read_text().splitlines() if n.strip()]
    out = Annotated(class_names=list(class_names or []))
    for image in sorted((root / "images").rglob("*")):
        if image.is_dir() or image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        path = _resolve(root / "images", str(image.relative_to(root / "images")), out.skipped)
        if path is None:
            continue
        label_file = (root / "labels" / image.relative_to(root / "images")).with_suffix(".txt")
        boxes, labels = [], []
        lines = label_file.read_text(errors="replace").splitlines() if label_file.is_file() else []
        for line in lines:
            parts = line.split()
            if not parts:
                continue
            try:
                if len(parts) != 5:
                    raise ValueError
                c, (cx, cy, bw, bh) = int(parts[0]), (float(v) for v in parts[1:])
                if c < 0 or (out.class_names and c >= len(out.class_names)):
                    raise ValueError
            except ValueError:
                out.skipped["bad_label_line"] += 1
                continue
            box = [cy - bh / 2, cx - bw / 2, cy + bh / 2, cx + bw / 2]
            if _valid(box, out.skipped):
                boxes.append(box)
                labels.append(c)
        out.add(path, boxes, labels)
    if not out.class_names:
        out.class_names = [str(i) for i in range(1 + max((int(lab.max()) for lab in out.labels if len(lab)), default=-1))]
    out.skipped = +out.skipped
    return out


def _padded(arrays: list[np.ndarray], shape: tuple, dtype) -> tuple[np.ndarray, np.ndarray]:
    counts = np.array([len(a) for a in arrays], np.int32)
    out = np.zeros((len(arrays), max(1, counts.max(initial=0)), *shape), dtype)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return out, counts


def detection_dataset(ann: Annotated, channels: int = 3, image_size: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Unbatched dicts ``image`` (uint8 ``[H, W, channels]``), ``boxes`` ``[N, 4]``,
    ``box_labels`` ``[N]`` and, with keypoints, ``keypoints`` ``[N*K, 2]`` and
    ``keypoint_visible`` ``[N*K]``; images decoded in parallel (ready for ``augment_dataset``).
    Images that still fail to decode are dropped rather than stopping the epoch."""
    if not ann.paths:
        raise ValueError("no usable images in this annotation set (see its skipped counts)")
    boxes, counts = _padded(ann.boxes, (4,), np.float32)
    labels, _ = _padded(ann.labels, (), np.int64)
    tensors = {"path": np.array(ann.paths), "boxes": boxes, "box_labels": labels, "count": counts}
    if ann.keypoints is not None:
        k = ann.keypoints[0].shape[1]
        tensors["keypoints"], _ = _padded([p.reshape(-1, 2) for p in ann.keypoints], (2,), np.float32)
        tensors["keypoint_visible"], _ = _padded([v.reshape(-1) for v in ann.visible], (), bool)
        tensors["kcount"] = counts * k

    def load(e):
        out = {"image": decode_image(tf.io.read_file(e["path"]), channels, image_size)}
        out["image"].set_shape([*(image_size or (None, None)), channels])
        out["boxes"], out["box_labels"] = e["boxes"][: e["count"]], e["box_labels"][: e["count"]]
        if "kcount" in e:
            out["keypoints"], out["keypoint_visible"] = e["keypoints"][: e["kcount"]], e["keypoint_visible"][: e["kcount"]]
        return out

    ds = tf.data.Dataset.from_tensor_slices(tensors).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.ignore_errors(log_warning=True)
