"""Anchor box shapes by k-means (YOLOv2, Redmon & Farhadi 2017): distance ``1 - IoU`` of box shapes.

Anchors are normalised ``(w, h)`` shapes; two boxes are close when their
shapes overlap well once aligned at one corner (``models.boxes.iou_wh``), so
big and small boxes weigh alike (Euclidean k-means would favour big boxes).
The region proposal network's anchors are a fixed grid of scales x ratios
instead (``models.rpn.make_anchors``).

Example:
    >>> anchors = kmeans_anchors(train_wh, k=3)           # [3, 2], sorted by area
    >>> mean_best_iou(train_wh, anchors)                   # how well they fit, in [0, 1]
"""

from __future__ import annotations

import numpy as np

from models.boxes import iou_wh


def box_shapes(boxes) -> np.ndarray:
    """Corner boxes ``[N, 4]`` ``(ymin, xmin, ymax, xmax)`` -> their shapes ``[N, 2]`` ``(w, h)``."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    return np.stack([boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]], 1)


def kmeans_anchors(wh: np.ndarray, k: int, seed: int = 0, iterations: int = 100) -> np.ndarray:
    """k-means on box shapes ``[N, 2]`` (w, h) with distance ``1 - IoU``; returns ``[k, 2]`` sorted by area."""
    wh = np.asarray(wh, np.float64)
    if len(wh) < k:
        raise ValueError(f"k-means needs at least k={k} boxes; received {len(wh)}")
    rng = np.random.default_rng(seed)
    centres = wh[rng.choice(len(wh), k, replace=False)]
    assign = np.full(len(wh), -1)
    for _ in range(iterations):
        new = np.argmax(iou_wh(wh, centres), axis=1)  # nearest = highest IoU
        if np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            if np.any(assign == j):
                centres[j] = wh[assign == j].mean(axis=0)
    return centres[np.argsort(centres.prod(axis=1))].astype(np.float32)


def mean_best_iou(wh: np.ndarray, anchors: np.ndarray) -> float:
    """Average over boxes of the IoU with their best anchor (how well anchors fit)."""
    return float(iou_wh(wh, anchors).max(axis=1).mean())
