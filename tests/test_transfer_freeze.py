"""Freeze/unfreeze schedules on a real pretrained backbone (EfficientNet-Lite0) and real Fashion-MNIST images."""

import keras
import mlflow
import numpy as np
import pytest

from models.backbones import backbone_blocks, backbone_of
from tasks.core.errors import UserError
from tasks.core.recipe import load_recipe
from tasks.core.task import get_task_class
from tasks.problems.transfer import keep_best_callback, parse_stages


def _recipe(**transfer):
    return load_recipe({
        "task": "transfer",
        "data": {"dataset": "fashion_mnist", "image_size": [32, 32], "channels": 3, "train_limit": 96, "test_limit": 32},
        "model": {"name": "transfer_classifier", "options": {"backbone": "efficientnet_lite0", "weights": "imagenet"}},
        "train": {"batch_size": 32, "steps_per_epoch": 2},
        "transfer": {"cache_activations": False, "stages": [{"train": "head", "epochs": 1}], **transfer},
    })


def _snapshot(layer):
    return {w.path: np.array(w.numpy()) for w in layer.weights}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("freeze")
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    mlflow.set_experiment("transfer-freeze")  # not the experiment a previous test module left active
    task = get_task_class("transfer")(_recipe(cache_dir=str(tmp / "cache")))
    inputs = task.build_inputs()
    model = task.build_model(inputs)
    task.compile(model, inputs)
    yield task, inputs, model
    mlflow.set_tracking_uri(None)


def _fit(task, inputs, model, stages):
    task.recipe["transfer"]["stages"] = stages
    with mlflow.start_run() as parent:
        task.fit(model, inputs, [])
    return parent.info.run_id


@pytest.mark.slow
def test_head_stage_leaves_backbone_and_bn_statistics_bit_identical(setup):
    task, inputs, model = setup
    backbone, head = backbone_of(model), model.get_layer("head")
    before, head_before = _snapshot(backbone), _snapshot(head)
    assert any("moving_variance" in k for k in before)
    parent = _fit(task, inputs, model, [{"train": "head", "epochs": 1, "learning_rate": 0.01}])
    after = _snapshot(backbone)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert any(not np.array_equal(v, _snapshot(head)[k]) for k, v in head_before.items())
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent}'", search_all_experiments=True)
    assert list(children["tags.mlflow.runName"]) == ["stage1-head"]
    assert children["metrics.seconds_per_epoch"].iloc[0] > 0


@pytest.mark.slow
def test_top_k_stage_changes_only_the_top_blocks_and_never_bn_statistics(setup):
    task, inputs, model = setup
    backbone = backbone_of(model)
    blocks = backbone_blocks(backbone, "efficientnet_lite0")
    assert len(blocks) == 17 and blocks[-1][0] == "block7a_expand_conv" and "top_bn" in blocks[-1]
    top = {name for group in blocks[-2:] for name in group}
    before = _snapshot(backbone)
    parent = _fit(task, inputs, model, [{"train": "top_k", "k": 2, "epochs": 1, "learning_rate": 0.01}])
    after = _snapshot(backbone)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed, "the unfrozen blocks did not train"
    assert {k.split("/")[0] for k in changed} <= top
    assert not any("moving_" in k for k in changed)  # BN runs in inference mode even when unfrozen
    trainable_kernels = {k for k in before if k.split("/")[0] in top and k.endswith("/kernel")}
    assert trainable_kernels <= changed  # every conv kernel of the two top blocks moved
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent}'", search_all_experiments=True)
    assert list(children["tags.mlflow.runName"]) == ["stage1-top_k"]
    assert children["params.stage.k"].iloc[0] == "2"


class _Recorder(keras.callbacks.Callback):
    """Head weights and validation accuracy at the end of every epoch."""

    def on_train_begin(self, logs=None):
        self.weights, self.val_accuracy = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([np.array(w) for w in self.model.get_weights()])
        self.val_accuracy.append(logs["val_accuracy"])


