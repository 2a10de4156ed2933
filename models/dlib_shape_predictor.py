"""dlib's face landmark predictor (an ensemble of regression trees, Kazemi & Sullivan 2014) in NumPy.

``shape_predictor_5_face_landmarks.dat`` (face-recognition-models) places the
five points dlib's face chips are built from: the outer and inner corner of
each eye (image right eye first) and the base of the nose;
``shape_predictor_68_face_landmarks.dat`` the 68 points of iBUG 300-W (jaw
0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67). The predictor
starts from its mean shape inside a face box and refines it through a cascade
of forests: each cascade reads the grey level ((R + G + B) / 3, integer) at
pixels placed relative to the current shape, every depth-4 tree compares two
of them against a threshold at each node, and the reached leaves' offsets are
added to the shape (dlib/image_processing/shape_predictor.h).

The file is dlib's serialisation (``models.dlib_serialization``): version 1,
the initial shape (a float matrix), the forests (per tree: split features
``(idx1, idx2, threshold)`` and leaf vectors), per cascade the anchor point
and the offset of every feature pixel. Parsed once, then cached as ``.npz``.

Example:
    >>> predictor = ShapePredictor.load()             # the packaged 5-point model (parts=68: the 68-point one)
    >>> predictor(image, box).shape                   # box (left, top, right, bottom), dlib's HOG box convention
    (5, 2)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.dlib_serialization import DlibFormatError, _Reader

FILE_5_POINTS = "shape_predictor_5_face_landmarks.dat"
SHA256_5_POINTS = "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"
FILE_68_POINTS = "shape_predictor_68_face_landmarks.dat"  # iBUG 300-W's 68 points (jaw, brows, nose, eyes, mouth)
SHA256_68_POINTS = "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"
PACKAGED = {5: (FILE_5_POINTS, SHA256_5_POINTS), 68: (FILE_68_POINTS, SHA256_68_POINTS)}


def _matrix(r: _Reader) -> np.ndarray:
    rows, cols = -r.integer(), -r.integer()
    if rows < 0 or cols < 0 or rows * cols > 10_000:
        raise DlibFormatError("bad matrix size")
    return _reals(r, rows * cols).reshape(rows, cols)


def _reals(r: _Reader, count: int) -> np.ndarray:
    """``count`` dlib floats (mantissa, exponent integer pairs) in one tight loop: float32 ``[count]``."""
    data, pos, out = r.raw, r.pos, np.empty(count, np.float64)
    mantissas, exponents = [0] * count, [0] * count
    try:
        for i in range(count):
            for target in (mantissas, exponents):
                c = data[pos]
                n = c & 0x0F
                v = int.from_bytes(data[pos + 1 : pos + 1 + n], "little")
                target[i] = -v if c & 0x80 else v
                pos += 1 + n
    except IndexError:
        raise DlibFormatError("the file ends too early") from None
    r.pos = pos
    out[:] = np.ldexp(np.array(mantissas, np.float64), np.minimum(np.array(exponents, np.int64), 1000))
    return out.astype(np.float32)


def _parse(data: bytes) -> dict[str, np.ndarray]:
    r = _Reader(data)
    if r.integer() != 1:
        raise DlibFormatError("not a dlib shape predictor (bad version)")
    initial = _matrix(r).reshape(-1)
    splits, leaves = [], []
    for _ in range(r.integer()):  # cascades
        cascade_splits, cascade_leaves = [], []
        for _ in range(r.integer()):  # trees
            cascade_splits.append([(r.integer(), r.integer(), r.real()) for _ in range(r.integer())])
            cascade_leaves.append([_matrix(r).reshape(-1) for _ in range(r.integer())])
        splits.append(cascade_splits)
        leaves.append(cascade_leaves)
    anchors = [[r.integer() for _ in range(r.integer())] for _ in range(r.integer())]
    deltas = [[(r.real(), r.real()) for _ in range(r.integer())] for _ in range(r.integer())]
    if r.pos != len(r.data):
        raise DlibFormatError("trailing bytes after the predictor")
    s = np.array(splits, np.float64)  # [cascades, trees, splits, 3]
    return {
        "initial_shape": initial,
        "split_index": s[..., :2].astype(np.int64),
        "split_threshold": s[..., 2].astype(np.float32),
        "leaf_values": np.array(leaves, np.float32),  # [cascades, trees, leaves, 2 * parts]
        "anchor": np.array(anchors, np.int64),  # [cascades, pixels]
        "delta": np.array(deltas, np.float32),  # [cascades, pixels, 2]
    }


def _similarity_matrix(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x2 rotation-and-scale part of the least-squares similarity from ``source`` to ``target`` ``[K, 2]``."""
    from skimage.transform import SimilarityTransform

    return SimilarityTransform.from_estimate(source.astype(np.float64), target.astype(np.float64)).params[:2, :2]


