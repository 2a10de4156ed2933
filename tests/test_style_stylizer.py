"""Fast stylizer: trains with the perceptual costs, exports, reloads and matches the Keras model."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from models.transform_net import stylize, transform_net
from tasks.cli import main
from tasks.fast_style import FastStyleSettings, crop_dataset, export_stylizer, load_stylizer, train_stylizer
from tasks.style_transfer import load_image

TINY = FastStyleSettings(steps=2, batch_size=2, crop_size=32, filters=4, residual_blocks=1,
                         style_weights={"block1_conv2": 0.5, "block2_conv2": 0.5})


@pytest.fixture(scope="module")
def trained():
    net, history = train_stylizer(load_image("starry_night"), TINY, verbose=0)
    return net, history


def test_training_reports_perceptual_costs(trained):
    _, history = trained
    for key in ("J", "Jc", "Js"):
        assert np.isfinite(history.history[key]).all() and history.history[key][-1] > 0


def test_crops_are_real_photo_pixels():
    batch = next(iter(crop_dataset([load_image("coffee")], 24, 3, seed=1)))
    assert batch.shape == (3, 24, 24, 3) and batch.dtype == tf.uint8
    assert float(tf.math.reduce_std(tf.cast(batch, tf.float32))) > 5  # not blank


def test_transform_net_keeps_any_size():
    net = transform_net(filters=4, residual_blocks=1)
    out = stylize(net, np.zeros((2, 23, 30, 3), np.uint8))
    assert out.shape == (2, 23, 30, 3) and out.dtype == tf.uint8


def test_export_reloads_with_the_keras_output(trained, tmp_path):
    net, _ = trained
    path = export_stylizer(net, tmp_path, "starry")
    assert path == tmp_path / "starry" / "1" and (path / "saved_model.pb").is_file()
    image = load_image("chelsea")[::6, ::6][None]  # 50 x 76: not a multiple of 4
    served = load_stylizer(tmp_path / "starry")
    np.testing.assert_array_equal(served(image).numpy(), stylize(net, image).numpy())
    buf = io.BytesIO()
    Image.fromarray(image[0]).save(buf, format="PNG")
    raw = tf.saved_model.load(str(path)).signatures["serving_bytes"](image_bytes=tf.constant([buf.getvalue()]))
    np.testing.assert_array_equal(raw["image"].numpy(), stylize(net, image).numpy())


def test_cli_stylize(trained, tmp_path, workdir, capsys):
    net, _ = trained
    export_stylizer(net, tmp_path, "starry")
    assert main(["stylize", str(tmp_path / "starry"), "coffee", "-o", "out.png", "--size", "40"]) == 0
    assert Image.open(workdir / "out.png").size == (40, 27)
    assert main(["stylize", str(tmp_path / "nothing"), "coffee", "-o", "out.png"]) == 2
    assert "cannot be loaded" in capsys.readouterr().err


def test_cli_train_stylizer_logs_export_and_comparison(mlflow_store, workdir, capsys):
    import mlflow

    code = main(["train-stylizer", "starry_night", "--name", "starry", "--steps", "2", "--batch-size", "2",
                 "--crop-size", "32", "--filters", "4", "--residual-blocks", "1", "--compare-steps", "2",
                 "--compare-size", "48"])
    assert code == 0
    assert (workdir / "exports" / "starry" / "1" / "saved_model.pb").is_file()
    assert "faster" in capsys.readouterr().out
    run = mlflow.search_runs(experiment_names=["fast_style"], output_format="list")[0]
    assert {"fast_seconds_per_image", "optimisation_seconds_per_image", "J", "Js"} <= set(run.data.metrics)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"content_style_fast.png", "fast_vs_optimisation.png"} <= artifacts
