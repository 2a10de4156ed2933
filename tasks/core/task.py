"""The Task: one problem's view of training, with small named hooks.

The hook names mirror TensorFlow Model Garden's ``base_task`` so readers feel at
home: ``build_inputs``, ``build_model``, ``build_losses``, ``build_metrics``,
plus ``evaluate``, ``log_figures`` and ``export``. The trainer
(``tasks.core.trainer``) calls them in order inside one MLflow run; training itself
goes through ``model.fit`` so Keras callbacks and MLflow see every epoch.

A task module registers its class with ``@register_task("name")`` and puts its
own recipe section(s) in ``defaults`` (merged into the base recipe schema).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from tasks.core.errors import UserError, clean_message, quote
from tasks.core.recipe_sections import Recipe, typed_recipe

_TASKS: dict[str, type[Task]] = {}
RECIPE_ASSET = "recipe.yaml"  # the resolved recipe, logged to MLflow and shipped in exports


def register_task(name: str):
    """Class decorator: make a Task available as ``task: name`` in recipes."""

    def wrap(cls):
        cls.name = name
        _TASKS[name] = cls
        return cls

    return wrap


def _discover() -> None:
    """Import every module of ``tasks.problems``: each registers its Task."""
    import tasks.problems as problems

    for info in pkgutil.iter_modules(problems.__path__):
        importlib.import_module(f"tasks.problems.{info.name}")


def get_task_class(name: str) -> type[Task]:
    """The Task class registered as ``name``."""
    if name not in _TASKS:
        _discover()
    if name not in _TASKS:
        raise UserError(f"unknown task {name!r}; choose one of: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


def progress_verbosity() -> int:
    """Keras ``verbose``: a live progress bar on a terminal, one line per epoch in logs."""
    return 1 if sys.stdout.isatty() else 2


@dataclass
class Inputs:
    """What ``build_inputs`` returns: batched datasets and what the model needs to know."""

    train: tf.data.Dataset
    val: tf.data.Dataset | None
    test: tf.data.Dataset | None
    input_shape: tuple[int, ...]
    class_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)  # counts, fingerprint, skipped files...


class Task:
    """Base class; subclasses override the hooks they need."""

    name = "base"
    defaults: dict = {}

    def __init__(self, recipe: dict):
        self.recipe = recipe

    @property
    def tracker(self):
        """The ``tracking.SafeLogger`` every MLflow write of the task goes through (nested runs, extra metrics).

        The run lifecycle hands its own in (an outage then queues the task's
        calls with the run's); outside one, a logger queuing under ``./runs/``.
        """
        if getattr(self, "_tracker", None) is None:
            from tasks.core import tracking

            self._tracker = tracking.SafeLogger(tracking.spill_dir(".", self.name))
        return self._tracker

    @tracker.setter
    def tracker(self, log) -> None:
        self._tracker = log

    # -- hooks -----------------------------------------------------------------
    def build_inputs(self) -> Inputs:
        raise NotImplementedError

    @property
    def config(self) -> Recipe:
        """The typed view of ``self.recipe`` (``self.config.train.epochs``); built afresh, so never stale."""
        return typed_recipe(self.recipe)

    def model_options(self, inputs: Inputs) -> dict[str, Any]:
        """Keyword arguments for ``models.build``: ``model.options``; tasks add their own (anchors, landmarks...)."""
        return dict(self.config.model.options)

    def finish_model(self, model: keras.Model, inputs: Inputs) -> keras.Model:
        """What ``build_model`` returns for the built network: checked or wrapped by tasks that need it."""
        return model

    def build_model(self, inputs: Inputs) -> keras.Model:
        """``models.build(model.name, ...)`` with ``model_options``, then ``finish_model``; build errors are one line.

        Example:
            >>> task = get_task_class("classification")(load_recipe("fashion_mnist_lenet5"))
            >>> task.build_model(Inputs(None, None, None, (28, 28, 1), list("0123456789"))).name
            'lenet5'
        """
        from models import build
        from models.errors import WeightsUnavailableError

        name, options = self.config.model.name, self.model_options(inputs)
        try:
            model = build(name, inputs.input_shape, len(inputs.class_names), **options)
        except WeightsUnavailableError as err:
            raise UserError(f"model.options.weights: {err}; pass a local file with --set model.options.weights=PATH") from None
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"model {quote(name)} with options {quote(options, 60)} on input {inputs.input_shape}: "
                            f"{clean_message(err)}") from None
        return self.finish_model(model, inputs)

    def inference_model(self, model: keras.Model) -> keras.Model:
        """The model that is evaluated, logged and served (training-only outputs dropped)."""
        return model

    def build_losses(self):
        raise NotImplementedError

    def build_metrics(self) -> list:
        return []

    def build_optimizer(self, steps_per_epoch: int | None = None) -> keras.optimizers.Optimizer:
        train = self.recipe["train"]
        return make_optimizer(train, train["steps_per_epoch"] or steps_per_epoch, "train")

    def batches_per_epoch(self, inputs: Inputs | None) -> int | None:
        """``train.steps_per_epoch``, else the training images / batch size (rounded up), else None (unknown)."""
        if self.recipe["train"]["steps_per_epoch"]:
            return int(self.recipe["train"]["steps_per_epoch"])
        if inputs is not None and inputs.info.get("sizes"):
            return -(-inputs.info["sizes"]["train"] // self.recipe["train"]["batch_size"])
        return None

    def compile(self, model: keras.Model, inputs: Inputs | None = None) -> None:
        compile_model(model, optimizer=self.build_optimizer(self.batches_per_epoch(inputs)), loss=self.build_losses(),
                      metrics=self.build_metrics())

    def fit_data(self, inputs: Inputs) -> dict[str, Any]:
        """The data arguments of ``model.fit``: ``x``, ``steps_per_epoch``, ``validation_data``, ``validation_steps``.

        A training epoch is ``batches_per_epoch`` steps. Where the training
        dataset does not hold exactly that many batches (streamed files, whose
        undecodable ones drop out; the tf.data service; ``train.steps_per_epoch``
        larger or smaller than the split) it is repeated, so Keras never runs
        out of data mid-epoch and never counts a step without a batch: the
        schedule, the progress bar and the optimizer's step count agree. A
        validation set of unknown length is repeated and read for
        ceil(images / batch) steps per evaluation, one pass.
        """
        steps = self.batches_per_epoch(inputs)
        train = inputs.train
        if steps is not None and int(train.cardinality()) != steps:
            train = train.repeat()
        val, val_steps = inputs.val, None
        n_val = (inputs.info.get("sizes") or {}).get("val")
        if val is not None and int(val.cardinality()) < 0 and n_val:
            val, val_steps = val.repeat(), -(-n_val // self.recipe["train"]["batch_size"])
        return {"x": train, "steps_per_epoch": steps, "validation_data": val, "validation_steps": val_steps}

    def fit(self, model: keras.Model, inputs: Inputs, callbacks: list) -> keras.callbacks.History:
        return model.fit(
            **self.fit_data(inputs),
            epochs=self.recipe["train"]["epochs"],
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=progress_verbosity(),
        )

    def evaluate(self, model: keras.Model, inputs: Inputs) -> dict[str, float]:
        if inputs.test is None:
            return {}
        values = model.evaluate(inputs.test, return_dict=True, verbose=0)
        return {f"test_{k}": float(v) for k, v in values.items()}

    def log_figures(self, model: keras.Model, inputs: Inputs, history, out_dir: Path) -> list[Path]:
        """Write figures (PNG) into ``out_dir``; the trainer logs them to MLflow."""
        return []

    def export(self, model: keras.Model, inputs: Inputs, root: str | Path, name: str) -> Path:
        raise NotImplementedError


def make_optimizer(settings: dict, steps_per_epoch: int | None, where: str) -> keras.optimizers.Optimizer:
    """An optimizer from ``settings`` (the recipe's ``train`` section or one transfer stage).

    Keys used: ``optimizer``, ``learning_rate``, ``schedule`` (``constant``, or
    ``cosine``: decays the rate to 0 over ``epochs x steps_per_epoch`` steps),
    ``epochs``, ``weight_decay``. ``where`` names the recipe section in errors.
    """
    rate: Any = settings["learning_rate"]
    if settings["schedule"] == "cosine":
        if not steps_per_epoch:
            raise UserError(f"{where}.schedule: cosine needs train.steps_per_epoch for this dataset")
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=int(steps_per_epoch) * settings["epochs"])
    elif settings["schedule"] != "constant":
        raise UserError(f"{where}.schedule {settings['schedule']!r} is unknown; use constant or cosine")
    config: dict[str, Any] = {"learning_rate": rate}
    if settings["weight_decay"]:
        config["weight_decay"] = settings["weight_decay"]
    try:
        return keras.optimizers.get({"class_name": str(settings["optimizer"]).lower(), "config": config})
    except ValueError:
        raise UserError(f"unknown optimizer {settings['optimizer']!r} in {where}.optimizer; try adam, adamw, sgd, rmsprop") from None


def compile_model(model: keras.Model, **compile_args) -> None:
    """``model.compile(**compile_args)``, then create the optimizer's variables at once.

    Without a distribution strategy Keras (TF backend) creates them inside the
    first traced train step, and ``tf.function`` traces a function that creates
    variables twice; built here, the train step is traced once (a LeNet-5
    first epoch takes ~35% less CPU). Call it inside a strategy's scope where
    one is used.
    """
    model.compile(**compile_args)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
