"""train.precision: a mixed_bfloat16 run trains, keeps float32 outputs, exports what Keras computes, and resets the policy."""

import keras
import mlflow
import numpy as np
import pytest
import tensorflow as tf

import models
from pipelines.catalog import load_arrays
from serving.loader import load_export
from tasks.core.errors import UserError
from tasks.core.recipe import load_recipe
from tasks.core.trainer import train

SLICE = ["data.train_limit=768", "data.test_limit=256", "train.epochs=2", "train.batch_size=64", "data.augment=[]"]


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bf16")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    recipe = load_recipe("fashion_mnist_lenet5", [*SLICE, "train.precision=mixed_bfloat16"])
    result = train(recipe, tmp)
    policy_after = keras.mixed_precision.global_policy().name
    yield result, uri, policy_after
    mp.undo()


def test_bf16_run_trains_with_bf16_compute_and_float32_outputs(bf16_run):
    result, uri, _ = bf16_run
    losses = result.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert result.metrics["test_accuracy"] > 0.4  # 10 classes: chance is 0.1
    model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    assert all(layer.variable_dtype == "float32" for layer in convs)  # master weights stay float32
    assert model.layers[-1].compute_dtype == "float32"
    out = model(load_arrays("fashion_mnist").x_test[:8], training=False)
    assert out.dtype == "float32"
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, atol=1e-5)


def test_bf16_export_equals_keras_model(bf16_run):
    result, uri, _ = bf16_run
    model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    x = load_arrays("fashion_mnist").x_test[:32]
    expected = np.asarray(model(x, training=False))
    out = load_export(result.export_path).signatures["serving_default"](images=tf.constant(x))
    assert out["probabilities"].dtype == tf.float32
    # the same bfloat16 graph, fused differently by the SavedModel: equal to bfloat16 rounding (2^-8)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=4e-3)
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-2  # a near-tie may flip under rounding
    assert clear.sum() >= 24
    np.testing.assert_array_equal(out["class_id"].numpy()[clear], expected.argmax(axis=1)[clear])


def test_policy_is_reset_after_the_run(bf16_run):
    _, _, policy_after = bf16_run
    assert policy_after == "float32"
    assert models.build("lenet5", (28, 28, 1), 10).layers[2].compute_dtype == "float32"


def test_unknown_precision_is_a_user_error(workdir, mlflow_store):
    recipe = load_recipe("fashion_mnist_lenet5", [*SLICE, "train.precision=float8"])
    with pytest.raises(UserError, match="train.precision 'float8'"):
        train(recipe, workdir)
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize("name,shape,options", [
    ("resnet18", (32, 32, 1), {"small": True, "width": 0.25}),
    ("vgg16", (32, 32, 1), {"small": True, "width": 0.125}),
    ("alexnet", (32, 32, 1), {"small": True, "width": 0.125}),
    ("inception_v1", (32, 32, 1), {"small": True, "width": 0.125, "aux": True}),
    ("convnet1d", (64, 1), {}),
    ("yolo", (64, 64, 3), {}),
])
def test_builders_keep_float32_outputs_under_mixed_policy(name, shape, options):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = models.build(name, shape, 10, **options)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(str(t.dtype) == "float32" for t in model.outputs), name
