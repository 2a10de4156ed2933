"""``models.boxes`` against independent brute-force Python loops: conversions, TF IoU, NumPy IoU, shape IoU."""

import numpy as np
import tensorflow as tf

from models.boxes import (
    corners_at_origin,
    corners_from_midpoint,
    iou,
    iou_matrix,
    iou_matrix_np,
    iou_np,
    iou_wh,
    midpoint_from_corners,
)


def random_boxes(rng, n, degenerate=0):
    yx = rng.uniform(0, 0.8, (n, 2))
    hw = rng.uniform(0.02, 0.5, (n, 2))
    hw[:degenerate, 0] = 0.0  # zero-height boxes
    return np.concatenate([yx, yx + hw], 1).astype(np.float32)


def brute_iou(a, b):
    """One pair at a time, plain floats: the definition area(A n B) / area(A u B)."""
    out = np.zeros((len(a), len(b)))
    for i, (ay0, ax0, ay1, ax1) in enumerate(np.asarray(a, np.float64)):
        for j, (by0, bx0, by1, bx1) in enumerate(np.asarray(b, np.float64)):
            ih = max(0.0, min(ay1, by1) - max(ay0, by0))
            iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
            union = (ay1 - ay0) * (ax1 - ax0) + (by1 - by0) * (bx1 - bx0) - ih * iw
            out[i, j] = ih * iw / union if union > 0 else 0.0
    return out


def test_midpoint_and_corners_are_inverse_and_match_a_loop_in_numpy_and_tf():
    rng = np.random.default_rng(0)
    corners = random_boxes(rng, 50).astype(np.float64)
    expected = np.array([[(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0] for y0, x0, y1, x1 in corners])
    mid = midpoint_from_corners(corners)
    assert isinstance(mid, np.ndarray)
    np.testing.assert_allclose(mid, expected, atol=1e-12)
    np.testing.assert_allclose(corners_from_midpoint(mid), corners, atol=1e-12)
    back = corners_from_midpoint(tf.constant(expected, tf.float32))  # TF in -> TF out, usable in a graph
    assert tf.is_tensor(back)
    np.testing.assert_allclose(back.numpy(), corners, atol=1e-6)
    graph = tf.function(lambda t: midpoint_from_corners(t))(tf.constant(corners[None], tf.float32))
    np.testing.assert_allclose(graph.numpy()[0], expected, atol=1e-6)  # leading axes broadcast
    np.testing.assert_allclose(corners_from_midpoint([0.5, 0.5, 0.2, 0.4]), [0.3, 0.4, 0.7, 0.6], atol=1e-12)


def test_tf_and_numpy_iou_equal_the_brute_force_loop():
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 40, degenerate=3), random_boxes(rng, 30)
    b[:5] = a[:5]  # identical boxes: IoU 1
    expected = brute_iou(a, b)
    got_tf, got_np = iou_matrix(a, b).numpy(), iou_matrix_np(a, b)
    assert got_tf.dtype == np.float32 and got_np.dtype == np.float64
    np.testing.assert_allclose(got_tf, expected, atol=1e-6)
    np.testing.assert_allclose(got_np, expected, atol=1e-12)
    assert np.allclose(np.diag(got_np[3:5, 3:5]), 1.0) and np.all(got_np[:3] == 0.0)
    # element-wise with broadcasting: matching pairs, and a batch of [N, A, 1] x [N, 1, M]
    np.testing.assert_allclose(iou(a[:30], b).numpy(), np.diag(expected[:30]), atol=1e-6)
    np.testing.assert_allclose(iou_np(a[:30], b), np.diag(expected[:30]), atol=1e-12)
    batched = iou(tf.constant(np.stack([a, a]))[:, :, None, :], tf.constant(np.stack([b, b]))[:, None, :, :])
    np.testing.assert_allclose(batched.numpy()[1], expected, atol=1e-6)
    assert iou_matrix_np(np.zeros((0, 4)), b).shape == (0, 30)


def test_iou_of_shapes_aligns_them_at_one_corner():
    rng = np.random.default_rng(2)
    wh_a, wh_b = rng.uniform(0.05, 0.5, (20, 2)), rng.uniform(0.05, 0.5, (5, 2))

    def corner(wh):
        return np.concatenate([np.zeros_like(wh), wh[:, ::-1]], 1)  # [0, 0, h, w]

    np.testing.assert_allclose(iou_wh(wh_a, wh_b), brute_iou(corner(wh_a), corner(wh_b)), atol=1e-9)
    np.testing.assert_allclose(corners_at_origin(wh_a), corner(wh_a), atol=1e-12)
