"""End to end on real Fashion-MNIST at tiny scale: the bundled transfer recipe -> MLflow parent + nested
stage runs -> SavedModel (TF Serving layout, multi-crop outputs); then `convforge ensemble` of two runs,
and a later run's backbone taken from a finished run and from an export."""

import mlflow
import numpy as np
import pytest
import tensorflow as tf

from models.backbones import backbone_of, build_backbone
from pipelines.splits import batch, load_splits
from serving.loader import load_export, predict_arrays
from tasks.cli.main import main
from tasks.core.recipe import load_recipe
from tasks.core.trainer import train
from tasks.evaluation.multicrop import collect_multicrop
from tasks.problems.transfer import keras_file_of_export, keras_file_of_run
from tasks.workflows.ensemble import ensemble_model

TINY = ["data.image_size=[32,32]", "data.train_limit=96", "data.test_limit=24", "train.batch_size=32",
        "train.steps_per_epoch=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("transfer_e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
    mp.chdir(tmp)
    stages = "transfer.stages=[{train: head, epochs: 2, learning_rate: 0.01}, {train: top_k, k: 1, epochs: 1}]"
    transfer = train(load_recipe("transfer_fashion_mnist_lite0", [*TINY, stages]), tmp)
    scratch = train(load_recipe("fashion_mnist_lenet5", [*TINY, "data.channels=3", "train.epochs=1"]), tmp)
    yield transfer, scratch, tmp
    mp.undo()


def _test_split(recipe):
    d = recipe["data"]
    s = load_splits(d["dataset"], recipe["seed"], d["val_fraction"], d["test_fraction"], d["train_limit"],
                    d["test_limit"], d["image_size"], d["channels"])
    return batch(s.test, 64)


@pytest.mark.slow
def test_schedule_is_one_parent_run_with_a_nested_run_per_stage(runs):
    transfer, _, tmp = runs
    client = mlflow.MlflowClient()
    parent = client.get_run(transfer.run_id)
    assert parent.info.status == "FINISHED" and parent.data.params["task"] == "transfer"
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{transfer.run_id}'",
                                  search_all_experiments=True, order_by=["params.stage.index"])
    assert list(children["tags.mlflow.runName"]) == ["stage1-head", "stage2-top_k"]
    assert list(children["params.stage.cached"]) == ["True", "False"]
    assert len(client.get_metric_history(children["run_id"].iloc[0], "val_accuracy")) == 2  # per epoch, in the stage run
    assert {"stage1_accuracy", "stage2_accuracy", "test_accuracy", "test_single_accuracy"} <= set(parent.data.metrics)
    assert any((tmp / "cache" / "activations").glob("*/train.npz"))


@pytest.mark.slow
def test_export_is_tf_serving_layout_with_multicrop_outputs(runs):
    transfer, _, _ = runs
    path = transfer.export_path
    assert path.name == "1" and path.parent.name == "fashion_mnist_lite0_transfer"
    assert (path / "saved_model.pb").is_file() and (path / "variables" / "variables.index").is_file()
    served = load_export(path)
    assert {"serving_default", "serving_bytes"} <= set(served.signatures)
    recipe = load_recipe("transfer_fashion_mnist_lite0", TINY)
    images, labels = map(np.concatenate, zip(*_test_split(recipe).as_numpy_iterator(), strict=True))
    out = predict_arrays(served, images)
    model = mlflow.keras.load_model(f"runs:/{transfer.run_id}/model")
    _, ten_crop = collect_multicrop(model, _test_split(recipe), "10crop")
    np.testing.assert_allclose(out["multicrop_probabilities"], ten_crop, atol=1e-4)
    np.testing.assert_allclose(out["probabilities"], model.predict(images, verbose=0), atol=1e-4)
    assert transfer.metrics["test_accuracy"] == pytest.approx(np.mean(ten_crop.argmax(1) == labels))


@pytest.mark.slow
def test_ensemble_command_averages_probabilities_and_exports(runs, capsys):
    transfer, scratch, _ = runs
    assert main(["ensemble", transfer.run_id, scratch.run_id, "--export", "--name", "ens"]) == 0
    out = capsys.readouterr().out
    run_id = out.strip().splitlines()[-1].split()[-1]
    a = mlflow.keras.load_model(f"runs:/{transfer.run_id}/model")
    b = mlflow.keras.load_model(f"runs:/{scratch.run_id}/model")
    recipe = load_recipe("transfer_fashion_mnist_lite0", TINY)
    images, labels = map(np.concatenate, zip(*_test_split(recipe).as_numpy_iterator(), strict=True))
    manual = (a.predict(images, verbose=0) + b.predict(images, verbose=0)) / 2
    logged = mlflow.get_run(run_id)
    assert logged.data.params["members"] == f"{transfer.run_id},{scratch.run_id}"
    assert logged.data.metrics["test_accuracy"] == pytest.approx(np.mean(manual.argmax(1) == labels))
    served = predict_arrays(load_export("exports/ens"), images)
    np.testing.assert_allclose(served["probabilities"], manual, atol=1e-5)
    np.testing.assert_allclose(ensemble_model([a, b]).predict(images, verbose=0), manual, atol=1e-6)


@pytest.mark.slow
def test_backbone_from_a_finished_run_and_from_its_export(runs, tmp_path):
    transfer, _, _ = runs
    trained = backbone_of(mlflow.keras.load_model(f"runs:/{transfer.run_id}/model"))
    x = tf.random.uniform((2, 32, 32, 3), 0, 255, seed=1)
    expected = trained(x, training=False).numpy()
    from_run = build_backbone("efficientnet_lite0", (32, 32, 3), weights=str(keras_file_of_run(transfer.run_id)))
    np.testing.assert_allclose(from_run(x, training=False).numpy(), expected, atol=1e-5)
    from_export = build_backbone("efficientnet_lite0", (32, 32, 3), weights=str(keras_file_of_export(transfer.export_path, tmp_path)))
    np.testing.assert_allclose(from_export(x, training=False).numpy(), expected, atol=1e-5)
    assert not np.allclose(build_backbone("efficientnet_lite0", (32, 32, 3), "imagenet")(x).numpy(), expected, atol=1e-5)
