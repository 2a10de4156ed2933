"""Two-stage detection pieces against independent NumPy references: box deltas, RoI pooling,
RPN anchor targets, balanced sampling, per-class-box NMS."""

import keras
import numpy as np
import pytest

from models.box_coding import decode_deltas, encode_deltas
from models.roi_pooling import RoiPooling


def random_boxes(rng, n, lo=0.0, hi=1.0, min_side=0.02):
    y0, x0 = rng.uniform(lo, hi - min_side, (2, n))
    h = rng.uniform(min_side, hi - y0)
    w = rng.uniform(min_side, hi - x0)
    return np.stack([y0, x0, y0 + h, x0 + w], 1).astype(np.float32)


# -- box deltas -------------------------------------------------------------------
def test_box_deltas_round_trip_and_match_the_formula():
    rng = np.random.default_rng(0)
    boxes, refs = random_boxes(rng, 200), random_boxes(rng, 200)
    deltas = encode_deltas(boxes, refs).numpy()
    np.testing.assert_allclose(decode_deltas(deltas, refs).numpy(), boxes, atol=2e-5)
    # the formula, written out for one box with plain weights
    b, a = boxes[3].astype(np.float64), refs[3].astype(np.float64)
    ha, wa, hb, wb = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    expect = [((b[0] + b[2]) - (a[0] + a[2])) / 2 / ha, ((b[1] + b[3]) - (a[1] + a[3])) / 2 / wa,
              np.log(hb / ha), np.log(wb / wa)]
    np.testing.assert_allclose(encode_deltas(boxes[3], refs[3], weights=(1, 1, 1, 1)).numpy(), expect, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(encode_deltas(refs, refs).numpy(), 0.0, atol=1e-6)  # a box relative to itself
    big = decode_deltas(np.full((1, 4), 1e4, np.float32), refs[:1]).numpy()
    assert np.all(np.isfinite(big))  # capped exp


# -- RoI pooling ---------------------------------------------------------------------
def bilinear(fmap, y, x):
    """Bilinear sample of ``fmap [h, w, C]`` at one point inside ``[0, h-1] x [0, w-1]``."""
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, fmap.shape[0] - 1), min(x0 + 1, fmap.shape[1] - 1)
    dy, dx = y - y0, x - x0
    top = fmap[y0, x0] * (1 - dx) + fmap[y0, x1] * dx
    bottom = fmap[y1, x0] * (1 - dx) + fmap[y1, x1] * dx
    return top * (1 - dy) + bottom * dy


