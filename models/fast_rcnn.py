"""Fast R-CNN (Girshick 2015): one trunk pass per image, RoI pooling, a classification + box-regression head.

"Fast R-CNN uses the convolutional implementation of sliding windows": the
trunk (the ImageNet EfficientNet-Lite0 cut at stride 16 that YOLO uses, or a
small trunk from scratch) runs once on the whole image; each proposal
(selective search, ``models.region_proposals``) is RoI-pooled from that shared
map (``models.roi_pooling``) and a head of two fully connected layers gives
``K + 1`` class logits (last = background) and per-class box deltas
``[K, 4]`` (``models.box_coding``).

Training loss (``FastRcnnLoss``), the paper's multi-task loss: softmax
cross-entropy over the sampled RoIs plus smooth L1 between the deltas of the
RoI's true class and its targets, on foreground RoIs only.

Detection (``detect_regions``): softmax scores of the object classes, each
class's box decoded from its own deltas, then per-class NMS as the notes say
(discard scores <= 0.6, suppress IoU >= 0.5).

Example:
    >>> model = build("fast_rcnn", (128, 128, 3), 10, backbone="efficientnet_lite0", weights="imagenet")
    >>> logits, deltas = model([images_uint8, proposals])     # [N, R, 11], [N, R, 10, 4]
    >>> dets = detect_regions(logits, deltas, proposals, num_classes=10)
"""

from __future__ import annotations

import keras
import tensorflow as tf

from models.box_coding import decode_deltas, smooth_l1
from models.nms import IOU_THRESHOLD, SCORE_THRESHOLD, class_nms
from models.registry import register
from models.roi_pooling import RoiPooling

STRIDE = 16


def build_trunk(input_shape, backbone: str | None = "efficientnet_lite0", weights=None, width: int = 16) -> keras.Model:
    """Images uint8 ``[N, H, W, 3]`` -> stride-16 features: a pretrained backbone cut at stride 16
    (as YOLO's) or, with ``backbone=None``, four conv/BN/ReLU + max-pool stages of ``width`` doubling filters."""
    from models.yolo import PRETRAINED_TRUNKS

    h, w = input_shape[:2]
    if h % STRIDE or w % STRIDE:
        raise ValueError(f"two-stage input size must be a multiple of {STRIDE}; received {h}x{w}")
    inputs = keras.Input(input_shape, dtype="uint8", name="image")
    if backbone is None:
        x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
        for i in range(4):
            x = keras.layers.Conv2D(width * 2**i, 3, padding="same", use_bias=False, name=f"stage{i + 1}_conv")(x)
            x = keras.layers.BatchNormalization(name=f"stage{i + 1}_bn")(x)
            x = keras.layers.ReLU(name=f"stage{i + 1}_relu")(x)
            x = keras.layers.MaxPooling2D(2, name=f"stage{i + 1}_pool")(x)
        return keras.Model(inputs, x, name="trunk")
    if backbone not in PRETRAINED_TRUNKS:
        raise ValueError(f"backbone must be None (from scratch) or one of {sorted(PRETRAINED_TRUNKS)}. "
                         f"Received: backbone={backbone!r}")
    from models.efficientnet_lite import efficientnet_lite0_features

    net = efficientnet_lite0_features(input_shape, weights, pooling=None)
    cut = keras.Model(net.inputs[0], net.get_layer(PRETRAINED_TRUNKS[backbone]).output, name=backbone)
    return keras.Model(inputs, cut(inputs), name="trunk")


