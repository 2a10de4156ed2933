"""Typed recipe sections: the base recipe's fields, their types and defaults, as frozen dataclasses.

These classes are the one place the base recipe is declared: ``BASE_SCHEMA``
(``tasks.core.recipe``) is built from their defaults, and ``load_recipe``
checks every base value against their annotations (one error line naming the
key and the expected type) and then builds them. The recipe itself stays a
plain nested mapping (what YAML, ``--set``, MLflow params and the logged
``recipe.yaml`` hold); ``typed_recipe`` gives the typed view of one, and
``Task.config`` that of the task's recipe. Sections also answer mapping
access (``section["epochs"]``, ``section.get("epochs")``) so code written for
the mapping takes them as they are.

Task-owned sections (``transfer``, ``detection``, ``scenes`` ...) stay
mappings, in ``Recipe.sections``: their task declares them in ``defaults``.

Example:
    >>> from tasks.core.recipe import load_recipe
    >>> config = typed_recipe(load_recipe("fashion_mnist_lenet5", ["train.epochs=2"]))
    >>> config.train.epochs, config.data["dataset"]
    (2, 'fashion_mnist')
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tasks.core.errors import UserError, quote

TASK_ADDED = {"schema": False}  # declared for its type, but only tasks that use it add it to their schema


class Section:
    """Mapping access on a section dataclass: ``s["key"]``, ``s.get("key")``, ``"key" in s``, ``s.to_dict()``."""

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.keys()}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], prefix: str = ""):
        """The section from a mapping: declared keys type-checked, missing ones defaulted, others left out."""
        hints = field_types(cls)
        known = {k: check_value(f"{prefix}{k}", v, hints[k]) for k, v in values.items() if k in hints}
        return cls(**known)


@dataclass(frozen=True)
class DataSection(Section):
    dataset: str = "fashion_mnist"  # catalog name, or folder:PATH / csv:PATH
    val_fraction: float = 0.1
    train_limit: int | None = None  # keep the first N training examples (after the seeded shuffle)
    test_limit: int | None = None
    image_size: list | None = None  # [H, W] to resize to, None keeps the native size
    channels: int | None = None  # 1 or 3 to convert, None keeps the native channels
    augment: list = field(default_factory=list)  # augmentation policy: a list of names or {name: {...}}
    derive: str | dict | None = None  # rows | raster | {clip: {frames: 8, step: 2}}: images as 1D sequences / 3D clips
    shuffle_buffer: int = 10000  # streamed (file) sets; in-memory sets get a full permutation each epoch
    service: dict | None = None  # {dispatcher: grpc://host:port, mode: ...}: augment on tf.data service workers
    test_fraction: float = field(default=0.0, metadata=TASK_ADDED)  # tasks with a test split set their default


@dataclass(frozen=True)
class ModelSection(Section):
    name: str = "lenet5"
    options: dict = field(default_factory=dict)  # free-form: the builder's keyword arguments


@dataclass(frozen=True)
class TrainSection(Section):
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 0.001
    schedule: str = "constant"  # constant | cosine (decays to 0 over all epochs)
    weight_decay: float = 0.0
    precision: str = "float32"
    early_stopping: int = 0  # patience in epochs, 0 = off
    backup_interval_s: int = 30  # resume checkpoint at an epoch end at most this often (0: every epoch)
    steps_per_epoch: int | None = None


@dataclass(frozen=True)
class ExportSection(Section):
    enabled: bool = True
    dir: str = "exports"
    name: str | None = None


@dataclass(frozen=True)
class MlflowSection(Section):
    experiment: str = "convforge"
    run_name: str | None = None


@dataclass(frozen=True)
class Recipe(Section):
    """A whole recipe, typed: base sections as dataclasses, task sections (``sections``) as mappings."""

    task: str = "classification"
    seed: int = 42
    description: str = ""
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    export: ExportSection = field(default_factory=ExportSection)
    mlflow: MlflowSection = field(default_factory=MlflowSection)
    sections: dict = field(default_factory=dict, metadata=TASK_ADDED)

    SECTIONS: ClassVar[dict[str, type[Section]]] = {
        "data": DataSection, "model": ModelSection, "train": TrainSection, "export": ExportSection, "mlflow": MlflowSection}

    def __getitem__(self, key: str) -> Any:
        return self.sections[key] if key in self.sections else super().__getitem__(key)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], prefix: str = "") -> Recipe:
        hints = field_types(cls)
        known: dict[str, Any] = {}
        for key, value in values.items():
            if key in cls.SECTIONS:
                if not isinstance(value, Mapping):
                    raise UserError(f"recipe section {key} must be a mapping; received {quote(value)}")
                known[key] = cls.SECTIONS[key].from_mapping(value, f"{key}.")
            elif key in hints and key != "sections":
                known[key] = check_value(key, value, hints[key])
        known["sections"] = {k: v for k, v in values.items() if k not in hints}
        return cls(**known)


def typed_recipe(recipe: Mapping[str, Any]) -> Recipe:
    """The typed view of a resolved recipe mapping (as ``load_recipe`` returns it).

    Example:
        >>> typed_recipe({"train": {"epochs": 3}}).train.epochs
        3
    """
    return Recipe.from_mapping(recipe)


def base_schema() -> dict[str, Any]:
    """The base recipe's defaults as a nested mapping (task-added fields left out).

    Example:
        >>> base_schema()["train"]["epochs"]
        10
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(Recipe):
        if f.metadata.get("schema", True):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            out[f.name] = _defaults(default) if isinstance(default, Section) else default
    return out


def _defaults(section: Section) -> dict[str, Any]:
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section) if f.metadata.get("schema", True)}


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """``{field: type}`` of a section dataclass (annotations resolved; shared, do not change it).

    Example:
        >>> field_types(ExportSection)["enabled"]
        <class 'bool'>
    """
    return typing.get_type_hints(cls)


def declared_type(key: str) -> Any | None:
    """The declared type of a dotted base-recipe key (``"train.epochs"`` -> ``int``); None if it is not declared.

    Example:
        >>> declared_type("train.epochs"), declared_type("transfer.stages")
        (<class 'int'>, None)
    """
    section, _, name = key.rpartition(".")
    if not section:
        hints = field_types(Recipe)
        return hints[name] if name in hints and name not in Recipe.SECTIONS and name != "sections" else None
    cls = Recipe.SECTIONS.get(section)
    return field_types(cls).get(name) if cls else None


def describe(hint: Any) -> str:
    """A type as an error line names it: ``int``, ``str or null``, ``mapping``.

    Example:
        >>> describe(declared_type("data.derive"))
        'str or mapping or null'
    """
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    names = {type(None): "null", dict: "mapping"}
    return " or ".join(names.get(t, getattr(t, "__name__", str(t))) for t in options)


def check_value(name: str, value: Any, hint: Any) -> Any:
    """``value`` if it has the declared type ``hint`` (ints widened to float where a float is declared).

    Raises one ``UserError`` line naming the key and the type it needs.

    Example:
        >>> check_value("train.learning_rate", 1, float)
        1.0
    """
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is Any or (option is type(None) and value is None):
            return value
        if option is bool and isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is list and isinstance(value, (list, tuple)):
            return value
        if option in (str, dict) and isinstance(value, option):
            return value
    fix = ""
    if str in options and isinstance(value, (int, float)):  # YAML read `run_name=2024` as a number
        fix = f"; write text that looks like a number in quotes: {name}='\"{value}\"'"
    raise UserError(f"recipe key {name!r} must be {describe(hint)}; received {quote(value)} ({type(value).__name__}){fix}")
