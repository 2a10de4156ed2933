"""Recipes: every value's size and range is checked once, before anything runs. YAML alias bombs in
free-form fields are refused in milliseconds, out-of-range values give one short `error:` line
(exit 2, nothing started), and an unreachable data.service dispatcher is one line, not a hang."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.cli.main import main
from tasks.core.errors import UserError
from tasks.core.recipe import flatten, load_recipe, schema_for

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ["model.options", "data.image_size", "data.service", "data.derive", "data.augment", "description"]


def alias_bomb(levels: int, width: int = 9) -> str:
    """YAML whose ``levels`` anchors each repeat the previous one ``width`` times: width**levels leaves."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines)


def bomb_recipe(tmp_path: Path, field: str, levels: int) -> Path:
    body = "\n".join("    " + line for line in alias_bomb(levels).splitlines())
    section, _, key = field.rpartition(".")
    if section:
        text = f"{section}:\n  {key}:\n{body}\n"
    else:
        text = f"{key}:\n{body}\n"
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert len(err[0]) < 400
    return err[0]


@settings(max_examples=20, deadline=None)
@given(field=st.sampled_from(FIELDS), levels=st.integers(5, 12))
def test_alias_bombs_in_free_form_fields_are_refused_at_once(tmp_path_factory, field, levels):
    path = bomb_recipe(tmp_path_factory.mktemp("bomb"), field, levels)
    start = time.perf_counter()
    with pytest.raises(UserError, match="alias bomb") as err:
        load_recipe(path)
    assert time.perf_counter() - start < 1.0
    assert len(str(err.value)) < 300


def test_the_nine_level_bomb_through_the_cli(tmp_path, capsys, mlflow_store):
    path = bomb_recipe(tmp_path, "model.options", 9)
    start = time.perf_counter()
    assert main(["train", str(path), "--workdir", str(tmp_path)]) == 2
    assert "model.options" in one_error_line(capsys) and time.perf_counter() - start < 5
    deep = tmp_path / "deep.yaml"
    deep.write_text("model:\n  options:\n    a: " + "[" * 60 + "]" * 60 + "\n")
    assert main(["train", str(deep), "--workdir", str(tmp_path)]) == 2
    assert "nested more than" in one_error_line(capsys)


OUT_OF_RANGE = [
    ("train.epochs=0", "train.epochs"), ("train.epochs=-1", "train.epochs"), ("train.batch_size=0", "train.batch_size"),
    ("data.val_fraction=1", "data.val_fraction"), ("data.val_fraction=1.5", "data.val_fraction"),
    ("data.val_fraction=-0.1", "data.val_fraction"), ("data.test_fraction=0.95", "data.test_fraction"),
    ("data.train_limit=0", "data.train_limit"), ("data.train_limit=-5", "data.train_limit"),
    ("data.channels=7", "data.channels"), ("seed=-1", "seed"), ("mlflow.experiment=", "mlflow.experiment"),
    ("data.image_size=[5000,5000]", "data.image_size"), ("data.image_size=[28]", "data.image_size"),
    ("train.learning_rate=-1", "train.learning_rate"), ("train.learning_rate=0", "train.learning_rate"),
    ("train.learning_rate=.nan", "train.learning_rate"), ("train.early_stopping=-1", "train.early_stopping"),
    ("train.steps_per_epoch=0", "train.steps_per_epoch"), ("train.epochs=" + "9" * 5000, "train.epochs"),
]


@pytest.mark.parametrize(("override", "key"), OUT_OF_RANGE, ids=[o[:30] for o, _ in OUT_OF_RANGE])
def test_out_of_range_values_are_one_line_before_anything_runs(tmp_path, capsys, mlflow_store, override, key):
    assert main(["train", "fashion_mnist_lenet5", "--set", override, "--workdir", str(tmp_path)]) == 2
    assert key in one_error_line(capsys)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_val_and_test_fractions_together_must_leave_a_training_set(capsys, tmp_path):
    assert main(["train", "fashion_mnist_lenet5", "--set", "data.val_fraction=0.5", "--set", "data.test_fraction=0.5",
                 "--workdir", str(tmp_path)]) == 2
    assert "below 1" in one_error_line(capsys)


def test_a_value_and_a_key_inside_it_conflict_in_one_line(capsys, tmp_path):
    assert main(["train", "fashion_mnist_lenet5", "--set", "train=5", "--set", "train.epochs=1", "--workdir", str(tmp_path)]) == 2
    assert "train" in one_error_line(capsys)
    assert main(["train", "fashion_mnist_lenet5", "--set", "train.epochs=1", "--set", "train=5", "--workdir", str(tmp_path)]) == 2
    one_error_line(capsys)


KEYS = sorted(k for k in flatten(schema_for("classification")) if k not in {"data.service", "task"})
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=30), st.lists(st.integers(-10, 10**5), max_size=4))


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(KEYS), value=VALUES)
def test_any_value_for_any_key_is_accepted_or_one_line(key, value):
    import yaml

    override = f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
    try:
        load_recipe("fashion_mnist_lenet5", [override])
    except UserError as err:
        assert "\n" not in str(err) and len(str(err)) < 400


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_dispatcher_is_one_line_not_a_hang(tmp_path):
    dispatcher = f"grpc://127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tasks.cli.main", "train", "fashion_mnist_lenet5", "--workdir", str(tmp_path),
                          "--set", f"data.service={{dispatcher: '{dispatcher}'}}"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and time.perf_counter() - start < 60
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not answer" in lines[0] and dispatcher in lines[0]
