"""Figures people would rather look at than read: training curves, confusion matrix.

Each function returns a matplotlib Figure (Agg backend, no display needed);
``save`` writes it as PNG and closes it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (PNG) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def training_curves(history: dict[str, list[float]]):
    """One panel per metric (loss, accuracy, ...), train and validation curves together."""
    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.5 * max(1, len(names)), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], marker="o", label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


FULL_MATRIX_CLASSES = 30  # up to this many classes the whole matrix is drawn
TOP_CONFUSED = 20  # beyond it, only the classes with the most errors
LABEL_CHARS = 24  # tick labels are cut to this many characters


def short_label(name: str, limit: int = LABEL_CHARS) -> str:
    """A class name fit for a tick label: one line, at most ``limit`` characters, no mathtext ``$``."""
    text = " ".join(str(name).split()).replace("$", r"\$")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def most_confused(y_true: np.ndarray, y_pred: np.ndarray, k: int, top: int = TOP_CONFUSED) -> np.ndarray:
    """Indices of the ``top`` classes with the most errors (as the true or the predicted class), most first.

    Memory is O(len(y_true) + k): no k x k matrix is built."""
    wrong = y_true != y_pred
    errors = np.bincount(y_true[wrong], minlength=k) + np.bincount(y_pred[wrong], minlength=k)
    order = np.lexsort((np.arange(k), -errors))  # most errors first, ties by class index
    return np.sort(order[:top]) if k > top else np.arange(k)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str], max_classes: int = FULL_MATRIX_CLASSES):
    """Row-normalised confusion matrix with counts in the cells; its cost is bounded whatever the class count.

    Up to ``max_classes`` classes the whole matrix is drawn; beyond, the
    ``TOP_CONFUSED`` classes with the most errors (rows still normalised by
    each class's full count). Labels are cut to ``LABEL_CHARS`` characters, so
    the canvas stays under ~2,100 x 2,000 px for 10 or 100,000 classes.
    """
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    k = len(class_names)
    shown = np.arange(k) if k <= max_classes else most_confused(y_true, y_pred, k)
    index = np.full(k, -1, np.int64)
    index[shown] = np.arange(len(shown))
    n = len(shown)
    counts = np.zeros((n, n), dtype=np.int64)
    keep = (index[y_true] >= 0) & (index[y_pred] >= 0)
    np.add.at(counts, (index[y_true[keep]], index[y_pred[keep]]), 1)
    support = np.bincount(y_true, minlength=k)[shown]
    rates = counts / np.maximum(support, 1)[:, None]
    labels = [short_label(class_names[i]) for i in shown]
    size = max(4.0, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    accuracy = float(np.mean(y_true == y_pred)) if len(y_true) else 0.0
    title = f"confusion matrix (accuracy {accuracy:.4f})"
    if n < k:
        title += f"\nthe {n} of {k} classes with the most errors"
    ax.set_title(title)
    fig.tight_layout()
    return fig
