"""MLflow tracking: where runs go, per-epoch metrics, and resilience to outages.

Default store: ``sqlite:///<cwd>/mlflow.db`` with artifacts in ``./mlruns``
unless ``MLFLOW_TRACKING_URI`` is set (team servers: only that variable
changes). ``SafeLogger`` keeps training alive when the tracking server goes
away: the failure is reported once, and the call (with a copy of any artifact
file) is written to ``<run_dir>/pending-mlflow.jsonl`` for ``convforge
sync-runs`` later. After the first failure it stops calling the server, so a
dead server costs no retries or timeouts for the rest of the run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import mlflow

PENDING_FILE = "pending-mlflow.jsonl"


def configure(workdir: str | Path = ".") -> str:
    """Set the tracking URI (env var, else a SQLite file in ``workdir``) and return it.

    MLflow's per-file download progress bars are turned off (unless the
    environment asks for them): reading a model back printed one per artifact.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


class SafeLogger:
    """Calls MLflow; on the first failure reports once, then queues every call in a local file."""

    def __init__(self, spill_dir: str | Path):
        self.spill = Path(spill_dir) / PENDING_FILE
        self.failed = False

    def __call__(self, method: str, *args, **kwargs) -> None:
        if not self.failed:
            try:
                getattr(mlflow, method)(*args, **kwargs)
                return
            except Exception as err:  # any tracking failure must not stop training
                self.report(err)
        self.queue(method, *args, **kwargs)

    def report(self, err: Exception) -> None:
        """Print the one warning of this run and switch to local queuing."""
        if not self.failed:
            print(f"warning: MLflow tracking failed ({type(err).__name__}: {str(err)[:120]}); "
                  f"keeping metrics and artifacts locally in {self.spill} (upload later: convforge sync-runs)",
                  file=sys.stderr, flush=True)
            self.failed = True

    def queue(self, method: str, *args, **kwargs) -> None:
        """Append one call to the pending file; artifact files are copied beside it first."""
        if method == "log_artifact" and args:
            keep = self.spill.parent / "pending-artifacts" / f"{_count_lines(self.spill):06d}"
            keep.mkdir(parents=True, exist_ok=True)
            args = (str(shutil.copy2(args[0], keep / Path(args[0]).name)), *args[1:])
        active = mlflow.active_run()
        self._append(method, args, kwargs, active.info.run_id if active else None)

    def _append(self, method: str, args: tuple, kwargs: dict, run_id: str | None) -> None:
        self.spill.parent.mkdir(parents=True, exist_ok=True)
        record = {"method": method, "args": args, "kwargs": kwargs, "run_id": run_id}
        with self.spill.open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def end_run(self, status: str) -> None:
        """End the active run; while the server is away the final status is queued instead."""
        active = mlflow.active_run()
        if active is None:
            return
        if self.failed:
            from mlflow.environment_variables import MLFLOW_RUN_ID

            mlflow.tracking.fluent._active_run_stack.get().pop()  # leave the run without a network call
            MLFLOW_RUN_ID.unset()
            self._append("set_terminated", (status,), {}, active.info.run_id)
            return
        try:
            mlflow.end_run(status)  # pops the run first, then sends the status
        except Exception as err:  # noqa: BLE001
            self.report(err)
            self._append("set_terminated", (status,), {}, active.info.run_id)


def _count_lines(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.is_file() else 0


def pending_run_ids(spill_file: str | Path) -> list[str]:
    """The MLflow run ids named by the queued calls of ``spill_file`` (first seen first)."""
    seen: dict[str, None] = {}
    for line in Path(spill_file).read_text().splitlines():
        if line.strip():
            run_id = json.loads(line).get("run_id")
            if run_id:
                seen.setdefault(run_id, None)
    return list(seen)


def replay_pending(spill_file: str | Path, run_id: str) -> int:
    """Re-send queued calls of ``spill_file`` to run ``run_id``; returns how many were sent.

    The file is removed only after every call went through (a second outage
    leaves it for the next try). A queued final status is applied last; without
    one (an interrupted run that will resume) the run keeps the status it had."""
    path = Path(spill_file)
    if not path.is_file():
        return 0
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    status = mlflow.MlflowClient().get_run(run_id).info.status  # kept unless the queue ends the run
    with mlflow.start_run(run_id=run_id):
        for call in lines:
            if call["method"] == "set_terminated":
                status = call["args"][0]
            elif call["method"] == "log_keras_model":
                from mlflow.models import ModelSignature

                from models.safe_load import load_keras

                kwargs = dict(call["kwargs"])
                if kwargs.get("signature"):
                    kwargs["signature"] = ModelSignature.from_dict(kwargs["signature"])
                mlflow.keras.log_model(load_keras(call["args"][0]), name="model", **kwargs)
            else:
                getattr(mlflow, call["method"])(*call["args"], **call["kwargs"])
    mlflow.MlflowClient().set_terminated(run_id, status)
    path.unlink()
    shutil.rmtree(path.parent / "pending-artifacts", ignore_errors=True)
    return len(lines)


class MlflowEpochMetrics(keras.callbacks.Callback):
    """Log every epoch's metrics (train and ``val_``) with step = epoch index."""

    def __init__(self, log: SafeLogger, prefix: str = ""):
        super().__init__()
        self.log = log
        self.prefix = prefix

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        values = {f"{self.prefix}{k}": float(v) for k, v in (logs or {}).items() if _is_number(v)}
        if values:
            self.log("log_metrics", values, step=epoch)


def _is_number(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def git_commit() -> str:
    """The repository's HEAD commit (with ``-dirty``), or ``unknown`` outside git."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
