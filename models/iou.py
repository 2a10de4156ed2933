"""Intersection over union (IoU), vectorised, for boxes ``[ymin, xmin, ymax, xmax]``.

IoU = area(A ∩ B) / area(A ∪ B): the detection notes' yardstick (a prediction
counts as correct when IoU >= 0.5). Boxes use the project's convention,
``[ymin, xmin, ymax, xmax]`` (normalised to [0, 1] or in pixels, both work:
IoU does not change when both axes are scaled).

Example:
    >>> iou_matrix([[0, 0, 2, 2]], [[1, 1, 3, 3], [0, 0, 2, 2]]).numpy()
    array([[0.14285715, 1.        ]], dtype=float32)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def iou_matrix(boxes_a, boxes_b) -> tf.Tensor:
    """Pairwise IoU: ``[N, 4]`` x ``[M, 4]`` -> ``[N, M]`` (float32).

    Degenerate boxes (zero area) have IoU 0 with everything.
    """
    a = tf.convert_to_tensor(boxes_a, tf.float32)
    b = tf.convert_to_tensor(boxes_b, tf.float32)
    ay0, ax0, ay1, ax1 = tf.unstack(a[:, None, :], axis=-1)
    by0, bx0, by1, bx1 = tf.unstack(b[None, :, :], axis=-1)
    inter_h = tf.maximum(tf.minimum(ay1, by1) - tf.maximum(ay0, by0), 0.0)
    inter_w = tf.maximum(tf.minimum(ax1, bx1) - tf.maximum(ax0, bx0), 0.0)
    inter = inter_h * inter_w
    area_a = tf.maximum(ay1 - ay0, 0.0) * tf.maximum(ax1 - ax0, 0.0)
    area_b = tf.maximum(by1 - by0, 0.0) * tf.maximum(bx1 - bx0, 0.0)
    return tf.math.divide_no_nan(inter, area_a + area_b - inter)


def iou_pairs(boxes_a, boxes_b) -> tf.Tensor:
    """Element-wise IoU of matching boxes: ``[..., 4]`` x ``[..., 4]`` -> ``[...]``."""
    a = tf.convert_to_tensor(boxes_a)
    b = tf.cast(tf.convert_to_tensor(boxes_b), a.dtype)
    inter_h = tf.maximum(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]), 0.0)
    inter_w = tf.maximum(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = inter_h * inter_w
    area_a = tf.maximum(a[..., 2] - a[..., 0], 0.0) * tf.maximum(a[..., 3] - a[..., 1], 0.0)
    area_b = tf.maximum(b[..., 2] - b[..., 0], 0.0) * tf.maximum(b[..., 3] - b[..., 1], 0.0)
    return tf.math.divide_no_nan(inter, area_a + area_b - inter)


def iou_wh(wh_a: np.ndarray, wh_b: np.ndarray) -> np.ndarray:
    """IoU of box *shapes* aligned at one corner: ``[N, 2]`` x ``[K, 2]`` -> ``[N, K]``.

    The distance k-means uses for anchors (YOLOv2): only widths and heights
    matter, not where the boxes sit.
    """
    a = np.asarray(wh_a, np.float64)[:, None, :]
    b = np.asarray(wh_b, np.float64)[None, :, :]
    inter = np.minimum(a[..., 0], b[..., 0]) * np.minimum(a[..., 1], b[..., 1])
    union = a[..., 0] * a[..., 1] + b[..., 0] * b[..., 1] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
