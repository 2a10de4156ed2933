"""Real data in: the IDX reader, the catalog, folder/CSV sources with bad files, splits."""

import gzip
import struct

import numpy as np
import pytest
import tensorflow as tf

from pipelines.catalog import load_arrays, read_idx
from pipelines.sources import csv_manifest, image_folder
from pipelines.splits import batch, load_splits, permuted_batches


def test_idx_reader_against_a_hand_written_file(tmp_path):
    values = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 4) + values.tobytes())
    np.testing.assert_array_equal(read_idx(path), values)
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 4) + values.tobytes()[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_fashion_mnist_is_the_real_60k_10k_split():
    d = load_arrays("fashion_mnist")
    assert d.x_train.shape == (60000, 28, 28, 1) and d.x_test.shape == (10000, 28, 28, 1)
    assert d.x_train.dtype == np.uint8
    assert np.bincount(d.y_train).tolist() == [6000] * 10
    assert np.bincount(d.y_test).tolist() == [1000] * 10
    assert d.class_names[9] == "Ankle boot"


def test_splits_are_seeded_and_disjoint():
    a = load_splits("digits", seed=3, val_fraction=0.2)
    b = load_splits("digits", seed=3, val_fraction=0.2)
    xa = np.stack([x for x, _ in a.train.as_numpy_iterator()])
    xb = np.stack([x for x, _ in b.train.as_numpy_iterator()])
    np.testing.assert_array_equal(xa, xb)
    assert a.sizes["train"] + a.sizes["val"] == len(load_arrays("digits").x_train)
    resized = load_splits("digits", seed=3, image_size=(16, 16), channels=3, train_limit=10)
    x, y = next(iter(batch(resized.train, 4)))
    assert x.shape == (4, 16, 16, 3) and x.dtype == tf.uint8 and resized.input_shape == (16, 16, 3)



def _epochs(ds, count):
    it = []
    for _ in range(count):
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
        it.append((xs, ys))
    return it


def test_permuted_batches_give_a_new_full_permutation_each_epoch_repeatably():
    s = load_splits("digits", seed=3, val_fraction=0.2, train_limit=203)
    x, y = s.train_xy
    ds = permuted_batches(x, y, 32, seed=7)
    epochs = _epochs(ds, 2)
    for xs, ys in epochs:
        assert [len(b) for b in ys] == [32] * 6 + [11]  # full batches, then the remainder
        images = np.concatenate(xs)
        # every training image exactly once, with its own label: compare against the arrays by content
        order = [int(np.flatnonzero((x == im).all(axis=(1, 2, 3)))[0]) for im in images]
        assert sorted(order) == list(range(len(x)))
        np.testing.assert_array_equal(np.concatenate(ys), y[order])
    assert not np.array_equal(np.concatenate(epochs[0][1]), np.concatenate(epochs[1][1]))  # a new order each epoch
    again = _epochs(permuted_batches(x, y, 32, seed=7), 2)  # the same seed: the same epochs, run after run
    for (xa, _), (xb, _) in zip(epochs, again, strict=True):
        np.testing.assert_array_equal(np.concatenate(xa), np.concatenate(xb))
    resized = load_splits("digits", seed=3, image_size=(16, 16), channels=3, train_limit=10)
    bx, by = next(iter(permuted_batches(*resized.train_xy, 4, seed=1, convert=resized.convert)))
    assert bx.shape == (4, 16, 16, 3) and bx.dtype == tf.uint8


@pytest.fixture
def image_dir(tmp_path):
    d = load_arrays("fashion_mnist")
    root = tmp_path / "data"
    for label in (0, 1):
        (root / d.class_names[label].replace("/", "-")).mkdir(parents=True)
    names = [d.class_names[i].replace("/", "-") for i in (0, 1)]
    idx = {0: np.flatnonzero(d.y_test == 0)[:6], 1: np.flatnonzero(d.y_test == 1)[:6]}
    for label, rows in idx.items():
        for k, i in enumerate(rows):
            png = tf.io.encode_png(d.x_test[i]).numpy()
            (root / names[label] / f"{k}.png").write_bytes(png)
    (root / names[0] / "empty.png").write_bytes(b"")
    (root / names[0] / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / names[1] / "text.jpg").write_bytes(b"this is not an image at all")
    return root


def test_image_folder_skips_and_counts_bad_files(image_dir):
    files = image_folder(image_dir)
    assert len(files.paths) == 12
    assert dict(files.skipped) == {"empty_file": 1, "truncated": 1, "not_an_image": 1}
    splits = load_splits(f"folder:{image_dir}", seed=0, val_fraction=0.0, test_fraction=0.0)
    images = list(splits.train.as_numpy_iterator())
    assert len(images) == 12 and images[0][0].shape == (28, 28, 3)


def test_csv_manifest_refuses_paths_escaping_the_root(image_dir, tmp_path):
    good = sorted(p for p in image_dir.rglob("[0-9].png"))[:3]
    manifest = image_dir / "manifest.csv"
    lines = ["path,label"] + [f"{p.relative_to(image_dir)},a" for p in good]
    lines += ["../outside.png,a", "/etc/passwd,b", ",missing"]
    manifest.write_text("\n".join(lines) + "\n")
    files = csv_manifest(manifest)
    assert len(files.paths) == 3
    assert files.skipped["escapes_root"] == 2 and files.skipped["bad_manifest_line"] == 1


def test_install_data_uses_a_present_folder_and_refuses_unknown_names(tmp_path, monkeypatch, capsys):
    from pipelines.install_data import ensure_fashion_mnist, main

    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    monkeypatch.setenv("CONVFORGE_FASHION_MNIST", str(tmp_path))
    assert ensure_fashion_mnist() == f"idx:{tmp_path}"
    assert main(["digits"]) == 0 and "digits: ready (bundled)" in capsys.readouterr().out
    assert main(["no_such_set"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown dataset 'no_such_set'") and err.count("\n") == 1
