"""Two-stage detection, R-CNN style (Girshick et al. 2014): region proposals, then a CNN per region.

Stage 1, *where might objects be*: selective search (Uijlings et al. 2013).
The image is over-segmented with Felzenszwalb's graph method
(``skimage.segmentation.felzenszwalb``) at a few scales; neighbouring regions
are merged greedily, most similar first (colour-histogram intersection + small
regions first + how well they fill their joint box), until one region is left.
Every region ever formed gives a box: the proposals.

Stage 2, *what is it*: every proposal is warped to the classifier's input size
(``warp_regions``, ``tf.image.crop_and_resize``) and classified into the object
classes plus background; then per-class NMS, as for YOLO.

The notes: "R-CNN is currently slower than YOLO" — one classifier pass per
proposal, and proposals computed on the CPU outside the network; see
``benchmarks/detection.py`` for by how much.

Example:
    >>> proposals = selective_search(image)                  # [P, 4] normalised
    >>> dets = rcnn_detect(classifier, image, proposals, num_classes=10)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.boxes import iou_matrix
from models.nms import IOU_THRESHOLD, SCORE_THRESHOLD, class_nms

HIST_BINS = 25


def _region_stats(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label sizes ``[R]``, boxes ``[R, 4]`` (pixel, ymax/xmax exclusive), L1-normalised colour histograms."""
    n = int(labels.max()) + 1
    flat = labels.reshape(-1)
    sizes = np.bincount(flat, minlength=n).astype(np.float64)
    ys, xs = np.indices(labels.shape)
    boxes = np.empty((n, 4))
    boxes[:, 0] = np.full(n, np.inf)
    boxes[:, 1] = np.full(n, np.inf)
    np.minimum.at(boxes[:, 0], flat, ys.reshape(-1))
    np.minimum.at(boxes[:, 1], flat, xs.reshape(-1))
    boxes[:, 2] = -np.inf
    boxes[:, 3] = -np.inf
    np.maximum.at(boxes[:, 2], flat, ys.reshape(-1) + 1)
    np.maximum.at(boxes[:, 3], flat, xs.reshape(-1) + 1)
    bins = np.minimum(image.reshape(-1, image.shape[-1]).astype(np.int64) * HIST_BINS // 256, HIST_BINS - 1)
    hists = np.zeros((n, image.shape[-1] * HIST_BINS))
    for ch in range(image.shape[-1]):
        np.add.at(hists, (flat, ch * HIST_BINS + bins[:, ch]), 1.0)
    hists /= np.maximum(hists.sum(axis=1, keepdims=True), 1.0)
    return sizes, boxes, hists


def _neighbours(labels: np.ndarray) -> set[tuple[int, int]]:
    pairs = np.concatenate([
        np.stack([labels[:, :-1].reshape(-1), labels[:, 1:].reshape(-1)], 1),
        np.stack([labels[:-1].reshape(-1), labels[1:].reshape(-1)], 1),
    ])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    return {(int(a), int(b)) for a, b in pairs}


def _group(image: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """Hierarchical grouping of one segmentation; returns every region's pixel box."""
    sizes, boxes, hists = _region_stats(image, labels)
    sizes, boxes, hists = list(sizes), list(boxes), list(hists)
    area = float(labels.size)

    def similarity(a: int, b: int) -> float:
        colour = np.minimum(hists[a], hists[b]).sum() / image.shape[-1]
        size = 1.0 - (sizes[a] + sizes[b]) / area
        joint = np.concatenate([np.minimum(boxes[a][:2], boxes[b][:2]), np.maximum(boxes[a][2:], boxes[b][2:])])
        fill = 1.0 - ((joint[2] - joint[0]) * (joint[3] - joint[1]) - sizes[a] - sizes[b]) / area
        return colour + size + fill

    sims = {pair: similarity(*pair) for pair in _neighbours(labels)}
    out = list(boxes)
    while sims:
        a, b = max(sims, key=sims.get)
        t = len(sizes)
        sizes.append(sizes[a] + sizes[b])
        boxes.append(np.concatenate([np.minimum(boxes[a][:2], boxes[b][:2]), np.maximum(boxes[a][2:], boxes[b][2:])]))
        hists.append((hists[a] * sizes[a] + hists[b] * sizes[b]) / sizes[t])
        out.append(boxes[t])
        touched = {p for p in sims if a in p or b in p}
        others = {x for p in touched for x in p} - {a, b}
        for p in touched:
            del sims[p]
        for o in others:
            sims[(o, t)] = similarity(o, t)
    return out


def selective_search(image: np.ndarray, scales=(100, 300), sigma: float = 0.8, min_size: int = 20,
                     min_side: int = 6) -> np.ndarray:
    """Selective-search proposals for an RGB uint8 image: normalised ``[P, 4]`` ``[ymin, xmin, ymax, xmax]``.

    One Felzenszwalb segmentation per ``scales`` entry, grouped
    hierarchically; duplicate boxes and boxes with a side under ``min_side``
    pixels are dropped.
    """
    from skimage.segmentation import felzenszwalb

    h, w = image.shape[:2]
    found = []
    for scale in scales:
        labels = felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_size)
        found += _group(image, labels)
    boxes = np.unique(np.asarray(found, np.float64).round().astype(np.int64), axis=0)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_side) & ((boxes[:, 3] - boxes[:, 1]) >= min_side)
    return (boxes[keep] / np.array([h, w, h, w], np.float64)).astype(np.float32)


