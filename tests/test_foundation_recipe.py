"""Recipes: bundled ones validate; overrides apply; unknown and ill-typed keys are refused."""

import pytest
import yaml

from tasks.core.errors import UserError
from tasks.core.recipe import RECIPES_DIR, flatten, list_recipes, load_recipe, parse_overrides


def test_every_bundled_recipe_validates():
    names = [name for name, _, _ in list_recipes()]
    assert "fashion_mnist_lenet5" in names
    for name in names:
        recipe = load_recipe(name)
        assert recipe["task"] and recipe["model"]["name"]


def test_overrides_are_parsed_as_yaml_and_applied():
    assert parse_overrides(["train.epochs=3", "data.image_size=[32, 32]", "mlflow.run_name=x"]) == {
        "train": {"epochs": 3}, "data": {"image_size": [32, 32]}, "mlflow": {"run_name": "x"}}
    recipe = load_recipe("fashion_mnist_lenet5", ["train.epochs=3", "train.learning_rate=1"])
    assert recipe["train"]["epochs"] == 3
    assert recipe["train"]["learning_rate"] == 1.0 and isinstance(recipe["train"]["learning_rate"], float)


@pytest.mark.parametrize("override, words", [
    ("train.epoch=3", ["unknown recipe key 'train.epoch'", "epochs"]),
    ("trian.epochs=3", ["unknown recipe key 'trian'"]),
    ("train.epochs=three", ["'train.epochs' must be int", "three"]),
    ("train.epochs=2.5", ["'train.epochs' must be int"]),
    ("export.enabled=1", ["'export.enabled' must be bool"]),
    ("train=5", ["train must be a mapping"]),
])
def test_bad_keys_are_named_in_one_line(override, words):
    with pytest.raises(UserError) as err:
        load_recipe("fashion_mnist_lenet5", [override])
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_file_recipe_and_flatten(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": "lenet5", "options": {"activation": "relu"}}, "train": {"epochs": 1}}))
    recipe = load_recipe(str(path))
    flat = flatten(recipe)
    assert flat["model.options.activation"] == "relu" and flat["train.epochs"] == 1
    assert (RECIPES_DIR / "fashion_mnist_lenet5.yaml").is_file()


def test_missing_and_invalid_recipe_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_recipe(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(str(bad))
