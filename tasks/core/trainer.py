"""The trainer: one recipe -> one tracked, resumable, exported run.

``train(recipe)`` builds the task's inputs, model and optimizer, then runs
``fit`` inside one ``tasks.core.lifecycle.RunLifecycle`` (the same lifecycle
the multi-worker loop uses): the run is opened, described (flattened recipe as
params, the resolved recipe file, tags: git commit, dataset fingerprint,
skipped files), per-epoch metrics are logged, then the task evaluates, the
inference model is logged, exported, and the figures come last (a figure that
fails is a warning: it never costs the run its model or export).

Reliability: training state lives in ``<workdir>/runs/<recipe-key>/`` (Keras
``BackupAndRestore``, written at most every ``train.backup_interval_s``
seconds, plus the MLflow run id), so rerunning the same command after a crash
or ``kill -9`` resumes from the last checkpointed epoch in the SAME MLflow run.
If that run is not in the current store (mlflow.db lost, ``MLFLOW_TRACKING_URI``
changed) a warning line says so and a new run starts; training still resumes
from the checkpoint. A NaN/inf loss stops the run at once with the step named,
keeps the last good checkpoint and marks the MLflow run FAILED.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from tasks.core import tracking
from tasks.core.checkpoints import IntervalBackup
from tasks.core.lifecycle import RUN_ID_FILE, RunLifecycle, TrainingDiverged, log_params  # noqa: F401 (re-exported)
from tasks.core.task import get_task_class
from tasks.core.tracking import PIP_REQUIREMENTS  # noqa: F401 (re-exported)


@dataclass
class TrainResult:
    run_id: str
    export_path: Path | None
    metrics: dict[str, float]
    history: dict[str, list] = field(default_factory=dict)


class StopOnNonFinite(keras.callbacks.Callback):
    """Raise ``TrainingDiverged`` on the first NaN/inf batch loss (before any checkpoint of it)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(f"loss became {float(loss)} at epoch {self.epoch + 1}, step {batch + 1}; "
                                   "lower train.learning_rate or check the data")


def recipe_key(recipe: dict) -> str:
    """A short stable hash of the resolved recipe (names the resume folder)."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:12]


PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def _set_precision(policy: str) -> None:
    """Set Keras' global dtype policy (``train.precision``); output layers stay float32 in every builder."""
    if policy not in PRECISIONS:
        from tasks.core.errors import UserError

        raise UserError(f"train.precision {policy!r} is unknown; use one of {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_global_policy(policy)


@contextlib.contextmanager
def precision_policy(recipe: dict):
    """``train.precision`` as the global dtype policy inside the block, float32 after it."""
    _set_precision(recipe["train"]["precision"])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def train(recipe: dict, workdir: str | Path = ".") -> TrainResult:
    """Run ``recipe`` (already validated by ``tasks.core.recipe.load_recipe``).

    ``train.precision`` sets the global dtype policy for this run only: it is
    reset to float32 afterwards, so later runs in the same process are unaffected.
    """
    with precision_policy(recipe):
        return _train(recipe, Path(workdir))


def _train(recipe: dict, workdir: Path) -> TrainResult:
    tracking.preflight(workdir)  # an unreachable server is one error line before any work; run:<id> weights read MLflow
    keras.utils.set_random_seed(recipe["seed"])
    task = get_task_class(recipe["task"])(recipe)

    # Data and model first: a bad dataset, model option or weight source leaves no run behind.
    inputs = task.build_inputs()
    model = task.build_model(inputs)
    task.compile(model, inputs)
    state = workdir / "runs" / recipe_key(recipe)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync  # > 1 inside a MirroredStrategy's scope
    with RunLifecycle(recipe, workdir, task, state, replicas) as run:
        run.describe(inputs)
        callbacks = [
            StopOnNonFinite(),
            *run.callbacks(),
            IntervalBackup(str(state / "backup"), recipe["train"]["backup_interval_s"]),
        ]
        if recipe["train"]["early_stopping"]:
            callbacks.append(keras.callbacks.EarlyStopping(patience=recipe["train"]["early_stopping"], restore_best_weights=True))
        history = task.fit(model, inputs, callbacks)
        export_path, metrics = run.finish(model, inputs, history)
    return TrainResult(run.run_id, export_path, metrics, getattr(history, "history", {}))
