"""Write labelled scenes as VOC, COCO or YOLO datasets (the formats the annotation readers load).

* VOC: ``<root>/JPEGImages/<id>.png``, ``<root>/Annotations/<id>.xml`` (pixel
  ``xmin ymin xmax ymax``, 1-based inclusive as in the VOC devkit) and
  ``<root>/ImageSets/Main/<split>.txt``.
* COCO: ``<root>/images/<id>.png`` and ``<root>/annotations.json`` with
  ``bbox = [x, y, width, height]`` in pixels, 1-based category ids and the
  landmarks as COCO keypoints ``[x, y, 2, ...]``.
* YOLO: ``<root>/images/<id>.png``, ``<root>/labels/<id>.txt`` (one line per
  object: ``class cx cy w h``, normalised) and ``<root>/classes.txt``.

Images are PNG (lossless), so the pixels read back are the generated ones.

Example:
    >>> write_voc(scenes, "data/scenes_voc")
    >>> write_coco(scenes, "data/scenes_coco")
    >>> write_yolo(scenes, "data/scenes_yolo")
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape

import cv2
import numpy as np


def _name(i: int) -> str:
    return f"{i:06d}"


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def _pixel_boxes(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """Normalised [ymin, xmin, ymax, xmax] -> integer pixel edges (ymax/xmax exclusive)."""
    return np.round(np.asarray(boxes, np.float64) * [h, w, h, w]).astype(int)


def write_voc(scenes, root: str | Path, split: str = "train") -> Path:
    """Write ``scenes`` in the Pascal VOC layout under ``root``; returns ``root``."""
    root = Path(root)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    ids = []
    for i, image in enumerate(scenes.images):
        h, w = image.shape[:2]
        name = _name(i)
        ids.append(name)
        _write_png(root / "JPEGImages" / f"{name}.png", image)
        objects = []
        for (y0, x0, y1, x1), c in zip(_pixel_boxes(scenes.boxes[i], h, w), scenes.classes[i], strict=False):
            objects.append(
                f"  <object>\n    <name>{escape(scenes.class_names[int(c)])}</name>\n"
                "    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n    <difficult>0</difficult>\n"
                f"    <bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>\n"
                "  </object>\n"
            )
        xml = (
            f"<annotation>\n  <folder>JPEGImages</folder>\n  <filename>{name}.png</filename>\n"
            f"  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>\n"
            f"  <segmented>0</segmented>\n{''.join(objects)}</annotation>\n"
        )
        (root / "Annotations" / f"{name}.xml").write_text(xml)
    sets = root / "ImageSets" / "Main"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def coco_dict(scenes, file_names: list[str]) -> dict:
    """The COCO ``instances`` mapping for ``scenes`` (category ids are class id + 1)."""
    from pipelines.scenes import LANDMARK_NAMES

    images, annotations = [], []
    for i, image in enumerate(scenes.images):
        h, w = image.shape[:2]
        images.append({"id": i + 1, "file_name": file_names[i], "width": w, "height": h})
        boxes = _pixel_boxes(scenes.boxes[i], h, w)
        for (y0, x0, y1, x1), c, marks in zip(boxes, scenes.classes[i], scenes.landmarks[i], strict=False):
            keypoints = []
            for x, y in np.asarray(marks) * [w, h]:
                keypoints += [round(float(x), 2), round(float(y), 2), 2]
            annotations.append({
                "id": len(annotations) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                "bbox": [int(x0), int(y0), int(x1 - x0), int(y1 - y0)], "area": int((x1 - x0) * (y1 - y0)),
                "iscrowd": 0, "keypoints": keypoints, "num_keypoints": len(marks),
            })
    categories = [{"id": k + 1, "name": n, "supercategory": "object", "keypoints": list(LANDMARK_NAMES)}
                  for k, n in enumerate(scenes.class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(scenes, root: str | Path) -> Path:
    """Write ``scenes`` as COCO (``images/`` + ``annotations.json``); returns the JSON path."""
    root = Path(root)
    names = [f"{_name(i)}.png" for i in range(len(scenes.images))]
    for name, image in zip(names, scenes.images, strict=False):
        _write_png(root / "images" / name, image)
    path = root / "annotations.json"
    path.write_text(json.dumps(coco_dict(scenes, names)))
    return path


def write_yolo(scenes, root: str | Path) -> Path:
    """Write ``scenes`` as YOLO txt (``images/``, ``labels/``, ``classes.txt``); returns ``root``."""
    root = Path(root)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(scenes.images):
        h, w = image.shape[:2]
        _write_png(root / "images" / f"{_name(i)}.png", image)
        lines = []
        for (y0, x0, y1, x1), c in zip(_pixel_boxes(scenes.boxes[i], h, w), scenes.classes[i], strict=False):
            cx, cy, bw, bh = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h
            lines.append(f"{int(c)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
        (root / "labels" / f"{_name(i)}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    (root / "classes.txt").write_text("\n".join(scenes.class_names) + "\n")
    return root
