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


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]):
    """Row-normalised confusion matrix with counts in the cells."""
    k = len(class_names)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.55 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(f"confusion matrix (accuracy {np.trace(counts) / max(counts.sum(), 1):.4f})")
    fig.tight_layout()
    return fig
