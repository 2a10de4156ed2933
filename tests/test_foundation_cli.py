"""CLI: --help lists every command; user mistakes give one line and exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from pipelines.catalog import load_arrays
from pipelines.decode import decode_image
from serving.export import export_classifier
from tasks.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tasks.cli.main", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_help_lists_every_command():
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("train", "evaluate", "predict", "export", "recipes", "datasets"):
        assert cmd in out.stdout


def test_unknown_recipe_key_exits_2_with_one_line():
    out = run_cli("train", "fashion_mnist_lenet5", "--set", "train.epoch=1")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["error: unknown recipe key 'train.epoch'; did you mean 'train.epochs'? "
                                               "known keys here: " + out.stderr.split("known keys here: ")[1].strip()]
    assert "Traceback" not in out.stderr


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    import models

    root = tmp_path_factory.mktemp("exp")
    model = models.build("lenet5", (28, 28, 1), 10)
    export_classifier(model, root, "m", load_arrays("fashion_mnist").class_names, decode=decode_image)
    return root / "m"


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_missing_image(export_dir, capsys, tmp_path):
    assert main(["predict", str(export_dir), str(tmp_path / "nope.png")]) == 2
    assert "nope.png does not exist" in one_error_line(capsys)


def test_corrupt_image(export_dir, capsys, tmp_path):
    png = tf.io.encode_png(load_arrays("fashion_mnist").x_test[0]).numpy()
    bad = tmp_path / "bad.png"
    bad.write_bytes(png[:40])
    assert main(["predict", str(export_dir), str(bad)]) == 2
    assert "bad.png cannot be used (truncated)" in one_error_line(capsys)


def test_unknown_dataset_exits_2_and_leaves_no_run(tmp_path):
    out = run_cli("train", "fashion_mnist_lenet5", "--set", "data.dataset=imagenet21k", "--workdir", str(tmp_path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "imagenet21k" in lines[0] and "fashion_mnist" in lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_predict_prints_top_k(export_dir, capsys, tmp_path):
    d = load_arrays("fashion_mnist")
    path = tmp_path / "shoe.png"
    path.write_bytes(tf.io.encode_png(d.x_test[0]).numpy())
    assert main(["predict", str(export_dir), str(path), "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{path}: ") and line.count(",") == 1