@dataclass
class ShapePredictor:
    """A parsed predictor; call it on a uint8 RGB image and a box to get ``[parts, 2]`` integer (x, y) landmarks."""

    initial_shape: np.ndarray
    split_index: np.ndarray
    split_threshold: np.ndarray
    leaf_values: np.ndarray
    anchor: np.ndarray
    delta: np.ndarray

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, sha256: str | None = None, parts: int = 5) -> ShapePredictor:
        """Read a predictor file (default: the packaged ``parts``-point one, 5 or 68), checking its SHA-256; cached as ``.npz``."""
        from models.dlib_face_resnet import WeightsCorruptError, cache_dir, package_weights_path

        if path is None:
            name, sha256 = PACKAGED[parts]
            path = package_weights_path().parent / name
        path = Path(path)
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if sha256 and digest != sha256:
            raise WeightsCorruptError(f"landmark file {path} is corrupt (SHA-256 mismatch); "
                                      "reinstall it: pip install --force-reinstall face-recognition-models==0.3.0")
        cached = cache_dir() / f"dlib_shape_predictor_{digest[:16]}.npz"
        if cached.is_file():
            try:
                with np.load(cached) as arrays:
                    return cls(**{k: arrays[k] for k in cls.__dataclass_fields__})
            except (OSError, ValueError, KeyError):
                pass
        try:
            arrays = _parse(data)
        except (DlibFormatError, ValueError) as err:
            raise WeightsCorruptError(f"landmark file {path}: not a readable dlib shape predictor ({err})") from None
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, cached)
        except OSError:
            pass
        return cls(**arrays)

    @property
    def parts(self) -> int:
        return self.initial_shape.size // 2

    def __call__(self, image: np.ndarray, box) -> np.ndarray:
        """Landmarks int64 ``[parts, 2]`` of the face in ``box`` = (left, top, right, bottom), inclusive pixels."""
        left, top, right, bottom = (float(v) for v in box)
        image = np.asarray(image)
        h, w = image.shape[:2]
        origin, size = np.array([left, top]), np.array([right - left, bottom - top])  # (0,0) -> tl, (1,1) -> br
        reference = self.initial_shape.reshape(-1, 2)
        shape = reference.copy()
        depth = int(np.log2(self.leaf_values.shape[2]))
        trees = np.arange(self.split_index.shape[1])
        for cascade in range(self.split_index.shape[0]):
            m = _similarity_matrix(reference, shape).astype(np.float32)
            points = self.delta[cascade] @ m.T + shape[self.anchor[cascade]]
            pixel = np.floor(points * size + origin + 0.5).astype(np.int64)
            inside = (pixel[:, 0] >= 0) & (pixel[:, 1] >= 0) & (pixel[:, 0] < w) & (pixel[:, 1] < h)
            sampled = image[np.clip(pixel[:, 1], 0, h - 1), np.clip(pixel[:, 0], 0, w - 1)].astype(np.int32)
            grey = sampled.sum(axis=-1) // 3 if sampled.ndim == 2 else sampled  # dlib's intensity: (R + G + B) / 3
            values = np.where(inside, grey, 0).astype(np.float32)
            node = np.zeros(len(trees), np.int64)
            for _ in range(depth):
                i1, i2 = self.split_index[cascade, trees, node, 0], self.split_index[cascade, trees, node, 1]
                go_left = values[i1] - values[i2] > self.split_threshold[cascade, trees, node]
                node = np.where(go_left, 2 * node + 1, 2 * node + 2)
            leaf = node - (2**depth - 1)
            shape = shape + self.leaf_values[cascade, trees, leaf].sum(axis=0).reshape(-1, 2)
        return np.floor(shape * size + origin + 0.5).astype(np.int64)
