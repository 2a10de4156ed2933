"""The trainer: one recipe -> one tracked, resumable, exported run.

``train(recipe)`` opens one MLflow run and calls the task's hooks in order:
build_inputs -> build_model -> compile -> fit (``model.fit`` with callbacks)
-> evaluate -> log the model -> export -> log_figures (last, and a figure that
fails is a warning: it never costs the run its model or export). It logs the flattened
recipe as params, the resolved recipe file, per-epoch metrics, final metrics,
figures and the model, and tags the git commit, the dataset fingerprint and
the export path.

Reliability: training state lives in ``<workdir>/runs/<recipe-key>/`` (Keras
``BackupAndRestore``, written at most every ``train.backup_interval_s``
seconds, plus the MLflow run id), so rerunning the same command after a crash
or ``kill -9`` resumes from the last checkpointed epoch in the SAME MLflow run. A NaN/inf loss stops the run at once with the step named, keeps the
last good checkpoint and marks the MLflow run FAILED.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import keras
import mlflow
import numpy as np

from tasks.core import tracking
from tasks.core.checkpoints import IntervalBackup
from tasks.core.recipe import flatten
from tasks.core.task import RECIPE_ASSET, get_task_class

PIP_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "keras==3.15.1"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and step."""


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


def log_params(log: tracking.SafeLogger, recipe: dict) -> None:
    params = {k: (json.dumps(v) if isinstance(v, (list, dict)) else str(v))[:6000] for k, v in flatten(recipe).items()}
    items = list(params.items())
    for i in range(0, len(items), 90):  # MLflow accepts at most 100 params per batch
        log("log_params", dict(items[i : i + 90]))


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


RUN_ID_FILE = "mlflow_run_id"


def open_run(recipe: dict, state: Path) -> tuple[str, tracking.SafeLogger, str | None]:
    """Start (or resume, if ``state`` holds a run id) the recipe's MLflow run.

    Returns ``(run_id, logger, resumed_run_id or None)``; the run id is stored
    in ``state`` so a rerun after a crash continues the same run. An MLflow
    run already active in the caller (``make demo``'s parent run) becomes its
    parent: the run is started nested under it, in the parent's experiment.
    """
    run_id_file = state / RUN_ID_FILE
    resume_id = run_id_file.read_text().strip() if run_id_file.is_file() else None
    parent = mlflow.active_run()
    if parent is None:
        mlflow.set_experiment(recipe["mlflow"]["experiment"])
    run = mlflow.start_run(run_id=resume_id, run_name=None if resume_id else recipe["mlflow"]["run_name"],
                           nested=parent is not None)
    run_id_file.write_text(run.info.run_id)
    return run.info.run_id, tracking.SafeLogger(state), resume_id


def _train(recipe: dict, workdir: Path) -> TrainResult:
    tracking.configure(workdir)
    keras.utils.set_random_seed(recipe["seed"])
    task = get_task_class(recipe["task"])(recipe)

    # Data and model first: a bad dataset, model option or weight source leaves no run behind.
    inputs = task.build_inputs()
    model = task.build_model(inputs)
    task.compile(model, inputs)
    state = workdir / "runs" / recipe_key(recipe)
    state.mkdir(parents=True, exist_ok=True)
    run_id, log, resume_id = open_run(recipe, state)
    run_id_file = state / RUN_ID_FILE
    if resume_id:
        print(f"resuming MLflow run {run_id} from {state}")
    try:
        if not resume_id:
            log_params(log, recipe)
            log("log_dict", recipe, RECIPE_ASSET)
            log("set_tags", {"git_commit": tracking.git_commit(), "task": recipe["task"], "model": recipe["model"]["name"]})
        log("set_tags", {"dataset": recipe["data"]["dataset"], "dataset_fingerprint": inputs.info.get("fingerprint", "")})
        skipped = inputs.info.get("skipped", {})
        if skipped:
            log("log_metrics", {f"skipped_{k}": float(v) for k, v in skipped.items()})
        log("log_dict", {"class_names": inputs.class_names, "input_shape": list(inputs.input_shape)}, "inputs.json")
        callbacks = [
            StopOnNonFinite(),
            tracking.MlflowEpochMetrics(log),
            IntervalBackup(str(state / "backup"), recipe["train"]["backup_interval_s"]),
        ]
        if recipe["train"]["early_stopping"]:
            callbacks.append(keras.callbacks.EarlyStopping(patience=recipe["train"]["early_stopping"], restore_best_weights=True))
        history = task.fit(model, inputs, callbacks)
        metrics = task.evaluate(model, inputs)
        log("log_metrics", metrics)
        log_model(log, task.inference_model(model))
        export_path = None
        if recipe["export"]["enabled"]:
            name = recipe["export"]["name"] or f"{recipe['data']['dataset']}_{recipe['model']['name']}".replace(":", "_").replace("/", "_")
            export_path = task.export(model, inputs, workdir / recipe["export"]["dir"], name).resolve()
            log("set_tag", "export_path", str(export_path))
        log_figures(task, model, inputs, history, log)  # last: a figure never costs the run its model or export
        log.end_run("FINISHED")
    except TrainingDiverged:
        log.end_run("FAILED")
        raise
    except BaseException:
        log.end_run("KILLED")  # the state folder stays: rerunning resumes this run
        raise
    if log.failed:  # keep the queued tracking calls for `convforge sync-runs`
        shutil.rmtree(state / "backup", ignore_errors=True)
        run_id_file.unlink(missing_ok=True)
    else:
        shutil.rmtree(state, ignore_errors=True)
    return TrainResult(run_id, export_path, metrics, getattr(history, "history", {}))


def log_figures(task, model: keras.Model, inputs, history, log: tracking.SafeLogger) -> None:
    """The task's figures, logged under ``figures/``; a figure that fails is a warning line, not a failed run."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for png in task.log_figures(model, inputs, getattr(history, "history", {}), Path(tmp)):
                log("log_artifact", str(png), "figures")
    except Exception as err:  # noqa: BLE001 - plotting is a report: the model and export are already kept
        from tasks.core.errors import first_line

        print(f"warning: figures not written ({type(err).__name__}: {first_line(err)})", file=sys.stderr)
        log("set_tag", "figures_error", f"{type(err).__name__}: {first_line(err)}")


def log_model(log: tracking.SafeLogger, model: keras.Model) -> None:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    shape = (-1, *[d if d is not None else -1 for d in model.input_shape[1:]])
    out = model.output_shape if not isinstance(model.output_shape, list) else model.output_shape[0]
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(model.inputs[0].dtype), shape)]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, *out[1:]))]),
    )
    if not log.failed:
        try:
            mlflow.keras.log_model(model, name="model", signature=signature, pip_requirements=PIP_REQUIREMENTS)
            return
        except Exception as err:  # noqa: BLE001 - tracking outage: keep the model locally instead
            log.report(err)
    log.spill.parent.mkdir(parents=True, exist_ok=True)
    path = log.spill.parent / "model.keras"
    model.save(path)
    log.queue("log_keras_model", str(path), signature=signature.to_dict(), pip_requirements=PIP_REQUIREMENTS)
