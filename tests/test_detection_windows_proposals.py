"""Sliding windows (naive == convolutional for every window) and region proposals on real scenes."""

import numpy as np
import pytest

from models import build
from models.boxes import iou_matrix
from models.region_proposals import label_regions, rcnn_detect, selective_search, warp_regions
from models.sliding_windows import (
    dense_window_scores,
    naive_window_scores,
    to_fully_convolutional,
    window_boxes,
    window_detections,
    window_stride,
)
from pipelines.catalog import load_arrays
from pipelines.scenes import background_photos, make_scenes


@pytest.fixture(scope="module")
def scenes():
    data = load_arrays("fashion_mnist")
    return make_scenes(data.x_test[:500], data.y_test[:500], background_photos(), 6, image_size=(96, 96), seed=11,
                       class_names=data.class_names)


def test_convolutional_sliding_windows_equal_naive_for_every_window(scenes):
    clf = build("window_classifier", (32, 32, 3), 11, width=8, dense=32)
    clf.compile("adam", "sparse_categorical_crossentropy")
    crops = warp_regions(scenes.images[0], np.concatenate(scenes.boxes[:3]), 32).numpy()
    clf.fit(crops, np.concatenate(scenes.classes[:3]), epochs=2, verbose=0)  # a trained classifier, a few steps
    fcn = to_fully_convolutional(clf)
    stride = window_stride(clf)
    assert stride == 4
    for image in scenes.images[:2]:
        naive = naive_window_scores(clf, image, stride)
        dense = dense_window_scores(fcn, image[None]).numpy()[0]
        assert naive.shape == dense.shape == (17, 17, 11)
        np.testing.assert_allclose(dense, naive, atol=1e-4, rtol=0)
    boxes = window_boxes((96, 96), 32, stride)
    np.testing.assert_allclose(boxes[2, 3], [8 / 96, 12 / 96, 40 / 96, 44 / 96])
    out = window_detections(dense, (96, 96), 32, stride, score_threshold=0.0, max_detections=5)
    n = int(out["num_detections"][0])
    best = np.unravel_index(np.argmax(dense[..., :10].max(-1)), dense.shape[:2])
    np.testing.assert_allclose(out["detection_boxes"][0, 0], boxes[best])  # the top window comes first
    assert 0 < n <= 5


def test_selective_search_proposes_a_box_on_every_object(scenes):
    for image, gt in zip(scenes.images[:3], scenes.boxes[:3], strict=False):
        proposals = selective_search(image)
        assert proposals.ndim == 2 and proposals.shape[1] == 4 and 20 < len(proposals) < 2000
        assert np.all((proposals >= 0) & (proposals <= 1))
        assert np.all(iou_matrix(gt, proposals).numpy().max(axis=1) >= 0.5)


def test_label_regions_follow_iou_bands():
    gt = np.array([[0.1, 0.1, 0.5, 0.5]], np.float32)
    proposals = np.array([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.3], [0.6, 0.6, 0.9, 0.9], [0.1, 0.1, 0.5, 0.24]],
                         np.float32)  # IoU 1, 0.5, 0, 0.35
    np.testing.assert_array_equal(label_regions(proposals, gt, [3], background=10), [3, 3, 10, -1])


def test_rcnn_detect_returns_proposals_with_nms(scenes):
    clf = build("window_classifier", (32, 32, 3), 11, width=4, dense=8)
    proposals = selective_search(scenes.images[0])
    out = rcnn_detect(clf, scenes.images[0], proposals, 10, score_threshold=0.0, max_detections=20)
    n = int(out["num_detections"][0])
    assert n > 0
    kept = out["detection_boxes"][0, :n].numpy()
    assert np.all(iou_matrix(kept, proposals).numpy().max(axis=1) > 0.999)  # every output is a proposal
