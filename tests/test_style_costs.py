"""Style-transfer costs against an independent NumPy computation of the notes' formulas."""

import numpy as np
import pytest

from models.style_costs import (
    content_cost,
    gram_matrix,
    layer_style_cost,
    style_cost,
    total_cost,
    total_variation,
)

RNG = np.random.default_rng(7)


def acts(n=2, h=5, w=7, c=6):
    return RNG.normal(size=(n, h, w, c)).astype(np.float32) * 3.0


def np_gram(a):
    """G(c1, c2) = sum_h sum_w a[h, w, c1] a[h, w, c2], with explicit loops over channels."""
    nh, nw, nc = a.shape
    g = np.zeros((nc, nc), np.float64)
    for c1 in range(nc):
        for c2 in range(nc):
            g[c1, c2] = sum(float(a[h, w, c1]) * float(a[h, w, c2]) for h in range(nh) for w in range(nw))
    return g


def np_layer_style(a_s, a_g):
    nh, nw, nc = a_s.shape
    return ((np_gram(a_s) - np_gram(a_g)) ** 2).sum() / (2.0 * nh * nw * nc) ** 2


def test_content_cost_is_half_squared_distance():
    a_c, a_g = acts(), acts()
    expected = [0.5 * ((a_c[i].astype(np.float64) - a_g[i]) ** 2).sum() for i in range(2)]
    np.testing.assert_allclose(np.asarray(content_cost(a_c, a_g)), expected, rtol=1e-5)


def test_gram_matches_loops_and_is_symmetric_psd():
    a = acts()
    g = np.asarray(gram_matrix(a))
    assert g.shape == (2, 6, 6)
    for i in range(2):
        np.testing.assert_allclose(g[i], np_gram(a[i]), rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(g[i], g[i].T, rtol=1e-6)
        assert np.linalg.eigvalsh(g[i].astype(np.float64)).min() > -1e-3 * np.abs(g[i]).max()


@pytest.mark.parametrize("shape", [(1, 4, 4, 3), (2, 3, 8, 5)])
def test_layer_style_cost_matches_numpy(shape):
    a_s, a_g = acts(*shape), acts(*shape)
    _, nh, nw, nc = shape
    got = np.asarray(layer_style_cost(gram_matrix(a_s), gram_matrix(a_g), nh, nw, nc))
    np.testing.assert_allclose(got, [np_layer_style(a_s[i], a_g[i]) for i in range(shape[0])], rtol=1e-4)


def test_weighted_style_and_total_cost_match_numpy():
    layers = {"l1": (2, 6, 6, 4), "l2": (2, 3, 3, 8)}
    weights = {"l1": 0.7, "l2": 0.3}
    a_s = {k: acts(*s) for k, s in layers.items()}
    a_g = {k: acts(*s) for k, s in layers.items()}
    a_c, a_gc = acts(2, 3, 3, 8), a_g["l2"]
    images = RNG.uniform(0, 255, size=(2, 9, 11, 3)).astype(np.float32)
    js = np.asarray(style_cost({k: gram_matrix(v) for k, v in a_s.items()}, a_g, weights))
    jc = np.asarray(content_cost(a_c, a_gc))
    tv = np.asarray(total_variation(images))
    j = np.asarray(total_cost(jc, js, 10.0, 40.0, tv, 0.5))
    for i in range(2):
        np_js = sum(weights[k] * np_layer_style(a_s[k][i], a_g[k][i]) for k in layers)
        np_jc = 0.5 * ((a_c[i].astype(np.float64) - a_gc[i]) ** 2).sum()
        x = images[i].astype(np.float64)
        np_tv = np.abs(np.diff(x, axis=0)).sum() + np.abs(np.diff(x, axis=1)).sum()
        np.testing.assert_allclose(js[i], np_js, rtol=1e-4)
        np.testing.assert_allclose(tv[i], np_tv, rtol=1e-5)
        np.testing.assert_allclose(j[i], 10.0 * np_jc + 40.0 * np_js + 0.5 * np_tv, rtol=1e-4)


def test_style_cost_of_an_image_with_itself_is_zero():
    a = {"l1": acts(1, 6, 6, 4), "l2": acts(1, 3, 3, 8)}
    js = style_cost({k: gram_matrix(v) for k, v in a.items()}, a, {"l1": 0.5, "l2": 0.5})
    assert float(np.asarray(js)[0]) == 0.0
    other = {k: v + 1.0 for k, v in a.items()}
    assert float(np.asarray(style_cost({k: gram_matrix(v) for k, v in a.items()}, other, {"l1": 0.5, "l2": 0.5}))[0]) > 0
