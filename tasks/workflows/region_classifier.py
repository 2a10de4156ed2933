"""The notes' first detectors on any picture: sliding windows (naive and convolutional) and R-CNN.

Both classify image regions with one small CNN (``models.sliding_windows.build_window_classifier``,
K object classes + background):

* **windows**: a square window slides over the image. The naive way crops
  every window and runs the classifier on each; the convolutional way turns
  the same trained classifier into a fully convolutional net
  (``to_fully_convolutional``) and scores every window in one pass. Both give
  the same scores; each window votes for its best class, then per-class NMS.
* **rcnn**: selective search proposes regions; each is warped to the
  classifier's input and classified; per-class NMS.

``train_region_classifier`` trains that classifier on generated scenes (real
catalog objects pasted on real photos, ``pipelines.scenes``) in well under a
minute on 2 cores; ``detect_regions`` runs either method on one RGB image.

Example::

    >>> clf, names = train_region_classifier("windows", scenes=200, epochs=2)
    >>> found = detect_regions("windows", clf, image, len(names))
    >>> found.boxes.shape  # [n, 4] normalised ymin, xmin, ymax, xmax
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from models.boxes import corners_from_midpoint, midpoint_from_corners
from models.region_proposals import label_regions, rcnn_detect, selective_search, warp_regions
from models.sliding_windows import (
    build_window_classifier,
    dense_window_scores,
    naive_window_scores,
    to_fully_convolutional,
    window_detections,
    window_stride,
)

METHODS = ("windows", "rcnn")
WINDOW = 48  # sliding-window side in pixels: generated scenes hold 24-48 px objects in 128 px
RCNN_SIZE = 32  # R-CNN warps every proposal to this square


@dataclass
class Found:
    """One method's detections on one image (normalised boxes) and what it cost."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    seconds: float
    notes: dict = field(default_factory=dict)


def window_training_set(scenes, num_classes: int, rng, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Square windows centred on objects (their class) and one random background window per scene."""
    crops, labels = [], []
    for image, boxes, classes in zip(scenes.images, scenes.boxes, scenes.classes, strict=False):
        h, w = image.shape[:2]
        for box, c in zip(boxes, classes, strict=False):
            cx, cy, bw, bh = midpoint_from_corners(box)
            square = corners_from_midpoint(np.array([cx, cy, max(bw, bh), max(bw, bh)]))  # the box's square
            crops.append(warp_regions(image, square[None], window)[0])
            labels.append(c)
        oy, ox = rng.integers(0, h - window), rng.integers(0, w - window)
        crops.append(image[oy : oy + window, ox : ox + window])
        labels.append(num_classes)
    return np.stack([np.asarray(c) for c in crops]), np.array(labels)


def rcnn_training_set(scenes, num_classes: int, rng, per_image: int = 8,
                      size: int = RCNN_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Warped ground-truth boxes plus up to ``per_image`` object and background proposals per scene.

    Proposals are labelled by ``label_regions`` (IoU >= 0.5 with an object: its
    class; < 0.3: background; in between: left out)."""
    crops, labels = [], []
    for image, boxes, classes in zip(scenes.images, scenes.boxes, scenes.classes, strict=False):
        proposals = selective_search(image)
        lab = label_regions(proposals, boxes, classes, background=num_classes)
        fg, bg = np.nonzero((lab >= 0) & (lab < num_classes))[0], np.nonzero(lab == num_classes)[0]
        pick = np.concatenate([rng.permutation(fg)[:per_image], rng.permutation(bg)[:per_image]])
        crops.append(warp_regions(image, np.concatenate([boxes, proposals[pick]]), size).numpy())
        labels.append(np.concatenate([classes, lab[pick]]))
    crops, labels = np.concatenate(crops), np.concatenate(labels)
    keep = labels >= 0
    return crops[keep], labels[keep]


def train_region_classifier(method: str, objects: str = "fashion_mnist", scenes: int = 400, epochs: int = 8,
                            seed: int = 0, verbose: int = 0) -> tuple[keras.Model, list[str]]:
    """Train the region classifier ``method`` uses on ``scenes`` generated scenes of ``objects``.

    Returns ``(classifier, class_names)``; the classifier's last output is background.
    """
    from pipelines.catalog import load_arrays
    from pipelines.scenes import background_photos, make_scenes

    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; use one of {', '.join(METHODS)}")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    data = load_arrays(objects)
    made = make_scenes(data.x_train, data.y_train, background_photos(), scenes, seed=seed, class_names=data.class_names)
    k = len(data.class_names)
    if method == "windows":
        x, y = window_training_set(made, k, rng)
        clf = build_window_classifier((WINDOW, WINDOW, 3), k + 1, width=32, dense=64)
    else:
        x, y = rcnn_training_set(made, k, rng)
        clf = build_window_classifier((RCNN_SIZE, RCNN_SIZE, 3), k + 1, width=32, dense=128)
    clf.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    clf.fit(x, y, batch_size=64, epochs=epochs, verbose=verbose)
    return clf, list(data.class_names)


def save_classifier(model: keras.Model, class_names: list[str], path: str | Path) -> Path:
    """Write ``path`` (.keras) and its class names beside it (``<path>.classes.json``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    Path(f"{path}.classes.json").write_text(json.dumps(class_names))
    return path


def load_classifier(path: str | Path) -> tuple[keras.Model, list[str]]:
    """A classifier written by ``save_classifier`` (safe mode: no custom code runs)."""
    from models.safe_load import load_keras

    names = json.loads(Path(f"{path}.classes.json").read_text())
    return load_keras(path), names


def detect_regions(method: str, classifier: keras.Model, image: np.ndarray, num_classes: int,
                   score_threshold: float = 0.6, iou_threshold: float = 0.5) -> Found:
    """Run ``method`` with ``classifier`` on one RGB uint8 image ``[H, W, 3]``.

    ``windows`` reports in ``notes`` the naive time, the convolutional time,
    the window count and the largest score difference between the two ways.
    """
    if method == "windows":
        size = classifier.input_shape[1]
        if min(image.shape[:2]) < size:
            raise ValueError(f"image {image.shape[1]}x{image.shape[0]} is smaller than the {size} px window")
        stride = window_stride(classifier)
        t0 = time.perf_counter()
        naive = naive_window_scores(classifier, image, stride)
        t1 = time.perf_counter()
        dense = dense_window_scores(to_fully_convolutional(classifier), image[None]).numpy()[0]
        t2 = time.perf_counter()
        out = window_detections(dense, image.shape[:2], size, stride, score_threshold, iou_threshold)
        notes = {"windows": naive.shape[0] * naive.shape[1], "naive_s": t1 - t0, "convolutional_s": t2 - t1,
                 "max_score_difference": float(np.abs(naive - dense).max())}
        seconds = t2 - t1
    elif method == "rcnn":
        t0 = time.perf_counter()
        proposals = selective_search(image)
        out = rcnn_detect(classifier, image, proposals, num_classes, score_threshold, iou_threshold)
        seconds, notes = time.perf_counter() - t0, {"proposals": len(proposals)}
    else:
        raise ValueError(f"method {method!r} is unknown; use one of {', '.join(METHODS)}")
    n = int(out["num_detections"][0])
    return Found(np.asarray(out["detection_boxes"][0, :n]), np.asarray(out["detection_scores"][0, :n]),
                 np.asarray(out["detection_classes"][0, :n]).astype(int), seconds, notes)

