"""Region proposal network (Faster R-CNN, Ren et al. 2015): a convolutional network proposes the regions.

On the trunk's feature map (stride 16), a 3x3 conv then two 1x1 convs predict,
for each of ``A`` anchors at every cell, an objectness logit and four box
deltas (``models.box_coding``). Anchors are *scales x ratios* (the paper's
choice, not YOLO's k-means): at each cell centre, one box of area ``scale^2``
pixels per ``ratio = h / w``, laid out ``[rows, cols, A]`` row-major, the
order of the head's outputs.

Training targets (``assign_anchors``): an anchor is positive when its IoU with
some ground truth is ``>= 0.7`` or it is that ground truth's best anchor (so
every object has one); negative when its best IoU is ``<= 0.3``; ignored
otherwise. ``RpnLoss`` samples a balanced minibatch of them
(``models.roi_sampling.sample_balanced``) and adds binary cross-entropy and
smooth L1 on the positives' deltas. ``Proposals`` decodes every anchor,
clips to the image and keeps the top boxes after NMS (IoU 0.7).

Example:
    >>> anchors = make_anchors((8, 8), (128, 128), scales=(20, 32, 48), ratios=(0.5, 1, 2))  # [576, 4]
    >>> rpn = build_rpn_head(80, num_anchors=9)               # features -> [objectness, deltas]
    >>> rois, num = Proposals(anchors.tolist(), max_proposals=100)(rpn(features))
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from models.box_coding import decode_deltas, encode_deltas, smooth_l1
from models.nms import class_nms
from models.roi_sampling import best_match, sample_balanced


def make_anchors(feature_size, image_size, scales=(20, 32, 48), ratios=(0.5, 1.0, 2.0),
                 stride: int = 16) -> np.ndarray:
    """Normalised anchors ``[rows * cols * A, 4]`` ``[ymin, xmin, ymax, xmax]``, A = len(scales) * len(ratios).

    ``scales`` are square roots of the anchor areas in input pixels; ``ratios``
    are heights over widths; centres at ``((i + 0.5) * stride)`` pixels.
    """
    rows, cols = (int(s) for s in feature_size)
    h, w = (float(s) for s in image_size)
    shapes = np.array([(s * np.sqrt(r), s / np.sqrt(r)) for s in scales for r in ratios], np.float64)  # (h, w)
    cy = (np.arange(rows) + 0.5) * stride
    cx = (np.arange(cols) + 0.5) * stride
    cy, cx = np.meshgrid(cy, cx, indexing="ij")
    centre = np.stack([cy, cx], -1)[:, :, None, :]  # [rows, cols, 1, 2]
    half = shapes[None, None] / 2
    boxes = np.concatenate([centre - half, centre + half], -1) / np.array([h, w, h, w])
    return boxes.reshape(-1, 4).astype(np.float32)


def build_rpn_head(channels: int, num_anchors: int, width: int = 128) -> keras.Model:
    """The RPN head: features ``[N, h, w, channels]`` -> objectness logits ``[N, h*w*A]``, deltas ``[N, h*w*A, 4]``."""
    features = keras.Input((None, None, channels), name="features")
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="rpn_conv")(features)
    obj = keras.layers.Conv2D(num_anchors, 1, name="rpn_objectness_conv", dtype="float32")(x)
    deltas = keras.layers.Conv2D(4 * num_anchors, 1, name="rpn_deltas_conv", dtype="float32",
                                 kernel_initializer=keras.initializers.RandomNormal(stddev=0.001))(x)
    obj = keras.layers.Reshape((-1,), name="rpn_objectness")(obj)
    deltas = keras.layers.Reshape((-1, 4), name="rpn_deltas")(deltas)
    return keras.Model(features, [obj, deltas], name="rpn")


def assign_anchors(anchors, gt_boxes, gt_valid, pos_iou: float = 0.7, neg_iou: float = 0.3):
    """Anchor labels before sampling: ``labels [N, A]`` (1 positive, 0 negative, -1 ignored) and the index
    ``[N, A]`` of each anchor's best ground truth. ``gt_valid [N, M]`` marks real (not padded) ground truths."""
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    n = tf.shape(gt_boxes)[0]
    tiled = tf.tile(anchors[None], [n, 1, 1])
    iou, best, which = best_match(tiled, gt_boxes, gt_valid)
    best_per_gt = tf.reduce_max(iou, axis=1, keepdims=True)  # [N, 1, M]
    is_best = tf.reduce_any((iou == best_per_gt) & (best_per_gt > 0) & gt_valid[:, None, :], axis=-1)
    positive = (best >= pos_iou) | is_best
    negative = (best <= neg_iou) & ~positive
    labels = tf.where(positive, 1, tf.where(negative, 0, -1))
    return labels, which


