"""The classification task beyond plain images: 1D sequences, 3D clips, auxiliary side classifiers."""

import mlflow
import numpy as np
import pytest
import tensorflow as tf

from pipelines.catalog import load_arrays
from pipelines.derived import derive
from serving.loader import load_export
from tasks.core.recipe import load_recipe
from tasks.core.trainer import train

TINY = ["train.epochs=1", "data.train_limit=256", "data.test_limit=64", "train.batch_size=32"]


@pytest.mark.slow
@pytest.mark.parametrize("recipe_name, derivation", [
    ("fashion_mnist_resnet1d", "rows"),
    ("fashion_mnist_convnet3d", None),
])
def test_derived_recipes_train_and_export_the_raw_tensor(recipe_name, derivation, tmp_path, mlflow_store):
    recipe = load_recipe(recipe_name, TINY)
    result = train(recipe, tmp_path)
    spec = recipe["data"]["derive"]
    x, _ = derive(spec, load_arrays("fashion_mnist").x_test[:8], np.zeros(8))
    if derivation:
        assert x.shape == (8, 28, 28)  # rows: 28 steps of 28 pixels
    keras_model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    served = load_export(result.export_path)
    dtype = served.signatures["serving_default"].structured_input_signature[1]["inputs"].dtype
    out = served.signatures["serving_default"](inputs=tf.constant(x, dtype=dtype))
    np.testing.assert_allclose(out["probabilities"].numpy(), keras_model.predict(x, verbose=0), atol=1e-5)
    assert "test_accuracy" in result.metrics


@pytest.mark.slow
def test_inception_aux_heads_train_with_weight_and_are_dropped_at_export(tmp_path, mlflow_store):
    recipe = load_recipe("fashion_mnist_inception_v1", TINY)
    result = train(recipe, tmp_path)
    history = mlflow.MlflowClient().get_metric_history(result.run_id, "aux1_loss")
    assert len(history) == 1  # the side classifiers were trained
    served = load_export(result.export_path)
    x = load_arrays("fashion_mnist").x_test[:8]
    out = served.signatures["serving_default"](images=tf.constant(x))
    assert set(out) == {"probabilities", "class_id"} and out["probabilities"].shape == (8, 10)
    keras_model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    assert len(keras_model.outputs) == 1  # the logged model is the main classifier only
    np.testing.assert_allclose(out["probabilities"].numpy(), keras_model.predict(x, verbose=0), atol=1e-5)
