"""Boxes: the one home of corner <-> midpoint conversions and of IoU (TF and NumPy).

Conventions, used everywhere in the project:

* *corners*: ``[ymin, xmin, ymax, xmax]`` (normalised to [0, 1] or pixels);
* *midpoint*: ``[bx, by, bw, bh]`` = centre x, centre y, width, height: the
  notes' localisation vector and YOLO's (x first, as ``class cx cy w h`` in a
  YOLO txt label file).

The conversions take a TF tensor (graph or eager: TF ops) or anything NumPy
reads (NumPy ops) and broadcast over leading axes. IoU has one TF version
(``iou``: inside models and graphs) and one NumPy float64 version (``iou_np``:
evaluation, targets, k-means), both element-wise with broadcasting; the
``*_matrix`` forms are the pairwise ``[N, 4] x [M, 4] -> [N, M]`` use of them.
Degenerate boxes (zero or negative width/height) have area 0 and IoU 0 with
everything.

``pipelines`` may not import ``models`` (DESIGN: one-way imports), so two
box computations stay on the data side: the YOLO txt reader and writer
(``pipelines.annotations``, ``pipelines.detection_writers``) convert the file
format's ``cx cy w h`` themselves, and the scene generator
(``pipelines.scenes``) checks the overlap of the objects it places.

Example:
    >>> corners_from_midpoint(np.array([0.5, 0.5, 0.2, 0.4]))
    array([0.3, 0.4, 0.7, 0.6])
    >>> iou_matrix([[0, 0, 2, 2]], [[1, 1, 3, 3], [0, 0, 2, 2]]).numpy()
    array([[0.14285715, 1.        ]], dtype=float32)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _stack(parts, like):
    return tf.stack(parts, axis=-1) if tf.is_tensor(like) else np.stack(parts, axis=-1)


def _array(boxes):
    return boxes if tf.is_tensor(boxes) else np.asarray(boxes)


def corners_from_midpoint(boxes):
    """``[..., 4]`` ``(bx, by, bw, bh)`` -> ``[..., 4]`` ``(ymin, xmin, ymax, xmax)`` (TF in, TF out; else NumPy)."""
    b = _array(boxes)
    bx, by, bw, bh = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([by - bh / 2, bx - bw / 2, by + bh / 2, bx + bw / 2], b)


def midpoint_from_corners(boxes):
    """``[..., 4]`` ``(ymin, xmin, ymax, xmax)`` -> ``[..., 4]`` ``(bx, by, bw, bh)`` (TF in, TF out; else NumPy)."""
    b = _array(boxes)
    y0, x0, y1, x1 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], b)


def corners_at_origin(wh):
    """Box *shapes* ``[..., 2]`` ``(w, h)`` -> corner boxes ``[..., 4]`` anchored at (0, 0)."""
    s = _array(wh)
    zero = s[..., 0] * 0
    return _stack([zero, zero, s[..., 1], s[..., 0]], s)


# -- IoU -----------------------------------------------------------------------------------------------
def iou(boxes_a, boxes_b) -> tf.Tensor:
    """TF IoU of corner boxes, element-wise with broadcasting: ``[..., 4]`` x ``[..., 4]`` -> ``[...]``.

    The dtype is ``boxes_a``'s (float32 for lists).
    """
    a = tf.convert_to_tensor(boxes_a, tf.float32) if not tf.is_tensor(boxes_a) else boxes_a
    b = tf.cast(tf.convert_to_tensor(boxes_b), a.dtype)
    inter_h = tf.maximum(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]), 0.0)
    inter_w = tf.maximum(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = inter_h * inter_w
    area_a = tf.maximum(a[..., 2] - a[..., 0], 0.0) * tf.maximum(a[..., 3] - a[..., 1], 0.0)
    area_b = tf.maximum(b[..., 2] - b[..., 0], 0.0) * tf.maximum(b[..., 3] - b[..., 1], 0.0)
    return tf.math.divide_no_nan(inter, area_a + area_b - inter)


def iou_matrix(boxes_a, boxes_b) -> tf.Tensor:
    """Pairwise TF IoU (float32): ``[N, 4]`` x ``[M, 4]`` -> ``[N, M]``."""
    a = tf.convert_to_tensor(boxes_a, tf.float32)
    b = tf.convert_to_tensor(boxes_b, tf.float32)
    return iou(a[:, None, :], b[None, :, :])


def iou_np(boxes_a, boxes_b) -> np.ndarray:
    """NumPy float64 IoU of corner boxes, element-wise with broadcasting: ``[..., 4]`` x ``[..., 4]`` -> ``[...]``."""
    a = np.asarray(boxes_a, np.float64)
    b = np.asarray(boxes_b, np.float64)
    inter_h = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0)
    inter_w = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = inter_h * inter_w
    area_a = np.maximum(a[..., 2] - a[..., 0], 0.0) * np.maximum(a[..., 3] - a[..., 1], 0.0)
    area_b = np.maximum(b[..., 2] - b[..., 0], 0.0) * np.maximum(b[..., 3] - b[..., 1], 0.0)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def iou_matrix_np(boxes_a, boxes_b) -> np.ndarray:
    """Pairwise NumPy float64 IoU: ``[N, 4]`` x ``[M, 4]`` -> ``[N, M]`` (any array-like, reshaped to rows of 4)."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    return iou_np(a[:, None, :], b[None, :, :])


def iou_wh(wh_a, wh_b) -> np.ndarray:
    """IoU of box *shapes* aligned at one corner: ``[N, 2]`` x ``[K, 2]`` -> ``[N, K]`` (float64).

    The distance k-means uses for anchors (YOLOv2): only widths and heights
    matter, not where the boxes sit.
    """
    return iou_matrix_np(corners_at_origin(np.asarray(wh_a, np.float64)), corners_at_origin(np.asarray(wh_b, np.float64)))
