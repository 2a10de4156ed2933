"""Mean average precision (mAP) for detection: Pascal VOC all-point AP@0.5 and COCO AP@[.5:.95].

Inputs are per-image lists: ground truth ``gt_boxes[i] [M, 4]``,
``gt_classes[i] [M]``, and detections ``boxes[i] [D, 4]``, ``scores[i] [D]``,
``classes[i] [D]``. Boxes are ``[ymin, xmin, ymax, xmax]`` in any units (IoU
does not change with scale).

* ``voc_map``: per class, detections of all images sorted by score; each is a
  true positive if its best-overlapping ground truth has IoU >= threshold and
  is not yet taken (VOC devkit matching; the devkit's ``>`` is the notes'
  ``>=`` here); AP is the area under the precision envelope at every recall
  point (VOC 2010+ "all-point").
* ``coco_map``: COCO's rules (pycocotools ``COCOeval``, ``bbox``, area "all",
  ``maxDets=100``): per image and class, detections sorted by score take the
  best *free* ground truth with IoU >= t; precision is sampled at 101 recall
  points; averaged over IoU thresholds 0.50:0.05:0.95 and classes with ground
  truth.

Example:
    >>> r = coco_map(gt_boxes, gt_classes, boxes, scores, classes)
    >>> r["map"], r["map50"], r["map75"]
"""

from __future__ import annotations

import numpy as np

from models.boxes import iou_matrix_np

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _classes_of(gt_classes, classes) -> list[int]:
    found = set()
    for c in list(gt_classes) + list(classes):
        found.update(int(x) for x in np.asarray(c).reshape(-1))
    return sorted(found)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP: area under the monotone precision envelope."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def voc_map(gt_boxes, gt_classes, boxes, scores, classes, iou_threshold: float = 0.5) -> dict:
    """Pascal VOC all-point mAP; returns ``{"map": float, "ap": {class_id: AP}}``."""
    aps = {}
    for c in _classes_of(gt_classes, classes):
        gts = [np.asarray(b).reshape(-1, 4)[np.asarray(k).reshape(-1) == c] for b, k in zip(gt_boxes, gt_classes, strict=False)]
        npos = sum(len(g) for g in gts)
        if npos == 0:
            continue
        det_img, det_box, det_score = [], [], []
        for i, (b, s, k) in enumerate(zip(boxes, scores, classes, strict=False)):
            sel = np.asarray(k).reshape(-1) == c
            det_img += [i] * int(sel.sum())
            det_box.append(np.asarray(b).reshape(-1, 4)[sel])
            det_score.append(np.asarray(s).reshape(-1)[sel])
        det_box = np.concatenate(det_box) if det_box else np.zeros((0, 4))
        det_score = np.concatenate(det_score) if det_score else np.zeros(0)
        order = np.argsort(-det_score, kind="stable")
        taken = [np.zeros(len(g), bool) for g in gts]
        tp = np.zeros(len(order))
        for rank, d in enumerate(order):
            g = gts[det_img[d]]
            if len(g) == 0:
                continue
            ious = iou_matrix_np(det_box[d : d + 1], g)[0]
            j = int(np.argmax(ious))
            if ious[j] >= iou_threshold and not taken[det_img[d]][j]:
                tp[rank] = 1
                taken[det_img[d]][j] = True
        ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
        aps[c] = voc_ap(ctp / npos, ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps))
    return {"map": float(np.mean(list(aps.values()))) if aps else 0.0, "ap": aps}


def _coco_match(det: np.ndarray, gt: np.ndarray, threshold: float) -> np.ndarray:
    """For score-sorted detections of one image and class: matched (True) or not, pycocotools' greedy rule."""
    matched = np.zeros(len(det), bool)
    if len(det) == 0 or len(gt) == 0:
        return matched
    ious = iou_matrix_np(det, gt)
    free = np.ones(len(gt), bool)
    for d in range(len(det)):
        best, m = min(threshold, 1 - 1e-10), -1
        for g in range(len(gt)):
            if free[g] and ious[d, g] >= best:
                best, m = ious[d, g], g
        if m >= 0:
            free[m] = False
            matched[d] = True
    return matched


def coco_map(gt_boxes, gt_classes, boxes, scores, classes, max_detections: int = 100) -> dict:
    """COCO bbox AP (pycocotools rules, area "all"); returns ``map``, ``map50``, ``map75`` and ``ap`` per class."""
    cats = _classes_of(gt_classes, classes)
    precision = -np.ones((len(COCO_IOU_THRESHOLDS), len(cats)))
    for k, c in enumerate(cats):
        per_image = []
        npos = 0
        for gb, gk, b, s, dk in zip(gt_boxes, gt_classes, boxes, scores, classes, strict=False):
            g = np.asarray(gb).reshape(-1, 4)[np.asarray(gk).reshape(-1) == c]
            sel = np.asarray(dk).reshape(-1) == c
            d, ds = np.asarray(b).reshape(-1, 4)[sel], np.asarray(s).reshape(-1)[sel]
            order = np.argsort(-ds, kind="mergesort")[:max_detections]
            per_image.append((d[order], ds[order], g))
            npos += len(g)
        if npos == 0:
            continue
        all_scores = np.concatenate([p[1] for p in per_image])
        order = np.argsort(-all_scores, kind="mergesort")
        for t, thr in enumerate(COCO_IOU_THRESHOLDS):
            tps = np.concatenate([_coco_match(d, g, thr) for d, _, g in per_image])[order]
            tp, fp = np.cumsum(tps), np.cumsum(~tps)
            recall = tp / npos
            prec = tp / (tp + fp + np.spacing(1))
            prec = np.maximum.accumulate(prec[::-1])[::-1] if len(prec) else prec
            idx = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")
            q = np.zeros(len(COCO_RECALL_POINTS))
            q[idx < len(prec)] = prec[idx[idx < len(prec)]]
            precision[t, k] = float(np.mean(q))

    def mean(values):
        v = values[values > -1]
        return float(v.mean()) if v.size else -1.0

    return {
        "map": mean(precision),
        "map50": mean(precision[0]),
        "map75": mean(precision[5]),
        "ap": {c: mean(precision[:, k]) for k, c in enumerate(cats)},
    }


def detection_metrics(gt_boxes, gt_classes, boxes, scores, classes) -> dict[str, float]:
    """The numbers every detection run logs: VOC mAP@0.5 and COCO mAP@[.5:.95], @.5, @.75."""
    coco = coco_map(gt_boxes, gt_classes, boxes, scores, classes)
    return {
        "map50_voc": voc_map(gt_boxes, gt_classes, boxes, scores, classes)["map"],
        "map_coco": coco["map"],
        "map50_coco": coco["map50"],
        "map75_coco": coco["map75"],
    }
