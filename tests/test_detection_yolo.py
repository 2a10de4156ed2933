"""YOLO: target encoding/decoding round trip, k-means anchors, the loss against NumPy, detection."""

import numpy as np
import tensorflow as tf

from models import build
from models.anchors import kmeans_anchors, mean_best_iou
from models.boxes import iou_wh
from models.yolo import YoloLoss, decode, detect, encode_targets

ANCHORS = np.array([[0.1, 0.12], [0.2, 0.3], [0.35, 0.3]], np.float32)


def boxes_in_distinct_cells(rng, s, n):
    cells = rng.choice(s * s, n, replace=False)
    cy = (cells // s + rng.uniform(0.05, 0.95, n)) / s
    cx = (cells % s + rng.uniform(0.05, 0.95, n)) / s
    h, w = rng.uniform(0.05, 0.4, n), rng.uniform(0.05, 0.4, n)
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], 1).astype(np.float32)


def test_encode_then_decode_returns_the_original_boxes():
    rng = np.random.default_rng(0)
    for s in (4, 8, 13):
        boxes = boxes_in_distinct_cells(rng, s, 6)
        classes = rng.integers(0, 5, 6)
        y = encode_targets(boxes, classes, ANCHORS, s, 5)
        assert y.shape == (s, s, 3, 10) and y[..., 0].sum() == 6
        out_boxes, pc, probs = (t.numpy()[0] for t in decode(y[None], ANCHORS, from_logits=False))
        found = pc > 0.5
        order = np.lexsort((out_boxes[found][:, 1], out_boxes[found][:, 0]))
        expected = np.lexsort((boxes[:, 1], boxes[:, 0]))
        np.testing.assert_allclose(out_boxes[found][order], boxes[expected], atol=1e-5)
        np.testing.assert_array_equal(probs[found][order].argmax(1), classes[expected])


def test_targets_use_midpoint_cell_and_best_iou_anchor_then_next_free_anchor():
    # two objects with the same midpoint cell: the first takes its best anchor, the second its next best free one
    boxes = np.array([[0.30, 0.30, 0.42, 0.40], [0.26, 0.26, 0.46, 0.44]], np.float32)
    y = encode_targets(boxes, [1, 2], ANCHORS, 4, 3)
    cy, cx = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    row, col = int(cy[0] * 4), int(cx[0] * 4)
    assert (row, col) == (int(cy[1] * 4), int(cx[1] * 4)) == (1, 1)
    best = np.argsort(-iou_wh(np.stack([boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]], 1), ANCHORS), 1)
    assert y[row, col, best[0, 0], 0] == 1 and y[row, col, best[0, 0], 6] == 1
    second = best[1, 0] if best[1, 0] != best[0, 0] else best[1, 1]
    assert y[row, col, second, 0] == 1 and y[row, col, second, 7] == 1
    np.testing.assert_allclose(y[row, col, second, 1:3], [cx[1] * 4 - col, cy[1] * 4 - row], atol=1e-6)
    assert y[..., 0].sum() == 2


def test_kmeans_with_iou_distance_finds_the_box_shape_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[0.08, 0.1], [0.2, 0.12], [0.3, 0.4]])
    wh = np.concatenate([c * rng.uniform(0.93, 1.07, (200, 2)) for c in centres])
    anchors = kmeans_anchors(wh, 3, seed=0)
    np.testing.assert_allclose(anchors, centres, rtol=0.05)
    assert mean_best_iou(wh, anchors) > 0.9 > mean_best_iou(wh, np.full((3, 2), 0.2))


def numpy_yolo_loss(y_true, y_pred, coord=5.0, noobj=0.5):
    def sig(x):
        return 1 / (1 + np.exp(-x))
    obj = y_true[..., 0]
    p = sig(y_pred[..., 0])
    bce = -(obj * np.log(p) + (1 - obj) * np.log(1 - p))
    xy = ((sig(y_pred[..., 1:3]) - y_true[..., 1:3]) ** 2).sum(-1)
    wh = ((y_pred[..., 3:5] - y_true[..., 3:5]) ** 2).sum(-1)
    logits = y_pred[..., 5:]
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    ce = -(y_true[..., 5:] * logp).sum(-1)
    per = bce * (obj + noobj * (1 - obj)) + obj * (coord * (xy + wh) + ce)
    return per.sum(axis=(1, 2, 3)).mean()


def test_yolo_loss_equals_numpy_and_vanishes_near_a_perfect_prediction():
    rng = np.random.default_rng(2)
    y = np.stack([encode_targets(boxes_in_distinct_cells(rng, 4, 3), rng.integers(0, 4, 3), ANCHORS, 4, 4)
                  for _ in range(2)])
    pred = rng.normal(0, 1, y.shape).astype(np.float32)
    np.testing.assert_allclose(float(YoloLoss()(y, pred)), numpy_yolo_loss(y, pred), rtol=1e-5)
    def logit(p):
        return np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    perfect = np.concatenate([logit(y[..., :3]) * 1.0, y[..., 3:5], 30 * (y[..., 5:] - 0.5)], -1).astype(np.float32)
    perfect[..., 0] = np.where(y[..., 0] > 0, 20.0, -20.0)
    assert float(YoloLoss()(y, perfect)) < 1e-3 < float(YoloLoss()(y, pred))


