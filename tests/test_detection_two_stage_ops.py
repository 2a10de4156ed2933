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
