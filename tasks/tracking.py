"""MLflow tracking: where runs go, per-epoch metrics, and resilience to outages.

Default store: ``sqlite:///<cwd>/mlflow.db`` with artifacts in ``./mlruns``
unless ``MLFLOW_TRACKING_URI`` is set (team servers: only that variable
changes). ``safe_log`` keeps training alive when the tracking server goes
away: the failure is reported once, and the call is written to
``<run_dir>/pending-mlflow.jsonl`` for ``convforge sync-runs`` later.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import mlflow

PENDING_FILE = "pending-mlflow.jsonl"


def configure(workdir: str | Path = ".") -> str:
    """Set the tracking URI (env var, else a SQLite file in ``workdir``) and return it."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


class SafeLogger:
    """Calls MLflow; on failure reports once and queues the call in a local file."""

    def __init__(self, spill_dir: str | Path):
        self.spill = Path(spill_dir) / PENDING_FILE
        self.failed = False

    def __call__(self, method: str, *args, **kwargs) -> None:
        try:
            getattr(mlflow, method)(*args, **kwargs)
        except Exception as err:  # any tracking failure must not stop training
            if not self.failed:
                print(f"warning: MLflow tracking failed ({type(err).__name__}: {str(err)[:120]}); "
                      f"keeping metrics locally in {self.spill}", file=sys.stderr)
                self.failed = True
            self.spill.parent.mkdir(parents=True, exist_ok=True)
            with self.spill.open("a") as f:
                f.write(json.dumps({"method": method, "args": args, "kwargs": kwargs}, default=str) + "\n")


def replay_pending(spill_file: str | Path, run_id: str) -> int:
    """Re-send queued calls of ``spill_file`` to run ``run_id``; returns how many were sent."""
    path = Path(spill_file)
    if not path.is_file():
        return 0
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with mlflow.start_run(run_id=run_id):
        for call in lines:
            getattr(mlflow, call["method"])(*call["args"], **call["kwargs"])
    path.unlink()
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
