"""Verification threshold at the equal-error rate, checked against a brute-force threshold scan."""

import numpy as np
import pytest

from serving.verification import _sample_pairs, choose_threshold, pair_distances


def test_equal_error_threshold_matches_a_brute_force_scan():
    rng = np.random.default_rng(0)
    same = np.r_[np.ones(400, bool), np.zeros(600, bool)]
    d = np.where(same, rng.uniform(0.0, 1.0, same.size), rng.uniform(0.7, 2.0, same.size))
    v = choose_threshold(d, same)
    best = min(np.unique(d), key=lambda t: abs(np.mean(d[same] > t) - np.mean(d[~same] <= t)))
    frr, far = np.mean(d[same] > v.threshold), np.mean(d[~same] <= v.threshold)
    assert abs(frr - far) <= abs(np.mean(d[same] > best) - np.mean(d[~same] <= best)) + 1 / 400
    assert v.eer == pytest.approx((frr + far) / 2, abs=1 / 400)
    # AUC = P(distance of a same pair < distance of a different pair)
    assert v.auc == pytest.approx(np.mean(d[same][:, None] < d[~same][None, :]), abs=1e-9)
    assert v.accuracy == pytest.approx(1 - (frr + far) / 2)


def test_pairs_are_all_pairs_or_a_balanced_sample():
    e = np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 2]]
    d, same = pair_distances(e, [0, 0, 1, 1, 2])
    assert len(d) == 10 and same.sum() == 2
    np.testing.assert_allclose(d[same], 0.0)
    np.testing.assert_allclose(d[~same], 2.0)
    y = np.repeat(np.arange(10), 20)
    e = np.random.default_rng(1).normal(size=(200, 3))
    d, same = pair_distances(e, y, max_pairs=1000, seed=0)
    assert len(d) == 1000 and same.sum() == 500
    i, j = _sample_pairs(y, 500, np.random.default_rng(0))  # the sample behind it: real pairs, never an image with itself
    assert (i != j).all() and (y[i[:500]] == y[j[:500]]).all() and (y[i[500:]] != y[j[500:]]).all()
    np.testing.assert_allclose(d, ((e[i] - e[j]) ** 2).sum(1), rtol=1e-5)
    with pytest.raises(ValueError, match="both"):
        choose_threshold(np.ones(3), np.ones(3, bool))