def numpy_roi_pool(fmap, roi, pool, sampling):
    """Crop (bilinear samples at sub-cell centres) + max over each cell, written with loops."""
    h, w = fmap.shape[:2]
    y0, x0, y1, x1 = (np.clip(v * s - 0.5, 0, s - 1) for v, s in zip(roi, (h, w, h, w), strict=True))
    y1, x1 = max(y1, y0), max(x1, x0)
    n = pool * sampling
    ys = [y0 + (j + 0.5) * (y1 - y0) / n for j in range(n)]
    xs = [x0 + (j + 0.5) * (x1 - x0) / n for j in range(n)]
    out = np.full((pool, pool, fmap.shape[-1]), -np.inf)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            out[i // sampling, j // sampling] = np.maximum(out[i // sampling, j // sampling], bilinear(fmap, y, x))
    return out


@pytest.mark.parametrize("pool, sampling, hw", [(7, 2, (8, 8)), (3, 1, (6, 9)), (4, 3, (16, 12))])
def test_roi_pooling_equals_numpy_crop_and_max(pool, sampling, hw):
    rng = np.random.default_rng(pool)
    fmap = rng.normal(size=(2, *hw, 5)).astype(np.float32)
    rois = np.stack([random_boxes(rng, 6, -0.1, 1.1, 0.05), random_boxes(rng, 6, 0.0, 1.0, 0.01)])
    layer = RoiPooling(pool, sampling)
    out = layer([fmap, rois]).numpy()
    assert out.shape == (2, 6, pool, pool, 5)
    for b in range(2):
        for r in range(6):
            np.testing.assert_allclose(out[b, r], numpy_roi_pool(fmap[b], rois[b, r], pool, sampling), atol=1e-5)


def test_roi_pooling_layer_serialises_and_runs_in_a_functional_model():
    features = keras.Input((None, None, 3))
    rois = keras.Input((None, 4))
    model = keras.Model([features, rois], RoiPooling(pool_size=2, sampling=2, name="pool")([features, rois]))
    clone = keras.Model.from_config(model.get_config())
    assert clone.get_layer("pool").get_config()["pool_size"] == 2
    x = np.random.default_rng(1).normal(size=(1, 5, 5, 3)).astype(np.float32)
    r = np.array([[[0.0, 0.0, 1.0, 1.0]]], np.float32)
    np.testing.assert_allclose(clone([x, r]).numpy(), model([x, r]).numpy())
    # bilinear samples never exceed the map's maximum; a constant map pools to that constant
    assert np.all(model([x, r]).numpy().max(axis=(2, 3))[0, 0] <= x[0].max(axis=(0, 1)) + 1e-6)
    np.testing.assert_allclose(model([np.full_like(x, 3.5), r]).numpy(), 3.5, atol=1e-6)


# -- RPN anchor targets, balanced sampling ---------------------------------------------
def loop_iou(a, b):
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def brute_force_anchor_labels(anchors, gts, pos=0.7, neg=0.3):
    """Faster R-CNN's rules, anchor by anchor: >= pos or a ground truth's best anchor -> 1; <= neg -> 0; else -1."""
    ious = np.array([[loop_iou(a, g) for g in gts] for a in anchors]).reshape(len(anchors), len(gts))
    labels = np.full(len(anchors), -1)
    for i in range(len(anchors)):
        best = ious[i].max() if len(gts) else 0.0
        if best <= neg:
            labels[i] = 0
        if best >= pos:
            labels[i] = 1
    for j in range(len(gts)):
        top = ious[:, j].max()
        for i in range(len(anchors)):
            if top > 0 and ious[i, j] == top:
                labels[i] = 1
    return labels, ious


def test_rpn_anchor_targets_equal_a_brute_force_iou_assignment():
    from models.faster_rcnn import faster_rcnn_anchors
    from models.rpn import assign_anchors

    anchors = faster_rcnn_anchors((128, 128, 3))
    assert anchors.shape == (8 * 8 * 9, 4)
    rng = np.random.default_rng(3)
    n, m = 3, 5
    gt = np.zeros((n, m, 4), np.float32)
    classes = np.full((n, m), -1, np.int32)
    counts = [4, 1, 0]  # the last image has no objects: everything negative
    for i, c in enumerate(counts):
        gt[i, :c] = random_boxes(rng, c, 0.0, 1.0, 0.15)
        gt[i, 0] = anchors[100 + i] if c else 0  # an exact anchor: IoU 1
        classes[i, :c] = rng.integers(0, 10, c)
    labels, which = assign_anchors(anchors, gt, classes >= 0)
    labels, which = labels.numpy(), which.numpy()
    for i, c in enumerate(counts):
        expect, ious = brute_force_anchor_labels(anchors, gt[i, :c])
        np.testing.assert_array_equal(labels[i], expect)
        if c:
            np.testing.assert_array_equal(ious[np.arange(len(anchors)), which[i]], ious.max(axis=1))
        assert (labels[i] == 1).sum() >= (c > 0)
    assert labels[0, 100] == 1 and np.all(labels[2] == 0)


def test_balanced_sampling_keeps_a_random_subset_with_at_most_the_positive_share():
    from models.roi_sampling import sample_balanced

    rng = np.random.default_rng(4)
    positive = rng.random((4, 300)) < np.array([0.02, 0.3, 0.0, 0.5])[:, None]
    negative = ~positive & (rng.random((4, 300)) < 0.8)
    pos, neg = (t.numpy() for t in sample_balanced(positive, negative, 64, 0.5, seed=1))
    assert np.all(pos <= positive) and np.all(neg <= negative)
    for i in range(4):
        n_pos = min(positive[i].sum(), 32)
        assert pos[i].sum() == n_pos
        assert neg[i].sum() == min(negative[i].sum(), 64 - n_pos)


def test_proposal_targets_label_rois_by_their_best_ground_truth():
    from models.box_coding import decode_deltas
    from models.roi_sampling import ProposalTargets

    rng = np.random.default_rng(5)
    gt = np.zeros((2, 4, 4), np.float32)
    gt[:, :2] = random_boxes(rng, 4, 0.0, 1.0, 0.2).reshape(2, 2, 4)
    classes = np.array([[2, 7, -1, -1], [0, 9, -1, -1]], np.int32)
    proposals = np.concatenate([random_boxes(rng, 60).reshape(2, 30, 4), np.zeros((2, 5, 4), np.float32)], 1)
    rois, labels, targets = ProposalTargets(num_classes=10, rois_per_image=16, fg_fraction=0.25, seed=2)(
        [proposals, gt, classes])
    rois, labels, targets = rois.numpy(), labels.numpy(), targets.numpy()
    for i in range(2):
        for r in range(16):
            if labels[i, r] < 0:
                continue
            ious = [loop_iou(rois[i, r], g) for g in gt[i, :2]]
            assert (rois[i, r, 2] - rois[i, r, 0]) > 0  # padding never sampled
            if max(ious) >= 0.5:
                j = int(np.argmax(ious))
                assert labels[i, r] == classes[i, j]
                np.testing.assert_allclose(decode_deltas(targets[i, r], rois[i, r]).numpy(), gt[i, j], atol=1e-5)
            else:
                assert labels[i, r] == 10 and np.all(targets[i, r] == 0)
        fg = ((labels[i] >= 0) & (labels[i] < 10)).sum()
        assert 2 <= fg <= 4  # the ground truths themselves are candidates; at most a quarter foreground
        assert (labels[i] >= 0).sum() == 16
