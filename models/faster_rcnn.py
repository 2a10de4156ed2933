"""Faster R-CNN (Ren et al. 2015): a region proposal network and the Fast R-CNN head on one feature map.

"Faster R-CNN uses a convolutional network to propose regions": the trunk
(ImageNet EfficientNet-Lite0 cut at stride 16, as YOLO's, or a small trunk from
scratch) runs once; the RPN (``models.rpn``) scores ``scales x ratios``
anchors at every cell of that map; its decoded, NMS-ed proposals are
RoI-pooled from the same map and classified by the Fast R-CNN head
(``models.fast_rcnn``). Everything from pixels to the RoIs is one graph, so
the export needs nothing but the image.

Example:
    >>> model = build("faster_rcnn", (128, 128, 3), 10, backbone=None)
    >>> logits, deltas, rois, num_rois = model(images_uint8)
    >>> dets = detect_regions(logits, deltas, rois, num_classes=10)
"""

from __future__ import annotations

import keras

from models.fast_rcnn import STRIDE, build_head, build_trunk
from models.registry import register
from models.roi_pooling import RoiPooling
from models.rpn import Proposals, build_rpn_head, make_anchors

ANCHOR_SCALES = (20, 32, 48)  # square roots of anchor areas, pixels of a 128 px scene (objects are 24-48 px)
ANCHOR_RATIOS = (0.5, 1.0, 2.0)  # height / width


def faster_rcnn_anchors(input_shape, scales=ANCHOR_SCALES, ratios=ANCHOR_RATIOS):
    """The model's anchors ``[H/16 * W/16 * A, 4]`` (normalised), in the RPN's output order."""
    h, w = input_shape[:2]
    return make_anchors((h // STRIDE, w // STRIDE), (h, w), scales, ratios, STRIDE)


@register("faster_rcnn")
def build_faster_rcnn(input_shape, num_classes: int, backbone: str | None = "efficientnet_lite0", weights=None,
                      width: int = 16, pool_size: int = 7, sampling: int = 2, fc: int = 256, rpn_width: int = 128,
                      anchor_scales=ANCHOR_SCALES, anchor_ratios=ANCHOR_RATIOS, max_proposals: int = 100,
                      rpn_iou: float = 0.7) -> keras.Model:
    """Faster R-CNN: image uint8 ``[N, H, W, 3]`` -> ``[logits [N, P, K+1], deltas [N, P, K, 4], rois [N, P, 4],
    num_rois [N]]`` with ``P = max_proposals`` (zero rows beyond ``num_rois`` pad).

    Sub-models ``trunk``, ``rpn``, ``head`` and the ``roi_pool`` layer are shared
    with the training graph (``models.two_stage_training``).

    Example:
        >>> [o.shape for o in build_faster_rcnn((128, 128, 3), 10, backbone=None).outputs]
        [(None, 100, 11), (None, 100, 10, 4), (None, 100, 4), (None,)]
    """
    anchors = faster_rcnn_anchors(input_shape, anchor_scales, anchor_ratios)
    trunk = build_trunk(input_shape, backbone, weights, width)
    image = keras.Input(input_shape, dtype="uint8", name="image")
    features = trunk(image)
    rpn = build_rpn_head(features.shape[-1], len(anchor_scales) * len(anchor_ratios), rpn_width)
    obj, deltas = rpn(features)
    rois, num = Proposals(anchors, max_proposals, iou_threshold=rpn_iou, name="proposals")([obj, deltas])
    pooled = RoiPooling(pool_size, sampling, name="roi_pool")([features, rois])
    logits, box_deltas = build_head(pool_size, features.shape[-1], num_classes, fc)(pooled)
    return keras.Model(image, [logits, box_deltas, rois, num], name="faster_rcnn")
