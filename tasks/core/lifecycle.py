"""One run lifecycle, shared by the trainer, the multi-worker loop and the workflows.

``RunLifecycle`` is the only place a training run is opened, described,
finished and closed, so the single-process trainer (``tasks.core.trainer``)
and the multi-worker loop (``tasks.core.distributed``) cannot drift apart:

    with RunLifecycle(recipe, workdir, task, state) as run:   # open or resume the run
        run.describe(inputs)                                   # params, recipe, tags, skipped_*, inputs.json
        history = task.fit(model, inputs, run.callbacks())     # per-epoch metrics
        export_path, metrics = run.finish(model, inputs, history)  # evaluate, model, export, figures

On leaving the block the run ends FINISHED, FAILED (``TrainingDiverged``) or
KILLED (anything else: the state folder stays and rerunning resumes). Every
MLflow call goes through the lifecycle's ``tracking.SafeLogger``, which is
also handed to the task (``task.tracker``) for its own nested runs and
metrics, so an outage queues all of them in ``<state>/pending-mlflow.jsonl``.

The logged model is always ``task.inference_model(model)`` (side heads such as
Inception's auxiliary classifiers dropped); figures come last, and a figure
that fails is a warning line (it never costs the run its model or export).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import keras

from tasks.core import tracking
from tasks.core.recipe import flatten
from tasks.core.task import RECIPE_ASSET, Inputs, Task

RUN_ID_FILE = "mlflow_run_id"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and step."""


def log_params(log: tracking.SafeLogger, recipe: dict) -> None:
    """The flattened recipe as MLflow params (values cut to 6000 characters, 90 per batch)."""
    params = {k: (json.dumps(v) if isinstance(v, (list, dict)) else str(v))[:6000] for k, v in flatten(recipe).items()}
    items = list(params.items())
    for i in range(0, len(items), 90):  # MLflow accepts at most 100 params per batch
        log("log_params", dict(items[i : i + 90]))


def export_name(recipe: dict) -> str:
    """``export.name``, else ``<dataset>_<model>`` made safe for a folder name."""
    return recipe["export"]["name"] or f"{recipe['data']['dataset']}_{recipe['model']['name']}".replace(":", "_").replace("/", "_")


class RunLifecycle:
    """Open -> describe -> (fit) -> finish -> close of one tracked training run (see the module docstring)."""

    def __init__(self, recipe: dict, workdir: str | Path, task: Task, state: Path, replicas: int = 1):
        self.recipe, self.workdir, self.task, self.state = recipe, Path(workdir), task, Path(state)
        self.replicas = replicas
        self.log = tracking.SafeLogger(self.state)
        self.run_id = ""
        self.resumed = False

    # -- open / close ----------------------------------------------------------------
    def __enter__(self) -> RunLifecycle:
        """Start the run, or continue the one whose id the state folder keeps (a rerun after a crash)."""
        tracking.configure(self.workdir)
        self.state.mkdir(parents=True, exist_ok=True)
        id_file = self.state / RUN_ID_FILE
        stored = id_file.read_text().strip() if id_file.is_file() else None
        mlflow_section = self.recipe["mlflow"]
        self.run_id = self.log.start_run(run_id=stored, run_name=mlflow_section["run_name"],
                                         experiment=mlflow_section["experiment"])
        self.resumed = self.log.resumed
        id_file.write_text(self.run_id)
        if self.resumed:
            print(f"resuming MLflow run {self.run_id} from {self.state}")
        self.task.tracker = self.log
        return self

    def __exit__(self, kind, err, tb) -> None:
        if kind is None:
            self.log.end_run("FINISHED")
            if self.log.failed:  # keep the queued tracking calls for `convforge sync-runs`
                shutil.rmtree(self.state / "backup", ignore_errors=True)
                shutil.rmtree(self.state / "checkpoint", ignore_errors=True)
                (self.state / RUN_ID_FILE).unlink(missing_ok=True)
            else:
                shutil.rmtree(self.state, ignore_errors=True)
            return
        self.log.end_run("FAILED" if issubclass(kind, TrainingDiverged) else "KILLED")  # the state folder stays

    # -- the run's content -------------------------------------------------------------
    def describe(self, inputs: Inputs) -> None:
        """Params, the resolved recipe and identity tags (once per run); dataset tags, skipped files, inputs.json."""
        log, recipe = self.log, self.recipe
        if not self.resumed:
            log_params(log, recipe)
            log("log_dict", recipe, RECIPE_ASSET)
            log("set_tags", {"git_commit": tracking.git_commit(), "task": recipe["task"], "model": recipe["model"]["name"],
                             "workers": str(self.replicas)})
        log("set_tags", {"dataset": recipe["data"]["dataset"], "dataset_fingerprint": inputs.info.get("fingerprint", "")})
        skipped = inputs.info.get("skipped", {})
        if skipped:
            log("log_metrics", {f"skipped_{k}": float(v) for k, v in skipped.items()})
        log("log_dict", {"class_names": inputs.class_names, "input_shape": list(inputs.input_shape)}, "inputs.json")

    def callbacks(self) -> list[keras.callbacks.Callback]:
        """The tracking callbacks of ``fit``: every epoch's metrics, step = epoch index."""
        return [tracking.MlflowEpochMetrics(self.log)]

    def finish(self, model: keras.Model, inputs: Inputs, history) -> tuple[Path | None, dict[str, float]]:
        """Evaluate, log the metrics and the inference model, export, then the figures; returns (export path, metrics)."""
        task, recipe = self.task, self.recipe
        metrics = task.evaluate(model, inputs)
        self.log("log_metrics", metrics)
        self.log.log_model(task.inference_model(model))
        export_path = None
        if recipe["export"]["enabled"]:
            export_path = task.export(model, inputs, self.workdir / recipe["export"]["dir"], export_name(recipe)).resolve()
            self.log("set_tag", "export_path", str(export_path))
        self.log_figures(model, inputs, getattr(history, "history", history) or {})
        return export_path, metrics

    def log_figures(self, model: keras.Model, inputs: Inputs, history: dict) -> None:
        """The task's figures under ``figures/``; a figure that fails is a warning line and a tag, not a failed run."""
        try:
            with tempfile.TemporaryDirectory() as tmp:
                for png in self.task.log_figures(model, inputs, history, Path(tmp)):
                    self.log("log_artifact", str(png), "figures")
        except Exception as err:  # noqa: BLE001 - plotting is a report: the model and export are already kept
            from tasks.core.errors import first_line

            print(f"warning: figures not written ({type(err).__name__}: {first_line(err)})", file=sys.stderr)
            self.log("set_tag", "figures_error", f"{type(err).__name__}: {first_line(err)}")
