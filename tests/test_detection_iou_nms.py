"""Per-class NMS against tf.image.non_max_suppression (IoU itself: tests/test_detection_boxes.py)."""

import numpy as np
import tensorflow as tf

from models.boxes import iou_matrix
from models.nms import batched_nms, class_nms, inclusive_iou_threshold


def random_boxes(rng, n, degenerate=0):
    yx = rng.uniform(0, 0.8, (n, 2))
    hw = rng.uniform(0.02, 0.5, (n, 2))
    hw[:degenerate, 0] = 0.0  # zero-height boxes
    return np.concatenate([yx, yx + hw], 1).astype(np.float32)


def one_image(boxes, scores, classes, num_classes, score_threshold=0.6, iou_threshold=0.5):
    """``batched_nms`` for one image as NumPy ``(boxes [D, 4], scores [D], classes [D])``."""
    out = batched_nms(boxes[None], scores[None], classes[None], num_classes, score_threshold, iou_threshold)
    n = int(out["num_detections"][0])
    return (out["detection_boxes"][0, :n].numpy(), out["detection_scores"][0, :n].numpy(),
            out["detection_classes"][0, :n].numpy().astype(np.int64))


def test_per_class_nms_equals_tf_image_nms_class_by_class():
    rng = np.random.default_rng(2)
    for trial in range(20):
        n, k = int(rng.integers(1, 80)), 4
        boxes = random_boxes(rng, n)
        scores = rng.uniform(0, 1, n).astype(np.float32)
        classes = rng.integers(0, k, n)
        got_boxes, got_scores, got_classes = one_image(boxes, scores, classes, k, 0.6, 0.5)
        expected = set()
        for c in range(k):
            idx = np.nonzero(classes == c)[0]
            if len(idx) == 0:
                continue
            keep = tf.image.non_max_suppression(boxes[idx], scores[idx], 100, inclusive_iou_threshold(0.5), 0.6)
            expected |= {(c, int(idx[i])) for i in keep.numpy()}
        got = set()
        for b, s, c in zip(got_boxes, got_scores, got_classes, strict=False):
            i = int(np.nonzero((scores == s) & (classes == c))[0][0])
            np.testing.assert_array_equal(b, boxes[i])
            got.add((int(c), i))
        assert got == expected, trial
        assert np.all(np.diff(got_scores) <= 0)  # sorted by score


def test_class_score_nms_equals_tf_image_nms_class_by_class_with_a_box_in_several_classes():
    rng = np.random.default_rng(4)
    for trial in range(10):
        n, k = int(rng.integers(1, 60)), 3
        boxes = random_boxes(rng, n)
        class_scores = rng.uniform(0, 1, (n, k)).astype(np.float32)  # every box scored for every class
        out = class_nms(boxes[None], class_scores[None], 0.3, 0.5, max_detections=300)
        m = int(out["num_detections"][0])
        got = set()
        for b, s, c in zip(out["detection_boxes"][0, :m].numpy(), out["detection_scores"][0, :m].numpy(),
                           out["detection_classes"][0, :m].numpy().astype(int), strict=True):
            i = int(np.nonzero(class_scores[:, c] == s)[0][0])
            np.testing.assert_array_equal(b, boxes[i])
            got.add((c, i))
        expected = {(c, int(i)) for c in range(k) for i in tf.image.non_max_suppression(
            boxes, class_scores[:, c], 300, inclusive_iou_threshold(0.5), 0.3).numpy()}
        assert got == expected, trial


def test_notes_thresholds_are_inclusive():
    # pc <= 0.6 is discarded; IoU >= 0.5 is suppressed (IoU of these two boxes is exactly 0.5).
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 0.5], [0, 2, 1, 3], [0, 4, 1, 5]], np.float32)
    scores = np.array([0.9, 0.8, 0.6, 0.61], np.float32)
    assert iou_matrix(boxes[:1], boxes[1:2]).numpy()[0, 0] == 0.5
    _, kept_scores, _ = one_image(boxes, scores, np.zeros(4, int), 1)
    np.testing.assert_allclose(kept_scores, [0.9, 0.61])
    # the same two overlapping boxes in different classes both survive
    _, kept_scores, _ = one_image(boxes[:2], scores[:2], np.array([0, 1]), 2)
    np.testing.assert_allclose(kept_scores, [0.9, 0.8])


def test_batched_nms_pads_and_counts():
    rng = np.random.default_rng(3)
    boxes = np.stack([random_boxes(rng, 50), random_boxes(rng, 50)])
    scores = rng.uniform(0, 1, (2, 50)).astype(np.float32)
    scores[1] = 0.1  # nothing survives in image 2
    out = batched_nms(boxes, scores, rng.integers(0, 3, (2, 50)), 3, max_detections=20)
    assert out["detection_boxes"].shape == (2, 20, 4)
    n = out["num_detections"].numpy()
    assert n[0] > 0 and n[1] == 0
    assert np.all(out["detection_scores"].numpy()[0, n[0]:] == 0)
