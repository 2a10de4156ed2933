"""Triplet loss with online mining inside the batch (FaceNet, Schroff et al. 2015).

For an anchor A, a positive P (same identity) and a negative N (another one),
with d(x, y) = ||f(x) - f(y)||^2 on the embeddings (or ``squared=False``:
||f(x) - f(y)||):

    L(A, P, N) = max(d(A, P) - d(A, N) + margin, 0)

Which triplets a batch contributes is the *mining* strategy, chosen by name:

- ``all``: every valid triplet; the mean over the triplets with a positive
  loss (averaging over the easy zero-loss ones would drown the signal;
  Hermans et al. 2017, "batch all").
- ``batch_hard``: per anchor, its farthest positive and its closest negative;
  the mean over anchors that have both (Hermans et al. 2017).
- ``semi_hard``: per anchor-positive pair, the closest negative that is still
  farther than the positive (d(A, N) > d(A, P)); if none is, the farthest
  negative; the mean over pairs (FaceNet; the same rule as
  tensorflow-addons' TripletSemiHardLoss, which does not run on Keras 3).
- ``random``: per anchor-positive pair, a negative drawn at random; the
  baseline the notes warn teaches little.

Labels are integer identities ``[N]`` (or ``[N, 1]``); embeddings are
``[N, D]`` floats. Batches should hold several images per identity: see
``pipelines.pk_sampler``.

Example:
    >>> loss = TripletLoss(mining="batch_hard", margin=0.2)
    >>> model.compile(optimizer="adam", loss=loss)   # y = identity labels
"""

from __future__ import annotations

import keras
from keras import ops

MININGS = ("all", "batch_hard", "semi_hard", "random")


def pairwise_squared_distances(embeddings):
    """``[N, D]`` -> ``[N, N]`` squared Euclidean distances (clipped at 0, exact 0 on the diagonal)."""
    e = ops.cast(embeddings, "float32")
    sq = ops.sum(ops.square(e), axis=1)
    d = sq[:, None] - 2.0 * ops.matmul(e, ops.transpose(e)) + sq[None, :]
    d = ops.maximum(d, 0.0)
    return d * (1.0 - ops.eye(ops.shape(e)[0], dtype=d.dtype))


def pairwise_distances(embeddings, squared: bool = True):
    """Squared distances, or (``squared=False``) Euclidean ones with a finite gradient at 0."""
    d = pairwise_squared_distances(embeddings)
    if squared:
        return d
    zero = ops.cast(d <= 1e-16, d.dtype)
    return ops.sqrt(d + zero * 1e-16) * (1.0 - zero)


def _masks(labels):
    """(positive [N, N], negative [N, N]) float masks; positives exclude i == j."""
    labels = ops.reshape(labels, (-1,))
    same = ops.cast(ops.equal(labels[:, None], labels[None, :]), "float32")
    eye = ops.eye(ops.shape(labels)[0], dtype="float32")
    return same - eye, 1.0 - same


def _safe_mean(values, weights):
    total = ops.sum(weights)
    return ops.sum(values * weights) / ops.maximum(total, 1.0)


def batch_all_triplet_loss(labels, embeddings, margin: float = 0.2, squared: bool = True):
    """Mean of ``max(d(a,p) - d(a,n) + margin, 0)`` over valid triplets with a positive loss."""
    d = pairwise_distances(embeddings, squared)
    pos, neg = _masks(labels)
    loss = d[:, :, None] - d[:, None, :] + margin  # [a, p, n]
    valid = pos[:, :, None] * neg[:, None, :]
    loss = ops.maximum(loss, 0.0) * valid
    active = ops.cast(loss > 1e-16, "float32")
    return _safe_mean(loss, active)


def batch_hard_triplet_loss(labels, embeddings, margin: float = 0.2, squared: bool = True):
    """Mean over anchors of ``max(max_p d(a,p) - min_n d(a,n) + margin, 0)``."""
    d = pairwise_distances(embeddings, squared)
    pos, neg = _masks(labels)
    hardest_pos = ops.max(d * pos, axis=1)
    far = ops.max(d) + 1.0
    hardest_neg = ops.min(d + far * (1.0 - neg), axis=1)
    valid = ops.cast((ops.sum(pos, axis=1) > 0) & (ops.sum(neg, axis=1) > 0), "float32")
    return _safe_mean(ops.maximum(hardest_pos - hardest_neg + margin, 0.0), valid)


