"""Folder and CSV datasets with hostile names and contents, and exports of 1D/3D models through the
image commands: each works or is one line naming the input; nothing is dropped without a count."""

import os

import mlflow
import numpy as np
import pytest
from reliability_faults import encode, real_images

from pipelines.sources import csv_manifest, image_folder
from pipelines.splits import load_splits
from tasks.cli.main import main
from tasks.core.recipe import load_recipe
from tasks.core.trainer import train

IMAGES, _ = real_images(8, 16, seed=2)


def _folder(root, classes=("a", "b"), per_class=3):
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / c / f"{i}.png").write_bytes(encode(IMAGES[i]))
    return root


def _damaged_body() -> bytes:
    data = bytearray(encode(real_images(1, 64, seed=4)[0][0]))
    data[60:-20] = bytes(len(data) - 80)  # header and IEND trailer intact: only decoding finds the damage
    return bytes(data)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_a_file_name_that_is_not_utf8_is_skipped_counted_and_named(tmp_path, capsys):
    root = _folder(tmp_path / "data")
    bad = os.path.join(os.fsencode(root / "a"), b"caf\xe9.png")  # Latin-1 bytes: not UTF-8
    with open(bad, "wb") as f:
        f.write(encode(IMAGES[5]))
    files = image_folder(root)
    assert files.skipped["non_utf8_name"] == 1 and len(files.paths) == 6
    assert "caf\\udce9.png" in capsys.readouterr().err
    assert sum(1 for _ in load_splits(f"folder:{root}", 0, 0.0, 0.0).train) == 6


def test_a_class_folder_that_is_not_utf8_is_one_line(tmp_path, capsys, mlflow_store):
    root = _folder(tmp_path / "data")
    os.mkdir(os.path.join(os.fsencode(root), b"\xff\xfeclass"))
    with open(os.path.join(os.fsencode(root), b"\xff\xfeclass", b"0.png"), "wb") as f:
        f.write(encode(IMAGES[0]))
    assert main(["train", "fashion_mnist_lenet5", "--set", f"data.dataset=folder:{root}", "--workdir", str(tmp_path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "not UTF-8" in line and "\\udcff\\udcfeclass" in line


def test_images_with_a_damaged_body_are_counted_each_pass(tmp_path, capfd):
    root = _folder(tmp_path / "data", per_class=4)
    (root / "a" / "damaged1.png").write_bytes(_damaged_body())
    (root / "b" / "damaged2.png").write_bytes(_damaged_body())
    splits = load_splits(f"folder:{root}", 0, 0.0, 0.0, image_size=(16, 16))
    assert splits.sizes["train"] == 10
    for _ in range(2):
        assert sum(1 for _ in splits.train) == 8
    err = capfd.readouterr().err
    assert err.count(f"warning: 2 of 10 images of folder:{root} (train) could not be decoded") == 2


def test_an_empty_class_folder_is_warned_about(tmp_path, capsys):
    root = _folder(tmp_path / "data")
    (root / "empty").mkdir()
    (root / "only_text").mkdir()
    (root / "only_text" / "notes.txt").write_text("no images here")
    files = image_folder(root)
    assert files.class_names == ["a", "b", "empty", "only_text"]
    err = capsys.readouterr().err
    assert "class folder" in err and "'empty' stays a model output" in err and "'only_text' stays" in err


def test_a_utf8_bom_csv_is_read(tmp_path):
    root = _folder(tmp_path / "data")
    rows = ["path,label"] + [f"{c}/{i}.png,{c}" for c in "ab" for i in range(3)]
    (root / "m.csv").write_bytes("\ufeff".encode() + "\r\n".join(rows).encode() + b"\r\n")  # as Excel saves it
    files = csv_manifest(root / "m.csv")
    assert len(files.paths) == 6 and files.class_names == ["a", "b"]


@pytest.fixture(scope="module")
def rows_export(tmp_path_factory):
    """A 1D conv net trained on digits read as rows (8 time steps of 8 pixels), exported as a tensor model."""
    work = tmp_path_factory.mktemp("rows")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    try:
        recipe = load_recipe({"data": {"dataset": "digits", "derive": "rows", "train_limit": 300, "test_limit": 60},
                              "model": {"name": "convnet1d", "options": {"filters": [8, 16]}},
                              "train": {"epochs": 1, "batch_size": 32}, "export": {"name": "rows"}})
        result = train(recipe, work)
    finally:
        mlflow.set_tracking_uri(None)
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
    return result.export_path


def test_predict_on_a_1d_export_is_one_line(rows_export, tmp_path, capsys):
    image = tmp_path / "digit.png"
    image.write_bytes(encode(IMAGES[0]))
    assert main(["predict", str(rows_export), str(image)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "takes tensors" in line and "convforge evaluate" in line


def test_evaluate_a_1d_export_works(rows_export, capsys):
    assert main(["evaluate", str(rows_export)]) == 0
    out = dict(line.split(": ") for line in capsys.readouterr().out.strip().splitlines())
    assert 0.0 <= float(out["eval_test_accuracy"]) <= 1.0 and np.isfinite(float(out["eval_test_loss"]))
