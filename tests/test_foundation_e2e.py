"""End to end: real Fashion-MNIST slice -> fit -> MLflow run -> SavedModel -> both signatures."""

import mlflow
import numpy as np
import pytest
import tensorflow as tf

from pipelines.catalog import load_arrays
from serving.export import read_class_names
from serving.loader import load_export
from tasks.core.recipe import load_recipe
from tasks.core.trainer import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    recipe = load_recipe("fashion_mnist_lenet5", ["train.epochs=2", "data.train_limit=1500", "data.test_limit=300", "train.batch_size=64"])
    result = train(recipe, tmp)
    yield result, uri, tmp
    mp.undo()


def test_run_has_params_metrics_figures_and_model(trained):
    result, uri, _ = trained
    client = mlflow.MlflowClient(uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "lenet5"
    assert run.data.params["train.epochs"] == "2"
    history = client.get_metric_history(result.run_id, "val_accuracy")
    assert [m.step for m in history] == [0, 1]  # one value per epoch
    assert len(client.get_metric_history(result.run_id, "loss")) == 2
    assert 0.3 < run.data.metrics["test_accuracy"] <= 1.0
    assert run.data.tags["dataset_fingerprint"] == load_arrays("fashion_mnist").fingerprint()
    assert run.data.tags["export_path"] == str(result.export_path)
    figures = {f.path for f in client.list_artifacts(result.run_id, "figures")}
    assert figures == {"figures/training_curves.png", "figures/confusion_matrix.png", "figures/augment_preview.png"}
    reloaded = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    x = load_arrays("fashion_mnist").x_test[:16]
    assert reloaded.predict(x, verbose=0).shape == (16, 10)


def test_export_signatures_equal_keras(trained):
    result, uri, _ = trained
    assert result.export_path.parent.name == "fashion_mnist_lenet5" and result.export_path.name.isdigit()
    keras_model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    served = load_export(result.export_path)
    x = load_arrays("fashion_mnist").x_test[:32]
    expected = keras_model.predict(x, verbose=0)
    out = served.signatures["serving_default"](images=tf.constant(x))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(out["class_id"].numpy(), expected.argmax(axis=1))
    encoded = [tf.io.encode_png(im).numpy() for im in x]
    from_bytes = served.signatures["serving_bytes"](image_bytes=tf.constant(encoded))
    np.testing.assert_allclose(from_bytes["probabilities"].numpy(), out["probabilities"].numpy(), atol=1e-6)
    assert read_class_names(result.export_path)[9] == "Ankle boot"


def test_export_resizes_any_size_inside(trained):
    result, _, _ = trained
    served = load_export(result.export_path)
    x = load_arrays("fashion_mnist").x_test[:4]
    big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)  # 56x56 nearest-neighbour upscale
    out = served.signatures["serving_default"](images=tf.constant(big))
    assert out["probabilities"].shape == (4, 10)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-5)
