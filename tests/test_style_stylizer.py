"""Fast stylizer: trains with the perceptual costs, exports, reloads and matches the Keras model."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from models.transform_net import stylize, transform_net
from tasks.cli.main import main
from tasks.workflows.fast_style import FastStyleSettings, crop_dataset, export_stylizer, load_stylizer, train_stylizer
from tasks.workflows.style_transfer import load_image

TINY = FastStyleSettings(steps=2, batch_size=2, crop_size=32, filters=4, residual_blocks=1,
                         style_weights={"block1_conv2": 0.5, "block2_conv2": 0.5})


@pytest.fixture(scope="module")
def trained():
    net, history = train_stylizer(load_image("starry_night"), TINY, verbose=0)
    return net, history


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A net far from the identity (random last conv), exported once."""
    net = transform_net(filters=4, residual_blocks=1)
    kernel, bias = net.get_layer("out_conv").get_weights()
    net.get_layer("out_conv").set_weights([np.random.default_rng(0).normal(0, 0.05, kernel.shape), bias])
    root = tmp_path_factory.mktemp("exports")
    return net, export_stylizer(net, root, "starry")


def test_training_reports_perceptual_costs(trained):
    _, history = trained
    for key in ("J", "Jc", "Js"):
        assert np.isfinite(history.history[key]).all() and history.history[key][-1] > 0
    h = {k: v[-1] for k, v in history.history.items()}
    np.testing.assert_allclose(h["J"], TINY.alpha * h["Jc"] + TINY.beta * h["Js"], rtol=1e-4)


def test_crops_are_real_photo_pixels():
    batch = next(iter(crop_dataset([load_image("coffee")], 24, 3, seed=1)))
    assert batch.shape == (3, 24, 24, 3) and batch.dtype == tf.uint8
    assert float(tf.math.reduce_std(tf.cast(batch, tf.float32))) > 5  # not blank


def test_untrained_transform_net_is_the_identity_at_any_size():
    net = transform_net(filters=4, residual_blocks=1)
    images = np.random.default_rng(0).integers(0, 256, (2, 23, 30, 3), dtype=np.uint8)
    out = stylize(net, images)
    assert out.dtype == tf.uint8
    np.testing.assert_array_equal(out.numpy(), images)


def test_export_reloads_with_the_keras_output(exported):
    net, path = exported
    assert path.name == "1" and path.parent.name == "starry" and (path / "saved_model.pb").is_file()
    image = load_image("chelsea")[::6, ::6][None]  # 50 x 76: not a multiple of 4
    keras_out = stylize(net, image).numpy()
    assert np.abs(keras_out.astype(int) - image).mean() > 5  # the net really changes the image
    served = load_stylizer(path.parent)
    np.testing.assert_array_equal(served(image).numpy(), keras_out)
    buf = io.BytesIO()
    Image.fromarray(image[0]).save(buf, format="PNG")
    raw = tf.saved_model.load(str(path)).signatures["serving_bytes"](image_bytes=tf.constant([buf.getvalue()]))
    np.testing.assert_array_equal(raw["image"].numpy(), keras_out)


def test_cli_stylize(exported, tmp_path, workdir, capsys):
    _, path = exported
    assert main(["stylize", str(path), "coffee", "-o", "out.png", "--size", "40"]) == 0
    assert Image.open(workdir / "out.png").size == (40, 27)
    assert main(["stylize", str(tmp_path / "nothing"), "coffee", "-o", "out.png"]) == 2
    assert "cannot be loaded" in capsys.readouterr().err


@pytest.mark.slow
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