def build_head(pool_size: int, channels: int, num_classes: int, fc: int = 256) -> keras.Model:
    """RoI features ``[N, R, g, g, C]`` -> class logits ``[N, R, K + 1]`` and box deltas ``[N, R, K, 4]``."""
    pooled = keras.Input((None, pool_size, pool_size, channels), name="pooled")
    x = keras.layers.Reshape((-1, pool_size * pool_size * channels), name="flatten_rois")(pooled)
    x = keras.layers.Dense(fc, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(fc, activation="relu", name="fc2")(x)
    logits = keras.layers.Dense(num_classes + 1, name="class_logits", dtype="float32")(x)
    deltas = keras.layers.Dense(4 * num_classes, name="box_deltas_flat", dtype="float32",
                                kernel_initializer=keras.initializers.RandomNormal(stddev=0.001))(x)
    deltas = keras.layers.Reshape((-1, num_classes, 4), name="box_deltas", dtype="float32")(deltas)
    return keras.Model(pooled, [logits, deltas], name="head")


@register("fast_rcnn")
def build_fast_rcnn(input_shape, num_classes: int, backbone: str | None = "efficientnet_lite0", weights=None,
                    width: int = 16, pool_size: int = 7, sampling: int = 2, fc: int = 256) -> keras.Model:
    """Fast R-CNN: ``[image uint8 [N, H, W, 3], rois [N, R, 4]]`` -> ``[logits [N, R, K+1], deltas [N, R, K, 4]]``.

    ``rois`` are normalised ``[ymin, xmin, ymax, xmax]`` proposals (zero rows
    are padding). Sub-models ``trunk`` and ``head`` and the ``roi_pool`` layer
    are shared with the training graph (``models.two_stage_training``).

    Example:
        >>> [o.shape for o in build_fast_rcnn((128, 128, 3), 10, backbone=None).outputs]
        [(None, None, 11), (None, None, 10, 4)]
    """
    trunk = build_trunk(input_shape, backbone, weights, width)
    image = keras.Input(input_shape, dtype="uint8", name="image")
    rois = keras.Input((None, 4), name="rois")
    features = trunk(image)
    pooled = RoiPooling(pool_size, sampling, name="roi_pool")([features, rois])
    head = build_head(pool_size, features.shape[-1], num_classes, fc)
    return keras.Model([image, rois], head(pooled), name="fast_rcnn")


def detect_regions(logits, deltas, rois, num_classes: int, score_threshold: float = SCORE_THRESHOLD,
                   iou_threshold: float = IOU_THRESHOLD, max_detections: int = 100) -> dict[str, tf.Tensor]:
    """Head outputs -> the ``class_nms`` dict: every object class of every RoI (softmax score, its own
    decoded and clipped box) enters that class's NMS. Zero-area RoIs (padding) score 0."""
    rois = tf.cast(rois, tf.float32)
    probs = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)[..., :num_classes]
    area = (rois[..., 2] - rois[..., 0]) * (rois[..., 3] - rois[..., 1])
    probs = probs * tf.cast(area > 0, tf.float32)[..., None]
    boxes = tf.clip_by_value(decode_deltas(deltas, rois[:, :, None, :]), 0.0, 1.0)
    return class_nms(boxes, probs, score_threshold, iou_threshold, max_detections)


@keras.saving.register_keras_serializable(package="convforge")
class FastRcnnLoss(keras.layers.Layer):
    """``[logits [N, R, K+1], deltas [N, R, K, 4], labels [N, R], targets [N, R, 4]]`` -> loss per image ``[N]``.

    Softmax cross-entropy averaged over the labelled RoIs (label -1 = empty
    slot) plus ``box_weight`` x smooth L1 of the true class's deltas on the
    foreground RoIs (label < K), divided by the same count.
    """

    def __init__(self, num_classes: int, box_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.box_weight = int(num_classes), box_weight

    def call(self, inputs):
        logits, deltas, labels, targets = inputs
        logits, deltas = tf.cast(logits, tf.float32), tf.cast(deltas, tf.float32)
        labels = tf.cast(labels, tf.int32)
        used = tf.cast(labels >= 0, tf.float32)
        count = tf.maximum(tf.reduce_sum(used, -1), 1.0)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0), logits=logits)
        fg = (labels >= 0) & (labels < self.num_classes)
        own = tf.gather(deltas, tf.clip_by_value(labels, 0, self.num_classes - 1), batch_dims=2)  # [N, R, 4]
        box = tf.reduce_sum(smooth_l1(own - tf.cast(targets, tf.float32)), -1) * tf.cast(fg, tf.float32)
        return (tf.reduce_sum(ce * used, -1) + self.box_weight * tf.reduce_sum(box, -1)) / count

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0],)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "box_weight": self.box_weight}
