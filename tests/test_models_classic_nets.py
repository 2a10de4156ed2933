"""Every classic builder: builds, runs, takes a training step on real data, saves and reloads identically."""

import keras
import numpy as np
import pytest

import models
from models.inception import AUX_LOSS_WEIGHT, inference_model
from pipelines.catalog import load_arrays
from pipelines.derived import derive


@pytest.fixture(scope="module")
def batch():
    data = load_arrays("fashion_mnist")
    return data.x_train[:16], data.y_train[:16]


# (name, input kind, options): the small-input variants, narrowed so a CPU step is quick
CASES = [
    ("alexnet", "image", {"small": True, "width": 0.125, "fc_units": 32}),
    ("vgg16", "image", {"small": True, "width": 0.125, "fc_units": 32}),
    ("resnet18", "image", {"small": True, "width": 0.125}),
    ("resnet34", "image", {"small": True, "width": 0.0625}),
    ("resnet50", "image", {"small": True, "width": 0.0625}),
    ("resnet101", "image", {"small": True, "width": 0.0625}),
    ("inception_v1", "image", {"small": True, "width": 0.125}),
    ("convnet1d", "rows", {"filters": [8, 16]}),
    ("resnet1d", "rows", {"width": 0.125}),
    ("convnet3d", {"clip": {"frames": 4}}, {"filters": [4, 8]}),
    ("resnet3d", {"clip": {"frames": 4}}, {"width": 0.0625, "depth": 18}),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,kind,options", CASES, ids=[c[0] for c in CASES])
def test_builder_runs_trains_and_round_trips(name, kind, options, batch, tmp_path):
    x, y = batch if kind == "image" else derive(kind, *batch)
    model = models.build(name, x.shape[1:], 10, **options)
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (len(x), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)  # one step: skip tracing
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(np.asarray(reloaded(x, training=False)), np.asarray(model(x, training=False)), atol=1e-6)


@pytest.mark.slow
def test_inception_aux_classifiers_train_and_are_dropped_for_inference(batch, tmp_path):
    x, y = batch
    model = models.build("inception_v1", x.shape[1:], 10, aux=True, small=True, width=0.125)
    assert sorted(model.output) == ["aux1", "aux2", "main"]
    assert model.get_layer("aux1_avg_pool").input is model.get_layer("inception_4a_concat").output
    assert model.get_layer("aux2_avg_pool").input is model.get_layer("inception_4d_concat").output
    weights = {"main": 1.0, "aux1": AUX_LOSS_WEIGHT, "aux2": AUX_LOSS_WEIGHT}
    loss = {k: "sparse_categorical_crossentropy" for k in weights}
    model.compile(optimizer="adam", loss=loss, loss_weights=weights, run_eagerly=True)
    targets = {k: y for k in weights}
    losses = model.evaluate(x, targets, return_dict=True, verbose=0)
    expected_total = losses["main_loss"] + 0.3 * (losses["aux1_loss"] + losses["aux2_loss"])
    np.testing.assert_allclose(losses["loss"], expected_total, rtol=1e-4)
    before = model.get_layer("aux1_fc").get_weights()[0].copy()
    assert np.isfinite(model.train_on_batch(x, targets, return_dict=True)["loss"])
    assert not np.array_equal(before, model.get_layer("aux1_fc").get_weights()[0])  # the side branch is trained
    serving = inference_model(model)
    assert serving.count_params() < model.count_params()
    assert not any(layer.name.startswith("aux") for layer in serving.layers)
    np.testing.assert_allclose(np.asarray(serving(x)), np.asarray(model(x)["main"]), atol=1e-6)
    serving.save(tmp_path / "main.keras")
    reloaded = keras.saving.load_model(tmp_path / "main.keras")
    np.testing.assert_allclose(np.asarray(reloaded(x)), np.asarray(serving(x)), atol=1e-6)
