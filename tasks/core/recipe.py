"""Recipes: one YAML file = one experiment.

A recipe is a nested mapping validated against a schema of defaults: the base
schema (the typed sections of ``tasks.core.recipe_sections``) merged with the
chosen task's ``defaults``. Unknown keys are refused with one line naming the
key and the closest known one; ill-typed values with one line naming the key
and the type it needs. ``--set a.b=v`` overrides any field (``v`` is parsed as
YAML: ``--set train.epochs=3``). ``typed_recipe(recipe)`` (or ``Task.config``)
gives the typed view: ``config.train.epochs``.

Base fields are typed by their dataclass annotations; task fields by their
default's type. Free-form mappings (``model.options`` and any key whose
default is ``{}``) take any keys; a task default of ``None`` accepts any type.
Every value is bounded in
size and depth (YAML alias bombs are refused at once) and every known value is
range-checked before anything runs (``tasks.core.recipe_limits``); error lines
quote at most a few dozen characters of what they received.

Example:
    >>> recipe = load_recipe("tasks/recipes/fashion_mnist_lenet5.yaml", ["train.epochs=1"])
    >>> recipe["train"]["epochs"]
    1
"""

from __future__ import annotations

import copy
import difflib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tasks.core.errors import UserError, quote
from tasks.core.recipe_limits import MAX_RECIPE_BYTES, check_ranges, check_size
from tasks.core.recipe_sections import base_schema, check_value, declared_type, typed_recipe

RECIPES_DIR = Path(__file__).parents[1] / "recipes"

BASE_SCHEMA: dict[str, Any] = base_schema()  # declared, with types and comments, in tasks.core.recipe_sections


def merge(base: dict, extra: dict) -> dict:
    """Deep-merge ``extra`` into a copy of ``base`` (``extra`` wins)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def schema_for(task_name: str) -> dict:
    """The full schema (defaults) of recipes for ``task_name``: the base schema merged with the task's ``defaults``.

    The defaults are read from the task module's source where they can be
    (``tasks.core.task_defaults``), so reading a recipe needs no TensorFlow.

    Example:
        >>> schema_for("classification")["data"]["test_fraction"]
        0.1
    """
    from tasks.core.task_defaults import static_defaults

    registry = sys.modules.get("tasks.core.task")
    defaults = None
    if registry is None or task_name not in registry._TASKS:
        defaults = static_defaults(task_name)
    if defaults is None:  # registered elsewhere (a test's own task), or not declared as plain data
        from tasks.core.task import get_task_class

        defaults = get_task_class(task_name).defaults
    return merge(BASE_SCHEMA, defaults)


def unknown_key(name: str, known: Iterable) -> UserError:
    """The error for an unknown recipe key: the closest known key ("did you mean"), then the known keys.

    Example:
        >>> str(unknown_key("train.epoch", ["epochs", "batch_size"]))
        "unknown recipe key 'train.epoch'; did you mean 'train.epochs'? known keys here: batch_size, epochs"
    """
    prefix, _, key = name.rpartition(".")
    names = sorted(str(k) for k in known)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"did you mean {(prefix + '.' if prefix else '') + close[0]!r}? " if close else ""
    return UserError(f"unknown recipe key {quote(name)}; {hint}known keys here: {', '.join(names)}")


def validate(values: dict, schema: dict, prefix: str = "") -> dict:
    """Check ``values`` against ``schema`` and return ``schema`` updated by them."""
    if not isinstance(values, dict):
        raise UserError(f"recipe section {prefix.rstrip('.') or '<root>'} must be a mapping; received {quote(values)}")
    out = copy.deepcopy(schema)
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in schema:
            raise unknown_key(name, schema)
        default = schema[key]
        if isinstance(default, dict) and default:
            out[key] = validate(value, default, name + ".")
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise UserError(f"recipe key {name!r} must be a mapping; received {quote(value)}")
            out[key] = copy.deepcopy(value)
        else:
            hint = declared_type(name)
            out[key] = check_value(name, value, hint) if hint is not None else _check_type(name, value, default)
    return out


def _check_type(name: str, value: Any, default: Any) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise UserError(
            f"recipe key {name!r} must be {type(default).__name__}; received {quote(value)} ({type(value).__name__})"
        )
    return value


def parse_overrides(pairs: Iterable[str]) -> dict:
    """Turn ``["a.b=1", "c=x"]`` into ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML)."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set {quote(pair)} must look like key=value (e.g. train.epochs=3)")
        key, raw = pair.split("=", 1)
        if len(raw) > MAX_RECIPE_BYTES:
            raise UserError(f"--set {quote(key)}: the value is {len(raw):,} characters; at most {MAX_RECIPE_BYTES:,}")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except (yaml.YAMLError, ValueError):  # ValueError: an integer of more than 4,300 digits
            value = raw
        check_size(value, key.strip())
        node = out
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {quote(pair)} sets a key inside {'.'.join(parts[: i + 1])!r}, which another --set "
                                "made a single value; give one or the other")
        if isinstance(node.get(parts[-1]), dict) and not isinstance(value, dict):
            raise UserError(f"--set {quote(pair)} replaces the section {key.strip()!r} that another --set fills; "
                            "give one or the other")
        node[parts[-1]] = value
    return out


def resolve_path(name_or_path: str | Path) -> Path:
    """A recipe path, or the name of a bundled recipe (``fashion_mnist_lenet5``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    bundled = RECIPES_DIR / (p.name if p.suffix else f"{p.name}.yaml")
    if bundled.is_file():
        return bundled
    raise UserError(f"recipe {str(name_or_path)!r} not found; give a YAML path or one of `convforge recipes`")


def load_recipe(name_or_path: str | Path | dict, overrides: Iterable[str] = (), check_services: bool = True) -> dict:
    """Read, override and validate a recipe (sizes, types, ranges); returns the fully resolved mapping.

    ``check_services``: also check that a ``data.service`` dispatcher answers
    (off where the recipe is only read for its data, e.g. ``evaluate``)."""
    if isinstance(name_or_path, dict):
        raw = copy.deepcopy(name_or_path)
    else:
        path = resolve_path(name_or_path)
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise UserError(f"recipe {path} is {path.stat().st_size:,} bytes; a recipe is at most {MAX_RECIPE_BYTES:,}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, ValueError) as err:
            raise UserError(f"recipe {path} is not valid YAML: {str(err).splitlines()[0][:200]}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"recipe {path} cannot be read: {err}") from None
        if not isinstance(raw, dict):
            raise UserError(f"recipe {path} must be a YAML mapping at the top level")
    check_size(raw, "recipe")
    raw = merge(raw, parse_overrides(overrides))
    task_name = raw.get("task", BASE_SCHEMA["task"])
    if not isinstance(task_name, str):
        raise UserError(f"recipe key 'task' must be a task name; received {quote(task_name)}")
    recipe = validate(raw, schema_for(task_name))
    check_ranges(recipe, services=check_services)
    typed_recipe(recipe)  # the typed sections build from it (tasks read them as Task.config)
    return recipe


def flatten(recipe: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for MLflow params)."""
    flat: dict[str, Any] = {}
    for key, value in recipe.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def list_recipes() -> list[tuple[str, str, str]]:
    """(name, task, description) of every bundled recipe."""
    rows = []
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        rows.append((path.stem, raw.get("task", "classification"), raw.get("description", "")))
    return rows
