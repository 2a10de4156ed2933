"""Training targets of two-stage detectors: balanced sampling, and the RoIs a Fast R-CNN head learns from.

``sample_balanced``: pick at most ``num * positive_fraction`` positives at
random, fill up with negatives (Faster R-CNN's 256 anchors with up to half
positive; Fast R-CNN's 64 RoIs with up to a quarter foreground).

``ProposalTargets`` (a Keras layer inside the training graph, so it can take
the proposals of the *current* RPN in Faster R-CNN's approximate joint
training, or fixed selective-search proposals in Fast R-CNN): the ground-truth
boxes join the proposals; a proposal whose best IoU with a ground truth is
``>= fg_iou`` (0.5) is foreground and learns that object's class and box
deltas; one below it (and ``>= bg_iou_low``) is background (class index
``num_classes``: the last class, as in ``models.region_proposals``).

Example:
    >>> rois, labels, targets = ProposalTargets(num_classes=10)([proposals, gt_boxes, gt_classes])
    >>> rois.shape, labels.shape, targets.shape      # [N, R, 4], [N, R], [N, R, 4]; label -1 = unused slot
"""

from __future__ import annotations

import keras
import tensorflow as tf

from models.box_coding import encode_deltas
from models.boxes import iou


def best_match(boxes, gt_boxes, gt_valid) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """IoU of every box with every valid ground truth: ``[N, A, 4]`` x ``[N, M, 4]`` -> ``iou [N, A, M]``
    (-1 on padded ground truths), each box's best IoU ``[N, A]`` and its ground-truth index ``[N, A]``."""
    overlap = iou(tf.cast(boxes, tf.float32)[:, :, None, :], tf.cast(gt_boxes, tf.float32)[:, None, :, :])
    overlap = tf.where(gt_valid[:, None, :], overlap, -1.0)
    if overlap.shape[-1] == 0:  # no ground-truth slots at all
        zero = tf.zeros(tf.shape(overlap)[:2])
        return overlap, zero - 1.0, tf.cast(zero, tf.int32)
    return overlap, tf.reduce_max(overlap, axis=-1), tf.argmax(overlap, axis=-1, output_type=tf.int32)


def sample_balanced(positive, negative, num: int, positive_fraction: float, seed=None):
    """Random balanced subset per image: ``[N, A]`` bool masks -> the kept ``(positive, negative)`` masks.

    At most ``int(num * positive_fraction)`` positives; negatives fill the rest of ``num``.
    """
    def pick(mask, count):
        keys = tf.where(mask, tf.random.uniform(tf.shape(mask), seed=seed), -1.0)
        rank = tf.argsort(tf.argsort(keys, axis=-1, direction="DESCENDING"), axis=-1)
        return mask & (rank < count[:, None])

    n_pos = tf.minimum(tf.reduce_sum(tf.cast(positive, tf.int32), -1), int(num * positive_fraction))
    pos = pick(positive, n_pos)
    n_neg = tf.minimum(tf.reduce_sum(tf.cast(negative, tf.int32), -1), num - n_pos)
    return pos, pick(negative, n_neg)


@keras.saving.register_keras_serializable(package="convforge")
class ProposalTargets(keras.layers.Layer):
    """``[proposals [N, P, 4], gt_boxes [N, M, 4], gt_classes [N, M]]`` -> ``rois [N, R, 4]``,
    ``labels [N, R]`` (class, ``num_classes`` = background, -1 = empty slot) and box ``targets [N, R, 4]``.

    Proposals of zero area and ground truths of class -1 are padding. The ground
    truths are added to the proposals (so every object has a foreground RoI
    from the first step). ``R = rois_per_image``; sampled foreground comes
    first. Gradients do not flow into the proposals (approximate joint training).
    """

    def __init__(self, num_classes: int, rois_per_image: int = 32, fg_fraction: float = 0.25, fg_iou: float = 0.5,
                 bg_iou_low: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.rois_per_image, self.fg_fraction = int(num_classes), int(rois_per_image), fg_fraction
        self.fg_iou, self.bg_iou_low, self.seed = fg_iou, bg_iou_low, seed

    def call(self, inputs):
        proposals, gt_boxes, gt_classes = inputs
        gt_boxes = tf.cast(gt_boxes, tf.float32)
        gt_valid = tf.cast(gt_classes, tf.int32) >= 0
        candidates = tf.concat([tf.stop_gradient(tf.cast(proposals, tf.float32)),
                                tf.where(gt_valid[..., None], gt_boxes, 0.0)], axis=1)
        area = (candidates[..., 2] - candidates[..., 0]) * (candidates[..., 3] - candidates[..., 1])
        _, best, which = best_match(candidates, gt_boxes, gt_valid)
        fg = (area > 0) & (best >= self.fg_iou)
        bg = (area > 0) & (best < self.fg_iou) & (best >= self.bg_iou_low)
        fg, bg = sample_balanced(fg, bg, self.rois_per_image, self.fg_fraction, self.seed)
        priority = tf.cast(fg, tf.float32) * 2.0 + tf.cast(bg, tf.float32)
        k = tf.minimum(self.rois_per_image, tf.shape(candidates)[1])
        _, index = tf.math.top_k(priority, k)
        rois = tf.gather(candidates, index, batch_dims=1)
        matched_class = tf.gather(tf.cast(gt_classes, tf.int32), which, batch_dims=1)
        labels = tf.where(fg, matched_class, tf.where(bg, self.num_classes, -1))
        labels = tf.gather(labels, index, batch_dims=1)
        matched = tf.gather(gt_boxes, tf.gather(which, index, batch_dims=1), batch_dims=1)
        targets = tf.where((labels >= 0)[..., None] & (labels < self.num_classes)[..., None],
                           encode_deltas(matched, rois), 0.0)
        pad = self.rois_per_image - k  # fewer candidates than slots: empty slots at the end
        return (tf.pad(rois, [[0, 0], [0, pad], [0, 0]]), tf.pad(labels, [[0, 0], [0, pad]], constant_values=-1),
                tf.pad(targets, [[0, 0], [0, pad], [0, 0]]))

    def compute_output_shape(self, input_shapes):
        n = input_shapes[0][0]
        return (n, self.rois_per_image, 4), (n, self.rois_per_image), (n, self.rois_per_image, 4)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "rois_per_image": self.rois_per_image,
                "fg_fraction": self.fg_fraction, "fg_iou": self.fg_iou, "bg_iou_low": self.bg_iou_low,
                "seed": self.seed}
