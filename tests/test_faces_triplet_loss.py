"""Triplet losses (all, batch-hard, semi-hard, random) against plain NumPy loops."""

import numpy as np
import pytest

from models.triplet_loss import (
    TripletLoss,
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    pairwise_distances,
    pairwise_squared_distances,
    random_triplet_loss,
    semi_hard_triplet_loss,
)

MARGIN = 0.3


def np_dist(e, squared=True):
    d = ((e[:, None, :] - e[None, :, :]) ** 2).sum(-1)
    return d if squared else np.sqrt(d)


def np_batch_all(y, e, m, squared=True):
    d, losses = np_dist(e, squared), []
    for a in range(len(y)):
        for p in range(len(y)):
            if p == a or y[p] != y[a]:
                continue
            for n in range(len(y)):
                if y[n] != y[a]:
                    losses.append(max(d[a, p] - d[a, n] + m, 0.0))
    active = [x for x in losses if x > 1e-16]
    return float(np.mean(active)) if active else 0.0


def np_batch_hard(y, e, m, squared=True):
    d, losses = np_dist(e, squared), []
    for a in range(len(y)):
        pos = [d[a, p] for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [d[a, n] for n in range(len(y)) if y[n] != y[a]]
        if pos and neg:
            losses.append(max(max(pos) - min(neg) + m, 0.0))
    return float(np.mean(losses)) if losses else 0.0


def np_semi_hard(y, e, m, squared=True):
    d, losses = np_dist(e, squared), []
    for a in range(len(y)):
        neg = [d[a, n] for n in range(len(y)) if y[n] != y[a]]
        if not neg:
            continue
        for p in range(len(y)):
            if p == a or y[p] != y[a]:
                continue
            farther = [x for x in neg if x > d[a, p]]
            dn = min(farther) if farther else max(neg)
            losses.append(max(d[a, p] - dn + m, 0.0))
    return float(np.mean(losses)) if losses else 0.0


def np_random(y, e, m, scores):
    d, losses = np_dist(e), []
    for a in range(len(y)):
        negs = [n for n in range(len(y)) if y[n] != y[a]]
        if not negs:
            continue
        for p in range(len(y)):
            if p != a and y[p] == y[a]:
                n = max(negs, key=lambda k: scores[a, p, k])
                losses.append(max(d[a, p] - d[a, n] + m, 0.0))
    return float(np.mean(losses)) if losses else 0.0


def batch(seed, n=12, dim=8, ids=4, normalise=True):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n, dim)).astype(np.float32)
    if normalise:
        e /= np.linalg.norm(e, axis=1, keepdims=True)
    return rng.integers(0, ids, size=n), e


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("squared", [True, False], ids=["squared", "euclidean"])
@pytest.mark.parametrize(
    "fn,ref",
    [(batch_all_triplet_loss, np_batch_all), (batch_hard_triplet_loss, np_batch_hard), (semi_hard_triplet_loss, np_semi_hard)],
    ids=["all", "batch_hard", "semi_hard"],
)
def test_mined_losses_equal_numpy(fn, ref, seed, squared):
    y, e = batch(seed, normalise=seed % 2 == 0)
    expected = ref(y, e.astype(np.float64), MARGIN, squared)
    assert expected > 0
    np.testing.assert_allclose(float(fn(y, e, MARGIN, squared)), expected, rtol=1e-4, atol=1e-5)


def test_random_negatives_equal_numpy_for_the_same_draw():
    y, e = batch(7)
    scores = np.random.default_rng(1).uniform(size=(len(y),) * 3).astype(np.float32)
    np.testing.assert_allclose(float(random_triplet_loss(y, e, MARGIN, scores=scores)), np_random(y, e.astype(np.float64), MARGIN, scores), rtol=1e-4)


def test_distances_match_numpy_and_hardness_orders_the_losses():
    import tensorflow as tf

    y, e = batch(3, n=16)
    np.testing.assert_allclose(np.asarray(pairwise_squared_distances(e)), np_dist(e.astype(np.float64)), atol=1e-5)
    x = tf.constant(np.repeat(e[:2], 2, axis=0))  # identical rows: distance 0, yet a finite gradient
    with tf.GradientTape() as tape:
        tape.watch(x)
        d = pairwise_distances(x, squared=False)
        total = tf.reduce_sum(d)
    assert float(d[0, 1]) == 0.0 and np.isfinite(tape.gradient(total, x).numpy()).all()
    # batch-hard picks the worst triplet per anchor, so its mean is at least the semi-hard mean
    assert float(batch_hard_triplet_loss(y, e, MARGIN)) >= float(semi_hard_triplet_loss(y, e, MARGIN)) - 1e-6


def test_separated_embeddings_have_zero_loss_and_degenerate_batches_are_safe():
    y = np.array([0, 0, 1, 1, 2, 2])
    e = np.eye(3, dtype=np.float32)[y] * 10.0  # same identity -> same point, others 200 apart
    for mining in ("all", "batch_hard", "semi_hard", "random"):
        assert float(TripletLoss(mining, margin=1.0)(y, e)) == 0.0
    one_identity = np.zeros(4, np.int64)  # no negatives: nothing to learn, not NaN
    assert float(batch_hard_triplet_loss(one_identity, e[:4], 0.2)) == 0.0
    assert float(semi_hard_triplet_loss(one_identity, e[:4], 0.2)) == 0.0


def test_loss_class_round_trips_through_config_and_rejects_unknown_mining():
    import keras

    loss = TripletLoss("semi_hard", margin=0.5, squared=False)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, TripletLoss) and clone.mining == "semi_hard" and clone.margin == 0.5 and not clone.squared
    y, e = batch(11)
    np.testing.assert_allclose(float(clone(y, e)), np_semi_hard(y, e.astype(np.float64), 0.5, squared=False), rtol=1e-4)
    with pytest.raises(ValueError, match="unknown triplet mining"):
        TripletLoss("hardest")
