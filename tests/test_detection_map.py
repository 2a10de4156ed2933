"""mAP: COCO numbers equal pycocotools on a fixed prediction set; VOC all-point AP by hand."""

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tasks.evaluation.mean_average_precision import coco_map, voc_ap, voc_map


def fixed_prediction_set(seed=7, images=40, classes=4):
    """Ground truth plus detections: jittered true boxes (some with the wrong class) and random false ones."""
    rng = np.random.default_rng(seed)
    gt_b, gt_c, det_b, det_s, det_c = [], [], [], [], []
    for _ in range(images):
        m = rng.integers(0, 6)
        yx, hw = rng.uniform(0, 90, (m, 2)), rng.uniform(8, 40, (m, 2))
        g = np.concatenate([yx, yx + hw], 1)
        c = rng.integers(0, classes, m)
        jitter = g + rng.normal(0, 3, g.shape)
        wrong = np.where(rng.random(m) < 0.8, c, rng.integers(0, classes, m))
        n = rng.integers(0, 4)
        yx, hw = rng.uniform(0, 90, (n, 2)), rng.uniform(8, 40, (n, 2))
        d = np.concatenate([jitter, jitter[: m // 2] + rng.normal(0, 6, (m // 2, 4)), np.concatenate([yx, yx + hw], 1)])
        dc = np.concatenate([wrong, wrong[: m // 2], rng.integers(0, classes, n)])
        gt_b.append(g), gt_c.append(c), det_b.append(d), det_c.append(dc)
        det_s.append(rng.uniform(0, 1, len(d)))
    return gt_b, gt_c, det_b, det_s, det_c


def pycocotools_stats(gt_b, gt_c, det_b, det_s, det_c, classes=4):
    def xywh(b):
        return [float(b[1]), float(b[0]), float(b[3] - b[1]), float(b[2] - b[0])]
    gt = {"images": [{"id": i + 1, "width": 128, "height": 128} for i in range(len(gt_b))],
          "categories": [{"id": k + 1, "name": str(k)} for k in range(classes)], "annotations": []}
    results = []
    for i in range(len(gt_b)):
        for b, c in zip(gt_b[i], gt_c[i], strict=False):
            bb = xywh(b)
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                                      "bbox": bb, "area": bb[2] * bb[3], "iscrowd": 0})
        for b, s, c in zip(det_b[i], det_s[i], det_c[i], strict=False):
            results.append({"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b), "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_coco_map_equals_pycocotools():
    data = fixed_prediction_set()
    stats = pycocotools_stats(*data)
    ours = coco_map(*data)
    assert 0.05 < stats[0] < 0.95  # a set where the metric is far from trivial
    np.testing.assert_allclose([ours["map"], ours["map50"], ours["map75"]], stats[:3], atol=1e-12)


def test_coco_map_of_perfect_detections_is_one():
    gt_b, gt_c, *_ = fixed_prediction_set(seed=3)
    scores = [np.linspace(1, 0.5, len(b)) for b in gt_b]
    assert coco_map(gt_b, gt_c, gt_b, scores, gt_c)["map"] == 1.0
    assert voc_map(gt_b, gt_c, gt_b, scores, gt_c)["map"] == 1.0


def test_voc_all_point_ap_by_hand():
    # one class, 3 true boxes in 2 images; detections by score: TP, FP, TP, duplicate (FP), miss one box
    gt_b = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0, 0, 10, 10]])]
    gt_c = [np.array([0, 0]), np.array([0])]
    det_b = [np.array([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 9]]), np.array([[0, 0, 10, 10]])]
    det_s = [np.array([0.9, 0.8, 0.6]), np.array([0.7])]
    det_c = [np.zeros(3, int), np.zeros(1, int)]
    # ranked: 0.9 TP, 0.8 FP, 0.7 TP, 0.6 FP (its box is already taken)
    # recall 1/3, 1/3, 2/3, 2/3; precision 1, 1/2, 2/3, 1/2 -> envelope 1 up to 1/3, 2/3 up to 2/3
    expected = (1 / 3) * 1.0 + (1 / 3) * (2 / 3)
    assert abs(voc_map(gt_b, gt_c, det_b, det_s, det_c)["map"] - expected) < 1e-12
    assert abs(voc_ap(np.array([1 / 3, 1 / 3, 2 / 3, 2 / 3]), np.array([1, 0.5, 2 / 3, 0.5])) - expected) < 1e-12
