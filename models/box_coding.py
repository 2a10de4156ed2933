"""Box deltas (R-CNN family): a box as center/size offsets from a reference box (anchor or RoI).

For a reference box ``a`` (center ``xa, ya``, size ``wa, ha``) and a box ``b``:

    tx = wx * (xb - xa) / wa      ty = wy * (yb - ya) / ha
    tw = ww * log(wb / wa)        th = wh * log(hb / ha)

``weights = (wy, wx, wh, ww)`` scale the targets to about unit variance (the
usual 10, 10, 5, 5 of Faster R-CNN implementations; (1, 1, 1, 1) gives the
paper's plain deltas). Boxes are ``[ymin, xmin, ymax, xmax]`` (normalised or
pixels); deltas are ``[ty, tx, th, tw]``, in the same order as the boxes.
Both functions broadcast over leading axes and run in a TF graph.

Example:
    >>> deltas = encode_deltas(gt_boxes, anchors)          # [..., 4]
    >>> decode_deltas(deltas, anchors)                     # == gt_boxes (round trip)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.boxes import corners_from_midpoint, midpoint_from_corners

DELTA_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
MAX_LOG_SCALE = float(np.log(1000.0 / 16))  # exp() cap when decoding raw predictions


def _centre_size(boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Corner boxes -> ``(cy, cx, h, w)``, the order of the deltas."""
    cx, cy, w, h = tf.unstack(midpoint_from_corners(boxes), axis=-1)
    return cy, cx, h, w


def encode_deltas(boxes, reference, weights=DELTA_WEIGHTS, eps: float = 1e-6) -> tf.Tensor:
    """Boxes ``[..., 4]`` relative to reference boxes ``[..., 4]`` -> deltas ``[..., 4]`` ``(ty, tx, th, tw)``."""
    b = tf.convert_to_tensor(boxes, tf.float32)
    a = tf.convert_to_tensor(reference, tf.float32)
    by, bx, bh, bw = _centre_size(b)
    ay, ax, ah, aw = _centre_size(a)
    ah, aw = tf.maximum(ah, eps), tf.maximum(aw, eps)
    wy, wx, wh, ww = weights
    return tf.stack([wy * (by - ay) / ah, wx * (bx - ax) / aw,
                     wh * tf.math.log(tf.maximum(bh, eps) / ah), ww * tf.math.log(tf.maximum(bw, eps) / aw)], axis=-1)


def decode_deltas(deltas, reference, weights=DELTA_WEIGHTS) -> tf.Tensor:
    """Deltas ``[..., 4]`` applied to reference boxes ``[..., 4]`` -> boxes ``[..., 4]`` (inverse of encode).

    The size deltas are capped at ``log(1000 / 16)`` so an untrained head cannot overflow ``exp``.
    """
    d = tf.cast(tf.convert_to_tensor(deltas), tf.float32)
    a = tf.convert_to_tensor(reference, tf.float32)
    ay, ax, ah, aw = _centre_size(a)
    wy, wx, wh, ww = weights
    cy = ay + d[..., 0] / wy * ah
    cx = ax + d[..., 1] / wx * aw
    h = ah * tf.exp(tf.minimum(d[..., 2] / wh, MAX_LOG_SCALE))
    w = aw * tf.exp(tf.minimum(d[..., 3] / ww, MAX_LOG_SCALE))
    return corners_from_midpoint(tf.stack([cx, cy, w, h], axis=-1))


def smooth_l1(x, beta: float = 1.0):
    """Elementwise smooth L1, the R-CNN family's box loss: ``0.5 x^2 / beta`` if ``|x| < beta``, else ``|x| - 0.5 beta``."""
    ax = tf.abs(x)
    return tf.where(ax < beta, 0.5 * tf.square(ax) / beta, ax - 0.5 * beta)