def semi_hard_triplet_loss(labels, embeddings, margin: float = 0.2, squared: bool = True):
    """Mean over anchor-positive pairs, each with its semi-hard negative (see the module docstring)."""
    d = pairwise_distances(embeddings, squared)
    pos, neg = _masks(labels)
    d_ap = d[:, :, None]  # [a, p, 1]
    d_an = d[:, None, :]  # [a, 1, n]
    far = ops.max(d) + 1.0
    outside = neg[:, None, :] * ops.cast(d_an > d_ap, "float32")  # negatives farther than the positive
    closest_outside = ops.min(d_an + far * (1.0 - outside), axis=2)  # [a, p]
    farthest_neg = ops.max(d * neg, axis=1)[:, None]  # [a, 1]
    has_outside = ops.sum(outside, axis=2) > 0
    chosen = ops.where(has_outside, closest_outside, farthest_neg)
    valid = pos * ops.cast(ops.sum(neg, axis=1) > 0, "float32")[:, None]
    return _safe_mean(ops.maximum(d - chosen + margin, 0.0), valid)


def random_triplet_loss(labels, embeddings, margin: float = 0.2, scores=None, seed=None, squared: bool = True):
    """Mean over anchor-positive pairs with a random negative per pair.

    ``scores`` ``[N, N, N]`` (uniform noise) picks the negative of pair (a, p)
    as the negative n with the largest ``scores[a, p, n]``; drawn from ``seed``
    when not given (pass it to reproduce a draw).
    """
    d = pairwise_distances(embeddings, squared)
    pos, neg = _masks(labels)
    n = ops.shape(d)[0]
    if scores is None:
        scores = keras.random.uniform((n, n, n), seed=seed)
    masked = ops.where(neg[:, None, :] > 0, scores, -1.0)
    pick = ops.one_hot(ops.argmax(masked, axis=2), n)  # [a, p, n]
    d_an = ops.sum(pick * d[:, None, :], axis=2)
    valid = pos * ops.cast(ops.sum(neg, axis=1) > 0, "float32")[:, None]
    return _safe_mean(ops.maximum(d - d_an + margin, 0.0), valid)


_LOSSES = {
    "all": batch_all_triplet_loss,
    "batch_hard": batch_hard_triplet_loss,
    "semi_hard": semi_hard_triplet_loss,
}


@keras.saving.register_keras_serializable(package="convforge")
class TripletLoss(keras.losses.Loss):
    """Keras loss: ``y_true`` identity labels ``[N]``, ``y_pred`` embeddings ``[N, D]`` -> scalar.

    Args:
        mining: one of ``all``, ``batch_hard``, ``semi_hard``, ``random``.
        margin: the margin alpha; keeps f from collapsing to a constant.
        seed: seed of the random negatives (``mining="random"`` only).
        squared: compare squared distances (the FaceNet loss, the default) or
            plain Euclidean ones, whose gradient does not vanish as points
            meet (Hermans et al. found batch-hard collapses less with them).
    """

    def __init__(self, mining: str = "batch_hard", margin: float = 0.2, seed: int | None = None, squared: bool = True, name: str | None = None, **kwargs):
        if mining not in MININGS:
            raise ValueError(f"unknown triplet mining {mining!r}; choose one of {', '.join(MININGS)}. Received: mining={mining!r}")
        super().__init__(name=name or f"triplet_{mining}", **kwargs)
        self.mining = mining
        self.margin = float(margin)
        self.seed = seed
        self.squared = bool(squared)
        self._seed_gen = keras.random.SeedGenerator(seed) if mining == "random" else None

    def call(self, y_true, y_pred):
        if self.mining == "random":
            return random_triplet_loss(y_true, y_pred, self.margin, seed=self._seed_gen, squared=self.squared)
        return _LOSSES[self.mining](y_true, y_pred, self.margin, self.squared)

    def get_config(self):
        config = super().get_config()
        config.update({"mining": self.mining, "margin": self.margin, "seed": self.seed, "squared": self.squared})
        return config
