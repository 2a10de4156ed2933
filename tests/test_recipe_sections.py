"""Typed recipe sections, "did you mean" for unknown keys, `convforge recipe show`, one load_splits_for, one build_model."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks.cli.main import main
from tasks.core.errors import UserError, clean_message
from tasks.core.recipe import flatten, load_recipe, schema_for
from tasks.core.recipe_sections import DataSection, TrainSection, typed_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_transfer_reads_unaugmented_training_data_with_derive():
    """transfer's own load_splits copy (the activation cache's plain images) used to drop data.derive."""
    from tasks.problems.transfer import TransferTask

    recipe = load_recipe({"task": "transfer", "data": {"dataset": "digits", "derive": "rows", "augment": ["mirror"],
                                                       "train_limit": 16}, "train": {"batch_size": 8}})
    task = TransferTask(recipe)
    x, _ = next(iter(task._plain_train(inputs=None)))
    assert tuple(x.shape[1:]) == (8, 8)  # rows of the 8x8 digits: a sequence, not an (8, 8, 1) image


def test_load_recipe_builds_typed_frozen_sections_with_mapping_access():
    recipe = load_recipe("fashion_mnist_lenet5", ["train.epochs=2", "train.learning_rate=1"])
    config = typed_recipe(recipe)
    assert isinstance(config.train, TrainSection) and isinstance(config.data, DataSection)
    assert config.train.epochs == 2 and config.train.learning_rate == 1.0
    assert isinstance(config.train.learning_rate, float)
    assert config.train["epochs"] == config["train"]["epochs"] == 2 and config.data.get("dataset") == "fashion_mnist"
    assert config.data.test_fraction == recipe["data"]["test_fraction"] == 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 5  # type: ignore[misc]
    transfer = typed_recipe(load_recipe("transfer_fashion_mnist_lite0"))
    assert transfer["transfer"]["stages"] and transfer.sections["evaluation"]["mode"]  # task sections stay mappings


@pytest.mark.parametrize(("override", "expected"), [
    ("train.batch_size=big", "recipe key 'train.batch_size' must be int; received 'big' (str)"),
    ("train.learning_rate=[1]", "recipe key 'train.learning_rate' must be float; received [1] (list)"),
    ("data.image_size=5", "recipe key 'data.image_size' must be list or null; received 5 (int)"),
    ("data.derive=[rows]", "recipe key 'data.derive' must be str or mapping or null; received ['rows'] (list)"),
    ("export.enabled=yes please", "recipe key 'export.enabled' must be bool; received 'yes please' (str)"),
    ("model.name=[a]", "recipe key 'model.name' must be str; received ['a'] (list)"),
])
def test_a_wrong_type_is_one_line_naming_the_key_and_the_type(override, expected):
    with pytest.raises(UserError) as err:
        load_recipe("fashion_mnist_lenet5", [override])
    assert str(err.value) == expected


def test_a_number_given_for_text_names_the_quoting_fix():
    with pytest.raises(UserError, match="mlflow.run_name='\"2024\"'"):
        load_recipe("fashion_mnist_lenet5", ["mlflow.run_name=2024"])
    assert load_recipe("fashion_mnist_lenet5", ['mlflow.run_name="2024"'])["mlflow"]["run_name"] == "2024"


@pytest.mark.parametrize(("override", "suggestion"), [
    ("train.epoch=3", "did you mean 'train.epochs'?"),
    ("trian.epochs=3", "did you mean 'train'?"),
    ("data.val_fracton=0.2", "did you mean 'data.val_fraction'?"),
    ("detection.iou_treshold=0.4", "did you mean 'detection.iou_threshold'?"),
])
def test_an_unknown_key_suggests_the_closest_known_key(override, suggestion):
    recipe = "scenes_yolo" if override.startswith("detection") else "fashion_mnist_lenet5"
    with pytest.raises(UserError) as err:
        load_recipe(recipe, [override])
    message = str(err.value)
    assert suggestion in message and "\n" not in message and message.startswith("unknown recipe key")
    with pytest.raises(UserError) as err:
        load_recipe("fashion_mnist_lenet5", ["train.zzzzzz=1"])
    assert "did you mean" not in str(err.value) and "known keys here: backup_interval_s" in str(err.value)


def test_mlflow_params_of_a_recipe_are_what_they_were():
    """flatten(recipe) is what MLflow logs as params: the typed sections must not change one key or value."""
    assert flatten(load_recipe("fashion_mnist_lenet5")) == {
        "task": "classification", "seed": 42,
        "description": "LeNet-5 (tanh, average pooling) on the real Fashion-MNIST 60k/10k split (`make demo DEMO_ARGS=--quick`)",
        "data.dataset": "fashion_mnist", "data.val_fraction": 0.1, "data.train_limit": None, "data.test_limit": None,
        "data.image_size": None, "data.channels": None, "data.augment": ["mirror"], "data.derive": None,
        "data.shuffle_buffer": 10000, "data.service": None, "data.test_fraction": 0.1,
        "model.name": "lenet5", "model.options": {},
        "train.epochs": 24, "train.batch_size": 64, "train.optimizer": "adam", "train.learning_rate": 0.002,
        "train.schedule": "cosine", "train.weight_decay": 0.0, "train.precision": "float32", "train.early_stopping": 0,
        "train.backup_interval_s": 30, "train.steps_per_epoch": None,
        "export.enabled": True, "export.dir": "exports", "export.name": "fashion_mnist_lenet5",
        "mlflow.experiment": "convforge", "mlflow.run_name": None,
    }


def test_task_defaults_read_from_source_are_the_classes_defaults():
    from tasks.core.task import _TASKS, _discover
    from tasks.core.task_defaults import registered_classes, static_defaults

    _discover()
    assert set(registered_classes()) <= set(_TASKS)
    for name in registered_classes():
        assert static_defaults(name) == _TASKS[name].defaults, name


def test_recipe_show_prints_every_default_and_the_override(capsys):
    assert main(["recipe", "show", "fashion_mnist_lenet5", "--set", "train.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# fashion_mnist_lenet5 resolved for task classification, with --set train.epochs=2\n")
    shown = yaml.safe_load(out)
    assert shown == load_recipe("fashion_mnist_lenet5", ["train.epochs=2"]) and shown["train"]["epochs"] == 2
    assert set(flatten(shown)) >= set(flatten(schema_for("classification")))  # every default is there
    assert main(["recipe", "show", "scenes_yolo"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["detection"]["iou_threshold"] == 0.5 and shown["scenes"]  # the task's own sections too


def test_recipe_show_refuses_a_misspelt_key_with_a_suggestion_and_exit_2(capsys):
    assert main(["recipe", "show", "fashion_mnist_lenet5", "--set", "train.epoch=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown recipe key 'train.epoch'; did you mean 'train.epochs'?")


def test_recipe_show_answers_without_tensorflow():
    code = ("import sys; from tasks.cli.main import main; "
            "assert main(['recipe', 'show', 'scenes_faster_rcnn', '--set', 'train.epochs=2']) == 0; "
            "heavy = [m for m in ('tensorflow', 'keras', 'mlflow') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "faster_rcnn" in done.stdout


def test_load_splits_for_passes_every_field_and_errors_in_one_line():
    from tasks.core.data_splits import load_splits_for

    rows = load_splits_for({"dataset": "digits", "derive": "rows", "val_fraction": 0.2}, 0, train_limit=10)
    assert rows.input_shape == (8, 8) and rows.sizes["train"] == 10 and rows.sizes["val"] == 2
    typed = typed_recipe(load_recipe("fashion_mnist_convnet1d", ["data.dataset=digits", "data.train_limit=8"]))
    assert load_splits_for(typed.data, typed.seed).input_shape == rows.input_shape  # the recipe's derive: rows
    with pytest.raises(UserError, match=r"^data.dataset 'folder:/nowhere': ") as err:
        load_splits_for({"dataset": "folder:/nowhere"}, 0)
    assert "\n" not in str(err.value)


def test_build_model_errors_are_one_line_from_the_one_try():
    from tasks.core.task import Inputs
    from tasks.problems.classification import ClassificationTask

    inputs = Inputs(None, None, None, (28, 28, 1), [str(i) for i in range(10)])
    task = ClassificationTask(load_recipe("fashion_mnist_lenet5", ["model.options={bogus: 1}"]))
    with pytest.raises(UserError, match=r"^model 'lenet5' with options \{'bogus': 1\} on input \(28, 28, 1\): ") as err:
        task.build_model(inputs)
    assert "\n" not in str(err.value)
    task = ClassificationTask(load_recipe("fashion_mnist_lenet5", ["model.name=lenet6"]))
    with pytest.raises(UserError, match="lenet6") as err:
        task.build_model(inputs)
    assert "\n" not in str(err.value) and not str(err.value).endswith("'")
    assert ClassificationTask(load_recipe("fashion_mnist_lenet5")).build_model(inputs).count_params() > 0


def test_clean_message_drops_the_quotes_key_error_adds():
    assert clean_message(KeyError("unknown model 'x'; try 'lenet5'")) == "unknown model 'x'; try 'lenet5'"
    assert clean_message(ValueError("first\nsecond")) == "first"


def test_static_defaults_follow_first_party_constants_and_give_up_on_code(tmp_path, monkeypatch):
    from tasks.core import task_defaults

    (tmp_path / "tasks" / "problems").mkdir(parents=True)
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "consts.py").write_text("SCENES: dict = {'train': 10, 'sizes': [1, 2]}\n")
    (tmp_path / "tasks" / "problems" / "a.py").write_text(
        "from pipelines.consts import SCENES\nfrom tasks.core.task import Task, register_task\n\n"
        "@register_task('a')\nclass A(Task):\n    defaults = {'scenes': dict(SCENES, val=-1), 'model': {'name': 'x'}}\n\n"
        "@register_task('b')\nclass B(A):\n    pass\n\n"
        "@register_task('c')\nclass C(Task):\n    defaults = {'data': make()}\n")
    monkeypatch.setattr(task_defaults, "ROOT", tmp_path)
    monkeypatch.setattr(task_defaults, "PROBLEMS_DIR", tmp_path / "tasks" / "problems")
    for cached in (task_defaults._module, task_defaults.registered_classes):
        cached.cache_clear()
    try:
        expected = {"scenes": {"train": 10, "sizes": [1, 2], "val": -1}, "model": {"name": "x"}}
        assert task_defaults.static_defaults("a") == task_defaults.static_defaults("b") == expected
        assert task_defaults.static_defaults("c") is None and task_defaults.static_defaults("zzz") is None
    finally:
        for cached in (task_defaults._module, task_defaults.registered_classes):
            cached.cache_clear()
