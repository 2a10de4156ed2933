"""Freeze/unfreeze schedules on a real pretrained backbone (EfficientNet-Lite0) and real Fashion-MNIST images."""

import mlflow
import numpy as np
import pytest

from models.backbones import backbone_blocks, backbone_of
from tasks.recipe import load_recipe
from tasks.task import get_task_class


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
