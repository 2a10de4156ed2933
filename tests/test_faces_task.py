"""The faces task through the trainer: binary head on Fashion-MNIST with unseen classes, ROC in MLflow."""

import json

import mlflow
import numpy as np
import pytest

from tasks.core.recipe import load_recipe
from tasks.core.trainer import train
from tasks.problems.faces import _pairs, one_shot_accuracy


def test_pairs_give_one_positive_and_one_negative_partner_per_image():
    import tensorflow as tf

    p, k = 3, 2
    labels = np.repeat(np.arange(10, 13), k)
    images = labels.astype(np.uint8).reshape(-1, 1, 1, 1)
    (x, same), = _pairs(tf.data.Dataset.from_tensors((images, labels)), p, k).as_numpy_iterator()
    a, b = x["image_a"][:, 0, 0, 0], x["image_b"][:, 0, 0, 0]
    np.testing.assert_array_equal(same[:, 0], np.r_[np.ones(6), np.zeros(6)])
    assert (a[:6] == b[:6]).all() and (a[6:] != b[6:]).all()


def test_one_shot_accuracy_is_exact_on_separated_clusters():
    labels = np.repeat(np.arange(4), 5)
    e = np.eye(4, dtype=np.float32)[labels]
    assert one_shot_accuracy(e, labels, draws=3) == 1.0
    flipped = labels.copy()
    flipped[[0, 5]] = flipped[[5, 0]]  # two images carry the other's label
    assert one_shot_accuracy(e, flipped, draws=20) < 1.0


@pytest.mark.slow
def test_binary_head_recipe_trains_exports_threshold_and_logs_roc(mlflow_store, workdir):
    settings = ["faces.loss=binary", "faces.p=5", "faces.k=4", "data.train_limit=3000", "data.test_limit=300",
                "model.options.widths=[8, 16]", "model.options.embedding_dim=16", "train.epochs=1", "faces.max_pairs=4000"]
    recipe = load_recipe("faces_fashion_mnist", [*settings, "train.steps_per_epoch=120"])
    result = train(recipe, workdir)
    m = result.metrics
    assert {"val_auc", "val_eer", "threshold", "test_auc", "test_eer", "test_accuracy", "test_one_shot_accuracy", "test_head_auc"} <= set(m)
    # Random conv features already separate Fashion-MNIST classes (an untrained encoder scores 0.67-0.73), so the
    # encoder's AUC on classes never trained on is compared with the same recipe after one step (measured gap +0.06-0.10).
    untrained = train(load_recipe("faces_fashion_mnist", [*settings, "train.steps_per_epoch=1", "export.enabled=false"]),
                      workdir / "one_step")
    assert m["test_auc"] > untrained.metrics["test_auc"] + 0.03
    # The logistic head scores the same unseen-identity pairs: after 120 steps it beats chance by a margin
    # (measured 0.734 / 0.736 / 0.687 with seeds 42 / 1 / 2). With this recipe's seed 42 an untrained head scores 0.38
    # (1 step) and 0.31 (15 steps), a head read with the wrong sign 0.27: both fail. (Across seeds an untrained head's
    # AUC is a coin toss between 0.38 and 0.69, so the bound leans on the fixed seed.)
    assert m["test_head_auc"] > 0.6
    meta = json.loads((result.export_path / "assets" / "verification.json").read_text())
    assert meta["threshold"] == pytest.approx(m["threshold"]) and meta["loss"] == "binary" and meta["input_shape"] == [28, 28, 1]
    client = mlflow.MlflowClient()
    figures = [f.path for f in client.list_artifacts(result.run_id, "figures")]
    assert "figures/roc.png" in figures
    run = client.get_run(result.run_id)
    assert run.data.params["faces.loss"] == "binary" and "accuracy" in run.data.metrics
