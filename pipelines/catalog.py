"""Built-in datasets with real loaders that work offline where possible.

``fashion_mnist``: the IDX files of Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist``; ``$CONVFORGE_FASHION_MNIST`` overrides),
else the ``keras.datasets`` download, else one clear error naming the fix.
``digits``: scikit-learn's 1,797 8x8 digits (bundled in the wheel), scaled to
uint8 0..255.

Example:
    >>> data = load_arrays("fashion_mnist")
    >>> data.x_train.shape, data.x_train.dtype
    ((60000, 28, 28, 1), dtype('uint8'))
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


@dataclass
class ArrayDataset:
    """A dataset held in memory: uint8 images ``[N, H, W, C]`` and int64 labels ``[N]``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str

    def fingerprint(self) -> str:
        """A short hash of the data (shapes plus strided samples of every array)."""
        h = hashlib.sha256(self.name.encode())
        for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(str(arr.shape).encode())
            flat = arr.reshape(-1)
            h.update(np.ascontiguousarray(flat[:: max(1, flat.size // 65536)]).tobytes())
        return h.hexdigest()[:16]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) as used by MNIST and Fashion-MNIST."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtype_code, ndim = data[2], data[3]
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if dtype_code not in dtypes:
        raise ValueError(f"{path}: unknown IDX element type 0x{dtype_code:02x}")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtypes[dtype_code], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: truncated IDX file ({arr.size} of {int(np.prod(shape))} values)")
    return arr.reshape(shape)


def fashion_mnist_dir() -> Path | None:
    candidates = [os.environ.get("CONVFORGE_FASHION_MNIST", ""), *FASHION_MNIST_DIRS]
    for d in candidates:
        if d and (Path(d) / "train-images-idx3-ubyte.gz").is_file():
            return Path(d)
    return None


def _load_fashion_mnist() -> ArrayDataset:
    d = fashion_mnist_dir()
    if d is not None:
        parts = [read_idx(d / f"{s}-ubyte.gz") for s in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")]
        source = f"idx:{d}"
    else:
        try:
            import keras

            (xtr, ytr), (xte, yte) = keras.datasets.fashion_mnist.load_data()
        except Exception as err:  # download failures raise many types
            raise DatasetUnavailable(
                "fashion_mnist is not available offline and the download failed "
                f"({type(err).__name__}); install it with `apt-get install dataset-fashion-mnist` "
                "or set CONVFORGE_FASHION_MNIST to a folder with the IDX .gz files"
            ) from None
        parts, source = [xtr, ytr, xte, yte], "keras.datasets"
    xtr, ytr, xte, yte = parts
    return ArrayDataset("fashion_mnist", xtr[..., None], ytr.astype(np.int64), xte[..., None], yte.astype(np.int64), FASHION_CLASSES, source)


def _load_digits() -> ArrayDataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)  # a fixed, documented test split: 20% of the images
    order = rng.permutation(len(x))
    n_test = len(x) // 5
    te, tr = order[:n_test], order[n_test:]
    return ArrayDataset("digits", x[tr], y[tr], x[te], y[te], [str(i) for i in range(10)], "sklearn.datasets.load_digits")


class DatasetUnavailable(RuntimeError):
    """A catalog dataset that cannot be loaded here; the message says how to get it."""


CATALOG: dict[str, tuple[str, Callable[[], ArrayDataset], Callable[[], bool]]] = {
    "fashion_mnist": (
        "Fashion-MNIST, 60k/10k 28x28 grey, 10 classes (Debian dataset-fashion-mnist or keras download)",
        _load_fashion_mnist,
        lambda: fashion_mnist_dir() is not None,
    ),
    "digits": ("scikit-learn digits, 1,797 8x8 grey, 10 classes (bundled)", _load_digits, lambda: True),
}


DATASET_FORMS = (
    ("folder:PATH", "classification", "images in PATH/<class>/ (Keras image_dataset_from_directory layout)"),
    ("csv:PATH", "classification", "a manifest with the header path,label (paths relative to the CSV)"),
    ("scenes:NAME", "detection", "labelled scenes made here: catalog objects pasted on real photos (e.g. scenes:fashion_mnist)"),
    ("voc:DIR", "detection", "Pascal VOC: DIR/Annotations/*.xml beside DIR/JPEGImages/"),
    ("coco:FILE.json", "detection", "COCO instances JSON; images in images/ beside the file"),
    ("yolo:DIR", "detection", "YOLO txt labels: DIR/images/ + DIR/labels/ (+ classes.txt)"),
)


def names() -> list[str]:
    return sorted(CATALOG)


def describe() -> list[tuple[str, str, bool]]:
    """(name, description, available offline) for every catalog dataset."""
    return [(n, CATALOG[n][0], CATALOG[n][2]()) for n in names()]


def load_arrays(name: str) -> ArrayDataset:
    """Load catalog dataset ``name`` into memory (cached per process)."""
    if name not in CATALOG:
        raise KeyError(f"unknown dataset {name!r}; choose one of: {', '.join(names())}")
    if name not in _CACHE:
        _CACHE[name] = CATALOG[name][1]()
    return _CACHE[name]


_CACHE: dict[str, ArrayDataset] = {}