def test_detect_on_the_model_output_returns_nms_outputs():
    model = build("yolo", (64, 64, 3), 4, anchors=ANCHORS.tolist(), width=4)
    assert model.output_shape == (None, 4, 4, 3, 9)
    images = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    out = detect(model(images), ANCHORS, 4, score_threshold=0.0, max_detections=10)
    assert out["detection_boxes"].shape == (2, 10, 4)
    boxes = out["detection_boxes"].numpy()
    assert np.all((boxes >= 0) & (boxes <= 1))
    assert out["num_detections"].dtype == tf.int32 and np.all(out["num_detections"].numpy() > 0)


def test_detect_scores_every_class_pc_times_p_and_serving_keeps_only_the_argmax():
    # one box in cell (1, 2) of a 4x4 grid, pc = 0.9, class probabilities (0.5, 0.35, 0.1, 0.05); all else empty
    grid = np.zeros((1, 4, 4, 3, 9), np.float32)
    grid[..., 0] = -30.0
    probs = np.array([0.5, 0.35, 0.1, 0.05])
    grid[0, 1, 2, 1, :5] = [np.log(0.9 / 0.1), 0.0, 0.0, 0.0, 0.0]
    grid[0, 1, 2, 1, 5:] = np.log(probs)
    ranked = detect(grid, ANCHORS, 4, score_threshold=0.05)
    n = int(ranked["num_detections"][0])
    np.testing.assert_allclose(ranked["detection_scores"][0, :n], 0.9 * probs[:3], rtol=1e-5)  # 0.045 is dropped
    np.testing.assert_array_equal(ranked["detection_classes"][0, :n], [0, 1, 2])
    cx, cy = 2.5 / 4, 1.5 / 4
    w, h = ANCHORS[1]
    np.testing.assert_allclose(ranked["detection_boxes"][0, :n], [[cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2]] * 3,
                               atol=1e-6)
    single = detect(grid, ANCHORS, 4, score_threshold=0.05, one_class_per_box=True)
    assert int(single["num_detections"][0]) == 1 and int(single["detection_classes"][0, 0]) == 0
    grid[0, 1, 2, 1, 5:] = np.log([0.7, 0.2, 0.05, 0.05])  # served at 0.6: 0.9 * 0.7 = 0.63 passes, nothing else
    served = detect(grid, ANCHORS, 4)
    assert int(served["num_detections"][0]) == 1
    np.testing.assert_allclose(served["detection_scores"][0, 0], 0.63, rtol=1e-5)


def test_yolo_on_a_pretrained_trunk_keeps_the_grid_and_rejects_bad_options():
    import pytest

    model = build("yolo", (64, 64, 3), 4, anchors=ANCHORS.tolist(), backbone="efficientnet_lite0", width=4)
    assert model.output_shape == (None, 4, 4, 3, 9)
    assert model.get_layer("efficientnet_lite0").output.shape[1:] == (4, 4, 80)  # blocks 1-4, stride 16
    assert model(np.zeros((1, 64, 64, 3), np.uint8)).shape == (1, 4, 4, 3, 9)
    with pytest.raises(ValueError, match="backbone"):
        build("yolo", (64, 64, 3), 4, backbone="vgg99")
    with pytest.raises(ValueError, match="stride 16"):
        build("yolo", (64, 64, 3), 4, backbone="efficientnet_lite0", stride=8)


def test_box_aware_augmentation_keeps_targets_on_their_objects():
    from tasks.core.recipe import load_recipe
    from tasks.problems.detection import DetectionTask

    recipe = load_recipe("scenes_yolo", ["scenes.train=6", "scenes.val=2", "scenes.test=2", "scenes.fresh=false",
                                         "train.batch_size=6",
                                         "data.augment=[{mirror: {p: 1.0}}]"])
    task = DetectionTask(recipe)
    inputs = task.build_inputs()
    images, targets = next(iter(inputs.train))
    originals = task.train_scenes
    seen = set()
    for image, y in zip(images.numpy(), targets.numpy(), strict=True):
        i = next(j for j, o in enumerate(originals.images) if np.array_equal(image, o[:, ::-1]))  # mirrored pixels
        seen.add(i)
        boxes, pc, probs = (t.numpy()[0] for t in decode(y[None], task.anchors, from_logits=False))
        src = originals.boxes[i]
        mirrored = np.stack([src[:, 0], 1 - src[:, 3], src[:, 2], 1 - src[:, 1]], 1)
        got, classes = boxes[pc > 0.5], probs[pc > 0.5].argmax(1)
        order = np.lexsort((got[:, 1], got[:, 0]))
        expected = np.lexsort((mirrored[:, 1], mirrored[:, 0]))
        np.testing.assert_allclose(got[order], mirrored[expected], atol=1e-5)  # the boxes moved with the pixels
        np.testing.assert_array_equal(classes[order], originals.classes[i][expected])
    assert len(seen) == 6