def warp_regions(image, boxes, size: int) -> tf.Tensor:
    """Crop and warp (bilinear, aspect not kept, as R-CNN) regions of one image: uint8 ``[P, size, size, C]``."""
    image = tf.convert_to_tensor(image)
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    crops = tf.image.crop_and_resize(tf.cast(image[None], tf.float32), boxes, tf.zeros(tf.shape(boxes)[0], tf.int32),
                                     [size, size])
    return tf.cast(tf.clip_by_value(tf.round(crops), 0, 255), tf.uint8)


def label_regions(proposals, gt_boxes, gt_classes, background: int, fg_iou: float = 0.5,
                  bg_iou: float = 0.3) -> np.ndarray:
    """Training labels of proposals: the class of a ground truth with IoU >= ``fg_iou``,
    ``background`` below ``bg_iou``, ``-1`` (ignored) in between."""
    proposals = np.asarray(proposals, np.float32).reshape(-1, 4)
    labels = np.full(len(proposals), background, np.int64)
    if len(gt_boxes) == 0 or len(proposals) == 0:
        return labels
    ious = iou_matrix(proposals, gt_boxes).numpy()
    best, which = ious.max(axis=1), ious.argmax(axis=1)
    labels[best >= fg_iou] = np.asarray(gt_classes)[which[best >= fg_iou]]
    labels[(best >= bg_iou) & (best < fg_iou)] = -1
    return labels


def rcnn_detect(classifier, image, proposals, num_classes: int, score_threshold: float = SCORE_THRESHOLD,
                iou_threshold: float = IOU_THRESHOLD, max_detections: int = 100, batch_size: int = 512) -> dict:
    """Classify warped proposals (last class = background) and run per-class NMS.

    As in R-CNN, every proposal is scored for every object class (its softmax
    probability) and each class has its own NMS. Returns the ``class_nms`` dict
    for a batch of one image.
    """
    size = classifier.input_shape[1]
    crops = warp_regions(image, proposals, size)
    probs = tf.concat([classifier(crops[i : i + batch_size], training=False)
                       for i in range(0, max(int(crops.shape[0]), 1), batch_size)], axis=0)
    return class_nms(tf.convert_to_tensor(proposals, tf.float32)[None], probs[None, :, :num_classes],
                     score_threshold, iou_threshold, max_detections)
