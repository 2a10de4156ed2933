"""Non-max suppression per class, built on ``tf.image`` NMS ops.

The notes' recipe: discard boxes whose score ``pc <= 0.6``; then, class by
class, keep the highest-scoring box and drop the others that overlap it with
IoU >= 0.5; repeat. TensorFlow already has the loop
(``tf.image.non_max_suppression``) and the per-class, batched form
(``tf.image.combined_non_max_suppression``); this module only adds what they
lack:

* ``class_nms``: a score for every class of every box (``pc * p(class)``, the
  YOLO score), so a box can stand for several classes, each in its own class's
  NMS; ``tf.image.combined_non_max_suppression`` does the per-class loops;
* ``batched_nms``: one class label per box (a detector's argmax class): the
  score goes into its class's column, zeros elsewhere;
* the notes' inclusive overlap rule: the TF kernels suppress when IoU is
  strictly greater than the threshold, so ``iou >= t`` becomes ``iou > t'``
  with ``t'`` the float32 number just below ``t``.

Score threshold: the kernels keep a box when ``score > threshold``, which is the
notes' "discard pc <= 0.6" as it is.

Example:
    >>> out = batched_nms(boxes[None], scores[None], classes[None], num_classes=10)
    >>> out["detection_boxes"].shape     # [1, max_detections, 4]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

SCORE_THRESHOLD = 0.6
IOU_THRESHOLD = 0.5


def inclusive_iou_threshold(iou_threshold: float) -> float:
    """The float32 just below ``iou_threshold``: TF's ``iou > t'`` == the notes' ``iou >= t``."""
    return float(np.nextafter(np.float32(iou_threshold), np.float32(0.0)))


def class_nms(boxes, class_scores, score_threshold: float = SCORE_THRESHOLD, iou_threshold: float = IOU_THRESHOLD,
              max_detections: int = 100) -> dict[str, tf.Tensor]:
    """Per-class NMS for a batch of candidate boxes with a score per class.

    Args:
        boxes: ``[N, K, 4]`` float, ``[ymin, xmin, ymax, xmax]``, or ``[N, K, C, 4]``: one box
            per class (a two-stage head's per-class regression).
        class_scores: ``[N, K, C]`` float, e.g. ``pc * p(class)``; a box takes
            part in class ``c``'s NMS when its score for ``c`` is above ``score_threshold``.
    Returns:
        ``detection_boxes [N, D, 4]``, ``detection_scores [N, D]``,
        ``detection_classes [N, D]`` (float, as TF Serving detectors return) and
        ``num_detections [N]`` (int32); rows past ``num_detections`` are zeros.
        Sorted by score within each image.

    Example:
        >>> out = class_nms(boxes[None], pc[None, :, None] * probs[None], score_threshold=0.05)
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    out = tf.image.combined_non_max_suppression(
        boxes if boxes.shape.rank == 4 else boxes[:, :, None, :],
        tf.convert_to_tensor(class_scores, tf.float32),
        max_output_size_per_class=max_detections,
        max_total_size=max_detections,
        iou_threshold=inclusive_iou_threshold(iou_threshold),
        score_threshold=score_threshold,
        pad_per_class=False,
        clip_boxes=False,
    )
    return {
        "detection_boxes": out.nmsed_boxes,
        "detection_scores": out.nmsed_scores,
        "detection_classes": out.nmsed_classes,
        "num_detections": out.valid_detections,
    }


def batched_nms(boxes, scores, classes, num_classes: int, score_threshold: float = SCORE_THRESHOLD,
                iou_threshold: float = IOU_THRESHOLD, max_detections: int = 100) -> dict[str, tf.Tensor]:
    """Per-class NMS for a batch of candidate boxes, one class label per box.

    Args:
        boxes: ``[N, K, 4]`` float, ``[ymin, xmin, ymax, xmax]``.
        scores: ``[N, K]`` float, e.g. ``pc * p(class)``.
        classes: ``[N, K]`` int class ids in ``[0, num_classes)``.
    Returns:
        The ``class_nms`` dict.
    """
    scores = tf.convert_to_tensor(scores, tf.float32)
    one_hot = tf.one_hot(tf.cast(classes, tf.int32), num_classes, dtype=tf.float32)
    return class_nms(boxes, one_hot * scores[..., None], score_threshold, iou_threshold, max_detections)