def test_keep_best_restores_the_epoch_of_best_validation_accuracy():
    from pipelines.catalog import load_arrays

    data = load_arrays("fashion_mnist")
    x = data.x_train[:300].reshape(300, -1).astype("float32") / 255.0
    y = data.y_train[:300].astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=5, verbose=0)  # good weights first, then training on wrong labels spoils them
    recorder, best = _Recorder(), keep_best_callback(4)
    model.fit(x, (y + 1) % 10, validation_data=(x, y), epochs=4, verbose=0, callbacks=[recorder, best])
    first_max = int(np.argmax(recorder.val_accuracy))
    assert first_max == best.best_epoch == 0 and recorder.val_accuracy[-1] < recorder.val_accuracy[0]
    for got, want, last in zip(model.get_weights(), recorder.weights[first_max], recorder.weights[-1], strict=True):
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(got, last)


@pytest.mark.slow
def test_keep_best_stage_ends_on_its_best_validation_epoch(setup):
    task, inputs, model = setup
    head, recorder = model.get_layer("head"), _Recorder()
    task.recipe["transfer"]["stages"] = [{"train": "head", "epochs": 3, "learning_rate": 0.05, "keep_best": True}]
    with mlflow.start_run():
        task.fit(model, inputs, [recorder])
    first_max = int(np.argmax(recorder.val_accuracy))
    for got, want in zip(model.get_weights(), recorder.weights[first_max], strict=True):
        np.testing.assert_array_equal(got, want)
    assert [w.shape for w in head.get_weights()] == [(1280, 10), (10,)]


def test_keep_best_must_be_a_boolean():
    with pytest.raises(UserError, match=r"transfer.stages\[1\].keep_best must be true or false"):
        parse_stages([{"train": "head", "keep_best": "yes"}], {"epochs": 1, "learning_rate": 0.001, "optimizer": "adam",
                                                                "weight_decay": 0.0})


def test_cosine_stage_decays_its_rate_to_zero_over_its_steps(setup):
    task, inputs, model = setup
    lr, epochs, steps = 0.01, 1, 2  # the recipe's train.steps_per_epoch (its 3 batches hold no second epoch)
    _fit(task, inputs, model, [{"train": "top_k", "k": 1, "epochs": epochs, "learning_rate": lr, "schedule": "cosine"}])
    optimizer = model.optimizer
    assert int(optimizer.iterations.numpy()) == epochs * steps
    schedule = optimizer._learning_rate
    for step in range(epochs * steps + 1):  # 0.5 * lr * (1 + cos(pi * t / T))
        want = 0.5 * lr * (1 + np.cos(np.pi * step / (epochs * steps)))
        np.testing.assert_allclose(float(schedule(step)), want, rtol=1e-5, atol=1e-9)
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(0.0, abs=1e-9)


def test_stage_schedule_defaults_to_the_recipe_and_rejects_unknown_names():
    train = {"epochs": 1, "learning_rate": 0.001, "optimizer": "adam", "weight_decay": 0.0, "schedule": "cosine"}
    assert parse_stages([{"train": "head"}], train)[0]["schedule"] == "cosine"
    assert parse_stages([{"train": "head", "schedule": "constant"}], train)[0]["schedule"] == "constant"
    with pytest.raises(UserError, match=r"transfer.stages\[1\].schedule must be constant or cosine; received 'step'"):
        parse_stages([{"train": "head", "schedule": "step"}], train)


@pytest.mark.slow
def test_cosine_stages_of_the_bundled_recipe_decay_over_its_augmented_epochs(setup, tmp_path):
    """No train.steps_per_epoch and an augmented (unknown-length) pipeline: the decay spans ceil(images / batch) steps."""
    stages = "transfer.stages=[{train: head, epochs: 1, schedule: cosine}, {train: all, epochs: 2, schedule: cosine}]"
    recipe = load_recipe("transfer_fashion_mnist_ensemble_member", [
        "data.image_size=[32,32]", "data.train_limit=64", "data.test_limit=8", "train.batch_size=32",
        f"transfer.cache_dir={tmp_path / 'cache'}", stages])
    assert recipe["data"]["augment"] and recipe["train"]["steps_per_epoch"] is None
    task = get_task_class("transfer")(recipe)  # tracked in the module's temporary MLflow store (the fixture)
    inputs = task.build_inputs()
    model = task.build_model(inputs)
    task.compile(model, inputs)
    with mlflow.start_run():
        task.fit(model, inputs, [])
    head = model.get_layer("head")
    for fitted, epochs in ((head, 1), (model, 2)):
        assert int(fitted.optimizer.iterations.numpy()) == epochs * 2  # 64 images / batch 32
        assert float(fitted.optimizer.learning_rate.numpy()) == pytest.approx(0.0, abs=1e-9)
