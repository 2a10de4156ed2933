"""PCA colour augmentation (Krizhevsky, Sutskever & Hinton, "ImageNet Classification
with Deep Convolutional Neural Networks", 2012, section 4.1).

Once per training set: the 3x3 covariance of its RGB pixel values (scaled to
``[0, 1]``), eigen-decomposed into eigenvalues ``lambda_i`` and eigenvectors
``p_i``. Per image: ``alpha_i ~ N(0, 0.1)`` and every pixel gets
``sum_i alpha_i * lambda_i * p_i`` added (times 255 on uint8 pixels). The
decomposition is a small JSON file stored with the run.

Example:
    >>> pca = fit_pca(x_train)                  # uint8 [N, H, W, 3]
    >>> pca.save("pca_colour.json"); PcaColour.load("pca_colour.json").eigenvalues
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ARTIFACT_NAME = "pca_colour.json"


@dataclass(frozen=True)
class PcaColour:
    """The eigen-decomposition of a training set's RGB covariance (pixels in ``[0, 1]``).

    ``eigenvalues``: ``[3]`` descending; ``eigenvectors``: ``[3, 3]``, column ``i`` is
    ``p_i`` (unit length); ``mean``: ``[3]``; ``pixels``: how many pixels were used."""

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    mean: np.ndarray
    pixels: int

    def shift(self, alpha: np.ndarray) -> np.ndarray:
        """The RGB offset (in ``[0, 1]`` units) for coefficients ``alpha`` ``[..., 3]``."""
        return (np.asarray(alpha) * self.eigenvalues) @ self.eigenvectors.T

    def to_dict(self) -> dict:
        return {
            "eigenvalues": self.eigenvalues.tolist(),
            "eigenvectors": self.eigenvectors.tolist(),
            "mean": self.mean.tolist(),
            "pixels": int(self.pixels),
            "pixel_scale": "[0, 1]",
        }

    def save(self, path: str | Path) -> Path:
        """Write the decomposition as JSON (``pca_colour.json`` for MLflow ``log_artifact``)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> PcaColour:
        """Read a file written by ``save``; ValueError naming the file if it is malformed."""
        try:
            raw = json.loads(Path(path).read_text())
            values = np.asarray(raw["eigenvalues"], np.float64)
            vectors = np.asarray(raw["eigenvectors"], np.float64)
            mean = np.asarray(raw["mean"], np.float64)
            if values.shape != (3,) or vectors.shape != (3, 3) or mean.shape != (3,):
                raise ValueError("shapes must be [3], [3, 3] and [3]")
            return cls(values, vectors, mean, int(raw.get("pixels", 0)))
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"PCA colour file {path} cannot be used: {err}") from None


def fit_pca(images: np.ndarray, max_pixels: int = 2_000_000, seed: int = 0) -> PcaColour:
    """Eigen-decompose the RGB covariance of uint8 ``images`` ``[N, H, W, 3]`` (or ``[P, 3]``).

    At most ``max_pixels`` pixels are used (a seeded uniform sample), which pins the
    covariance to well under 1% on natural images. ValueError unless there are 3 channels."""
    images = np.asarray(images)
    if images.shape[-1] != 3:
        raise ValueError(f"PCA colour augmentation needs RGB images (3 channels); received shape {images.shape}")
    pixels = images.reshape(-1, 3)
    if len(pixels) < 2:
        raise ValueError("PCA colour augmentation needs at least 2 pixels to fit")
    if len(pixels) > max_pixels:
        pick = np.random.default_rng(seed).choice(len(pixels), max_pixels, replace=False)
        pixels = pixels[pick]
    pixels = pixels.astype(np.float64) / 255.0
    cov = np.cov(pixels, rowvar=False)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    vectors = vectors * np.where(vectors.sum(0) < 0, -1.0, 1.0)  # a stable sign per vector
    return PcaColour(values, vectors, pixels.mean(0), len(pixels))
