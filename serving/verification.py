"""Face verification by a distance threshold: pairs, ROC, equal-error rate.

Two images are "the same person" when d = ||f(x1) - f(x2)||^2 <= threshold.
The threshold is chosen on validation pairs at the equal-error rate (EER),
where the false-accept rate (different people accepted) equals the
false-reject rate (the same person refused), and is shipped with the encoder
as ``assets/verification.json`` so every client uses the same one.

Example:
    >>> d, same = pair_distances(embeddings, labels, max_pairs=20000, seed=0)
    >>> v = choose_threshold(d, same)
    >>> v.threshold, v.eer, v.auc
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

VERIFICATION_FILE = "verification.json"


@dataclass
class Verification:
    """A threshold on squared distance and how it performs on the pairs it was chosen on."""

    threshold: float
    eer: float
    auc: float
    accuracy: float  # balanced accuracy (mean of both acceptance rates) at the threshold
    pairs: int

    def to_json(self, **extra) -> str:
        return json.dumps({**asdict(self), **extra}, indent=2)


def pair_indices(labels: np.ndarray, max_pairs: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (i, j) of pairs: all N(N-1)/2 pairs when there are at most ``max_pairs``
    (or ``max_pairs`` is None); else a balanced random sample of ``max_pairs // 2``
    same-identity pairs and as many different-identity pairs, drawn without listing all pairs."""
    y = np.asarray(labels).reshape(-1)
    n = len(y)
    if max_pairs is None or n * (n - 1) // 2 <= max_pairs:
        return np.triu_indices(n, k=1)
    return _sample_pairs(y, max_pairs // 2, np.random.default_rng(seed))


def pair_distances(embeddings: np.ndarray, labels: np.ndarray, max_pairs: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Squared distances and same-identity flags of the pairs ``pair_indices`` picks from ``embeddings`` ``[N, D]``."""
    e = np.asarray(embeddings, np.float32)
    y = np.asarray(labels).reshape(-1)
    i, j = pair_indices(y, max_pairs, seed)
    return np.sum((e[i] - e[j]) ** 2, axis=1), y[i] == y[j]


def _sample_pairs(y: np.ndarray, half: int, rng) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(y, kind="stable")
    values, starts, counts = np.unique(y[order], return_index=True, return_counts=True)
    group = np.searchsorted(values, y)  # identity index of every row
    rank = np.empty(len(y), np.int64)
    rank[order] = np.arange(len(y)) - starts[group[order]]  # position of every row inside its identity
    candidates = np.flatnonzero(counts[group] > 1)
    pos_i = rng.choice(candidates, half) if len(candidates) else np.zeros(0, np.int64)
    g = group[pos_i]
    r = rng.integers(0, counts[g] - 1) if len(g) else np.zeros(0, np.int64)  # one of the other members...
    pos_j = order[starts[g] + r + (r >= rank[pos_i])]  # ...skipping the anchor itself
    neg_i, neg_j = rng.integers(0, len(y), 4 * half), rng.integers(0, len(y), 4 * half)
    keep = np.flatnonzero(y[neg_i] != y[neg_j])[:half]
    return np.concatenate([pos_i, neg_i[keep]]), np.concatenate([pos_j, neg_j[keep]])


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-accept rate, true-accept rate, threshold) as the distance threshold grows."""
    fpr, tpr, thr = roc_curve(np.asarray(same, bool), -np.asarray(distances, np.float64))
    return fpr, tpr, np.maximum(-thr, 0.0)


def choose_threshold(distances: np.ndarray, same: np.ndarray) -> Verification:
    """The equal-error-rate threshold on ``distances`` for the ``same`` flags."""
    same = np.asarray(same, bool)
    if same.all() or not same.any():
        raise ValueError("verification pairs need both same-identity and different-identity pairs")
    fpr, tpr, thr = roc(distances, same)
    fnr = 1.0 - tpr
    k = int(np.argmin(np.abs(fnr - fpr)))
    threshold = float(thr[k]) if np.isfinite(thr[k]) else float(np.max(distances))
    accept = np.asarray(distances) <= threshold
    accuracy = 0.5 * (np.mean(accept[same]) + np.mean(~accept[~same]))
    return Verification(
        threshold=threshold,
        eer=float((fnr[k] + fpr[k]) / 2),
        auc=float(roc_auc_score(same, -np.asarray(distances, np.float64))),
        accuracy=float(accuracy),
        pairs=int(len(same)),
    )


def read_verification(export_path: str | Path) -> dict:
    """The ``verification.json`` shipped with an exported encoder."""
    p = Path(export_path) / "assets" / VERIFICATION_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{export_path} has no assets/{VERIFICATION_FILE}; it is not a face encoder export")
    return json.loads(p.read_text())
