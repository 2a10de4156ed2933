"""YOLO (Redmon et al. 2016; anchors from YOLOv2, 2017): grid head, anchors, targets, loss, decoding.

The image is cut into an ``S x S`` grid; each cell predicts ``B`` boxes, one
per anchor shape, each as ``(pc, tx, ty, tw, th, class logits...)``:

* the object's *midpoint* decides its cell; the anchor whose shape has the best
  IoU with the object's shape decides its slot (``encode_targets``);
* decoding: ``bx = (col + sigmoid(tx)) / S``, ``by = (row + sigmoid(ty)) / S``
  (offsets inside the cell, in [0, 1]), ``bw = anchor_w * exp(tw)``,
  ``bh = anchor_h * exp(th)`` (may exceed the cell), ``pc = sigmoid(to)``;
* anchor shapes come from k-means on the training boxes' widths and heights
  with distance ``1 - IoU`` (``models.anchors.kmeans_anchors``).

Boxes are normalised ``[ymin, xmin, ymax, xmax]``; anchors are normalised
``(w, h)``. The head's output is raw: ``[N, S, S, B, 5 + C]``.

Example:
    >>> anchors = kmeans_anchors(train_wh, k=3)            # models.anchors
    >>> model = build("yolo", (128, 128, 3), 10, anchors=anchors.tolist())
    >>> y = encode_targets(boxes, classes, anchors, grid_size=8, num_classes=10)
    >>> dets = detect(model(images), anchors, num_classes=10)   # NMS inside
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from models.boxes import corners_from_midpoint, iou_wh, midpoint_from_corners
from models.fused_batch_norm import FusedBatchNormalization
from models.nms import IOU_THRESHOLD, SCORE_THRESHOLD, class_nms
from models.registry import register

DEFAULT_ANCHORS = ((0.15, 0.15), (0.25, 0.3), (0.35, 0.35))


# -- targets -------------------------------------------------------------------
def encode_targets(boxes, classes, anchors, grid_size: int, num_classes: int) -> np.ndarray:
    """Ground truth ``[M, 4]`` boxes + ``[M]`` classes -> target grid ``[S, S, B, 5 + C]``.

    Target channels: ``pc=1``, ``x, y`` offsets of the midpoint in its cell
    (in [0, 1)), ``log(w / anchor_w)``, ``log(h / anchor_h)``, one-hot class.
    When the best anchor of a cell is taken, the object takes its next best
    free anchor; more objects than anchors in one cell are dropped (the
    limitation the notes name).
    """
    anchors = np.asarray(anchors, np.float32)
    s, b = grid_size, len(anchors)
    y = np.zeros((s, s, b, 5 + num_classes), np.float32)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return y
    cx, cy, w, h = midpoint_from_corners(boxes).T
    ranks = np.argsort(-iou_wh(np.stack([w, h], 1), anchors), axis=1)
    for i, cls in enumerate(np.asarray(classes).reshape(-1)):
        row = min(int(cy[i] * s), s - 1)
        col = min(int(cx[i] * s), s - 1)
        free = [a for a in ranks[i] if y[row, col, a, 0] == 0]
        if not free:
            continue
        a = free[0]
        y[row, col, a, :5] = [1.0, cx[i] * s - col, cy[i] * s - row,
                              np.log(w[i] / anchors[a, 0]), np.log(h[i] / anchors[a, 1])]
        y[row, col, a, 5 + int(cls)] = 1.0
    return y


# -- decoding ------------------------------------------------------------------
def decode(grid, anchors, from_logits: bool = True):
    """Grid ``[N, S, S, B, 5 + C]`` -> ``boxes [N, S*S*B, 4]``, ``pc [N, S*S*B]``, ``probs [N, S*S*B, C]``.

    ``from_logits=False`` reads a target grid (offsets and probabilities as they
    are), so ``decode(encode_targets(...), from_logits=False)`` returns the boxes.
    """
    grid = tf.convert_to_tensor(grid, tf.float32)
    anchors = tf.constant(np.asarray(anchors, np.float32))
    s = tf.shape(grid)[1]
    n_cells = tf.cast(s, tf.float32)
    act = tf.sigmoid if from_logits else tf.identity
    pc = act(grid[..., 0])
    off_x, off_y = act(grid[..., 1]), act(grid[..., 2])
    rows, cols = tf.meshgrid(tf.range(s), tf.range(s), indexing="ij")
    cols = tf.cast(cols, tf.float32)[None, :, :, None]
    rows = tf.cast(rows, tf.float32)[None, :, :, None]
    cx = (cols + off_x) / n_cells
    cy = (rows + off_y) / n_cells
    w = anchors[:, 0] * tf.exp(grid[..., 3])
    h = anchors[:, 1] * tf.exp(grid[..., 4])
    boxes = corners_from_midpoint(tf.stack([cx, cy, w, h], axis=-1))
    probs = tf.nn.softmax(grid[..., 5:], axis=-1) if from_logits else grid[..., 5:]
    n = tf.shape(grid)[0]
    return tf.reshape(boxes, [n, -1, 4]), tf.reshape(pc, [n, -1]), tf.reshape(probs, [n, -1, tf.shape(probs)[-1]])


def detect(
    grid,
    anchors,
    num_classes: int,
    score_threshold: float = SCORE_THRESHOLD,
    iou_threshold: float = IOU_THRESHOLD,
    max_detections: int = 100,
    one_class_per_box: bool = False,
) -> dict[str, tf.Tensor]:
    """Decode a raw head output, clip to the image, per-class NMS on the class scores ``pc * p(class)``.

    Every class whose score ``pc * p(class)`` is above ``score_threshold`` enters
    that class's NMS, so a box the net is unsure about (shirt 0.5, T-shirt 0.4)
    stays a candidate of both when ranked down to a low threshold (mAP); at the
    serving threshold 0.6 only the argmax class can pass (``p > 0.6`` is the
    largest of probabilities summing to 1). ``one_class_per_box=True`` keeps
    only the argmax class of each box. Returns the ``class_nms`` dict
    (``detection_boxes`` ... ``num_detections``).
    """
    boxes, pc, probs = decode(grid, anchors, from_logits=True)
    probs.shape.assert_is_compatible_with([None, None, num_classes])
    if one_class_per_box:
        probs = probs * tf.one_hot(tf.argmax(probs, axis=-1), num_classes)
    boxes = tf.clip_by_value(boxes, 0.0, 1.0)
    return class_nms(boxes, pc[..., None] * probs, score_threshold, iou_threshold, max_detections)


# -- loss ----------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="convforge")
class YoloLoss(keras.losses.Loss):
    """The YOLO loss on ``[N, S, S, B, 5 + C]`` grids (sum over the grid, mean over the batch).

    ``coord * (MSE(sigmoid(txy), xy) + MSE(twh, log wh))`` and softmax
    cross-entropy on the slots that hold an object; binary cross-entropy of
    ``pc`` everywhere, down-weighted by ``noobj`` on empty slots.
    """

    def __init__(self, coord: float = 5.0, noobj: float = 0.5, name: str = "yolo_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.coord = coord
        self.noobj = noobj

    def call(self, y_true, y_pred):
        y_pred = tf.cast(y_pred, tf.float32)
        obj = y_true[..., 0]
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=obj, logits=y_pred[..., 0])
        conf = bce * (obj + self.noobj * (1.0 - obj))
        xy = tf.reduce_sum(tf.square(tf.sigmoid(y_pred[..., 1:3]) - y_true[..., 1:3]), -1)
        wh = tf.reduce_sum(tf.square(y_pred[..., 3:5] - y_true[..., 3:5]), -1)
        cls = tf.nn.softmax_cross_entropy_with_logits(labels=y_true[..., 5:], logits=y_pred[..., 5:])
        per_slot = conf + obj * (self.coord * (xy + wh) + cls)
        return tf.reduce_sum(per_slot, axis=[1, 2, 3])

    def get_config(self):
        return {**super().get_config(), "coord": self.coord, "noobj": self.noobj}


# -- model ---------------------------------------------------------------------
def _conv(x, filters: int, kernel: int, name: str):
    x = keras.layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.LeakyReLU(0.1, name=f"{name}_leaky")(x)


PRETRAINED_TRUNKS = {"efficientnet_lite0": "block4c_add"}  # backbone -> its last layer at stride 16


def _pretrained_trunk(input_shape, backbone: str, weights) -> keras.Model:
    """A pretrained backbone cut at stride 16: images -> ``[N, H/16, W/16, D]``."""
    from models.efficientnet_lite import efficientnet_lite0_features

    if backbone not in PRETRAINED_TRUNKS:
        raise ValueError(f"yolo backbone must be None (from scratch) or one of {sorted(PRETRAINED_TRUNKS)}. "
                         f"Received: backbone={backbone!r}")
    net = efficientnet_lite0_features(input_shape, weights, pooling=None)
    return keras.Model(net.inputs[0], net.get_layer(PRETRAINED_TRUNKS[backbone]).output, name=backbone)


@register("yolo")
def build_yolo(input_shape, num_classes: int, anchors=DEFAULT_ANCHORS, width: int = 16, stride: int = 16,
               backbone: str | None = None, weights: str | None = None) -> keras.Model:
    """A small YOLO: a conv trunk down to an ``H/stride`` grid, a neck, a 1x1 head.

    The trunk is either trained from scratch (``backbone=None``: conv/BN/leaky
    blocks with max pooling, ``width`` filters doubling per stage) or a
    pretrained network cut at stride 16 (``backbone="efficientnet_lite0"``,
    ``weights="imagenet"``: its blocks 1-4, ImageNet weights shipped offline;
    the neck then has ``8 * width`` filters).

    Input: uint8 ``[N, H, W, C]`` (H, W multiples of ``stride``), rescaled
    inside. Output: raw ``[N, H/stride, W/stride, B, 5 + num_classes]``
    with ``B = len(anchors)``.

    Example:
        >>> build_yolo((128, 128, 3), 10).output_shape
        (None, 8, 8, 3, 15)
        >>> build_yolo((128, 128, 3), 10, backbone="efficientnet_lite0", weights="imagenet").output_shape
        (None, 8, 8, 3, 15)
    """
    h, w = input_shape[:2]
    if backbone is not None and stride != 16:
        raise ValueError(f"a pretrained yolo backbone has stride 16. Received: stride={stride}")
    if h % stride or w % stride:
        raise ValueError(f"yolo input size must be a multiple of stride={stride}; received {h}x{w}")
    n_anchors = len(anchors)
    inputs = keras.Input(input_shape, dtype="uint8", name="image")
    if backbone is None:
        x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
        filters = width
        for i in range(int(np.log2(stride))):
            x = _conv(x, filters, 3, f"stage{i + 1}")
            x = keras.layers.MaxPooling2D(2, name=f"stage{i + 1}_pool")(x)
            filters *= 2
        x = _conv(x, filters, 3, "neck1")
        x = _conv(x, filters // 2, 1, "neck2")
        x = _conv(x, filters, 3, "neck3")
    else:
        x = _pretrained_trunk(input_shape, backbone, weights)(inputs)
        x = _conv(x, 8 * width, 3, "neck1")
        x = _conv(x, 8 * width, 3, "neck2")
    x = keras.layers.Conv2D(n_anchors * (5 + num_classes), 1, name="head", dtype="float32")(x)
    out = keras.layers.Reshape((h // stride, w // stride, n_anchors, 5 + num_classes), name="grid", dtype="float32")(x)
    return keras.Model(inputs, out, name="yolo")