@keras.saving.register_keras_serializable(package="convforge")
class RpnLoss(keras.layers.Layer):
    """``[objectness [N, A], deltas [N, A, 4], gt_boxes [N, M, 4], gt_classes [N, M]]`` -> loss per image ``[N]``.

    Anchor targets (``assign_anchors``), a balanced sample of ``batch_per_image``
    anchors (at most half positive), binary cross-entropy over the sample plus
    ``box_weight`` x smooth L1 on the positives, both divided by the sample size.
    """

    def __init__(self, anchors, batch_per_image: int = 64, positive_fraction: float = 0.5, pos_iou: float = 0.7,
                 neg_iou: float = 0.3, box_weight: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.anchors = np.asarray(anchors, np.float32).tolist()
        self.batch_per_image, self.positive_fraction = int(batch_per_image), positive_fraction
        self.pos_iou, self.neg_iou, self.box_weight, self.seed = pos_iou, neg_iou, box_weight, seed

    def call(self, inputs):
        obj, deltas, gt_boxes, gt_classes = inputs
        obj, deltas, gt_boxes = tf.cast(obj, tf.float32), tf.cast(deltas, tf.float32), tf.cast(gt_boxes, tf.float32)
        anchors = tf.constant(self.anchors, tf.float32)
        labels, which = assign_anchors(anchors, gt_boxes, tf.cast(gt_classes, tf.int32) >= 0, self.pos_iou,
                                       self.neg_iou)
        pos, neg = sample_balanced(labels == 1, labels == 0, self.batch_per_image, self.positive_fraction, self.seed)
        sampled = tf.cast(pos | neg, tf.float32)
        count = tf.maximum(tf.reduce_sum(sampled, -1), 1.0)
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(pos, tf.float32), logits=obj)
        targets = encode_deltas(tf.gather(gt_boxes, which, batch_dims=1), anchors[None])
        box = tf.reduce_sum(smooth_l1(deltas - targets), -1) * tf.cast(pos, tf.float32)
        return (tf.reduce_sum(bce * sampled, -1) + self.box_weight * tf.reduce_sum(box, -1)) / count

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0],)

    def get_config(self):
        return {**super().get_config(), "anchors": self.anchors, "batch_per_image": self.batch_per_image,
                "positive_fraction": self.positive_fraction, "pos_iou": self.pos_iou, "neg_iou": self.neg_iou,
                "box_weight": self.box_weight, "seed": self.seed}


@keras.saving.register_keras_serializable(package="convforge")
class Proposals(keras.layers.Layer):
    """``[objectness [N, A], deltas [N, A, 4]]`` -> ``rois [N, P, 4]`` (zero rows pad) and ``num_rois [N]``.

    Decode every anchor, clip to the image, drop boxes with a side under
    ``min_size`` (normalised), keep the ``pre_nms`` best by objectness, NMS at
    ``iou_threshold`` (0.7), keep at most ``max_proposals``. No gradient flows
    through the boxes.
    """

    def __init__(self, anchors, max_proposals: int = 100, pre_nms: int = 1000, iou_threshold: float = 0.7,
                 min_size: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.anchors = np.asarray(anchors, np.float32).tolist()
        self.max_proposals, self.pre_nms = int(max_proposals), int(pre_nms)
        self.iou_threshold, self.min_size = iou_threshold, min_size

    def call(self, inputs):
        obj, deltas = (tf.stop_gradient(tf.cast(t, tf.float32)) for t in inputs)
        boxes = tf.clip_by_value(decode_deltas(deltas, tf.constant(self.anchors, tf.float32)[None]), 0.0, 1.0)
        scores = tf.sigmoid(obj)
        big = ((boxes[..., 2] - boxes[..., 0]) >= self.min_size) & ((boxes[..., 3] - boxes[..., 1]) >= self.min_size)
        scores = tf.where(big, scores, 0.0)
        k = min(self.pre_nms, len(self.anchors))
        scores, index = tf.math.top_k(scores, k)
        boxes = tf.gather(boxes, index, batch_dims=1)
        out = class_nms(boxes, scores[..., None], 0.0, self.iou_threshold, self.max_proposals)
        return out["detection_boxes"], out["num_detections"]

    def compute_output_shape(self, input_shapes):
        n = input_shapes[0][0]
        return (n, self.max_proposals, 4), (n,)

    def get_config(self):
        return {**super().get_config(), "anchors": self.anchors, "max_proposals": self.max_proposals,
                "pre_nms": self.pre_nms, "iou_threshold": self.iou_threshold, "min_size": self.min_size}
