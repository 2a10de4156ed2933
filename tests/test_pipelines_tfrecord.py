"""TFRecord shards: pack (CLI and API), interleaved parallel read, corrupt inputs."""

from collections import Counter

import numpy as np
from skimage import data

from pipelines.catalog import load_arrays
from pipelines.sources import image_folder
from pipelines.tfrecord import encode_png, files_items, read_shards, write_shards
from tasks.cli.main import main


def test_pack_cli_round_trips_fashion_mnist_exactly(tmp_path, monkeypatch):
    fm = load_arrays("fashion_mnist")
    import pipelines.catalog as catalog

    small = catalog.ArrayDataset("fashion_mnist", fm.x_train[:120], fm.y_train[:120], fm.x_test[:10], fm.y_test[:10],
                                 fm.class_names, fm.source)
    monkeypatch.setitem(catalog._CACHE, "fashion_mnist", small)
    assert main(["data", "pack", "fashion_mnist", str(tmp_path / "fm"), "--shards", "3"]) == 0
    shards = read_shards(tmp_path / "fm")
    assert len(shards.paths) == 3 and shards.count == 120 and shards.class_names == list(fm.class_names)
    assert shards.dataset.element_spec[0].shape == (28, 28, 1)
    got = list(shards.dataset.as_numpy_iterator())
    images = np.stack([g[0] for g in got])
    labels = np.array([g[1] for g in got])
    # written round-robin, read interleaving all 3 shards: the original order, exactly
    assert (images == small.x_train).all() and (labels == small.y_train).all()
    # one shard at a time: the same images, shard by shard
    one = list(read_shards(tmp_path / "fm", cycle_length=1).dataset.as_numpy_iterator())
    assert [int(label) for _, label in one] == small.y_train[[*range(0, 120, 3), *range(1, 120, 3), *range(2, 120, 3)]].tolist()


def test_folder_pack_skips_corrupt_files_and_survives_a_damaged_shard(tmp_path):
    root = tmp_path / "photos"
    for cls, name in (("cat", "chelsea"), ("coffee", "coffee"), ("rocket", "rocket")):
        (root / cls).mkdir(parents=True)
        image = getattr(data, name)()[::8, ::8]
        for i in range(3):
            (root / cls / f"{i}.png").write_bytes(encode_png(np.ascontiguousarray(np.roll(image, i, 0))))
    (root / "cat" / "empty.png").write_bytes(b"")
    good = (root / "coffee" / "0.png").read_bytes()
    (root / "coffee" / "cut.png").write_bytes(good[: len(good) // 3])
    files = image_folder(root)
    assert files.skipped == Counter({"empty_file": 1, "truncated": 1})
    items = list(files_items(files.paths, files.labels, root)) + [(b"\x89PNG\r\n\x1a\n garbage", 0, "bad.png")]
    paths = write_shards(items, tmp_path / "tfr", 2, files.class_names, channels=3, skipped=files.skipped)
    shards = read_shards(tmp_path / "tfr")
    assert shards.skipped == Counter({"empty_file": 1, "truncated": 2})
    assert len(list(shards.dataset)) == 9
    # damage one shard: its tail is lost with a warning, the epoch completes
    raw = paths[0].read_bytes()
    paths[0].write_bytes(raw[: len(raw) // 2])
    survived = list(read_shards(tmp_path / "tfr").dataset.as_numpy_iterator())
    assert 4 <= len(survived) < 9
    assert all(image.shape[2] == 3 for image, _ in survived)
