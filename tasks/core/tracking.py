"""MLflow tracking: where runs go, per-epoch metrics, and resilience to outages.

Every MLflow write of convforge goes through ``SafeLogger`` (runs are opened
and ended by it too). Default store: ``sqlite:///<workdir>/mlflow.db`` with
artifacts in ``./mlruns`` unless ``MLFLOW_TRACKING_URI`` is set (team servers:
only that variable changes).

Outages:

- A server that cannot be reached when a top-level run starts is one error
  line within seconds (``check_reachable``): a URI that never worked is almost
  always a typo or a server not started, and queuing a whole run for it would
  hide that until ``sync-runs``.
- A server that goes away mid-run does not stop training: the failure is
  reported once, then every call (with a copy of any artifact file, the model
  saved as ``.keras``) is appended to ``<run_dir>/pending-mlflow.jsonl`` and
  the server is not called again, so a dead server costs no retries or
  timeouts for the rest of the run. Runs started after that (transfer stages,
  ensembles) get a local ``offline-...`` id and are created by ``convforge
  sync-runs`` (``tasks.core.tracking_sync``), nested as they would have been.
- HTTP retries are bounded (``configure``: 2 retries, 15 s per request unless
  the MLflow variables say otherwise) so the first failure costs seconds, not
  the ~4 minutes of MLflow's defaults.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import keras
import mlflow

PENDING_FILE = "pending-mlflow.jsonl"
OFFLINE_PREFIX = "offline-"
PIP_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "keras==3.15.1"]
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
_OFFLINE_RUNS: list[str] = []  # runs opened while the server was away (innermost last), shared by all loggers


def configure(workdir: str | Path = ".") -> str:
    """Set the tracking URI (env var, else a SQLite file in ``workdir``) and return it.

    MLflow's per-file download progress bars are turned off and its HTTP
    retries bounded (``HTTP_DEFAULTS``) unless the environment sets them.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


def preflight(workdir: str | Path = ".") -> str:
    """``configure``, then (no run open in this process) ``check_reachable``: a dead URI fails before any work."""
    uri = configure(workdir)
    if mlflow.active_run() is None and not _OFFLINE_RUNS:
        check_reachable(uri)
    return uri


def check_reachable(uri: str | None = None, timeout_s: float = 5.0) -> None:
    """Raise ``UserError`` (one line naming the URI and the fix) when an HTTP tracking server does not answer.

    Any HTTP answer counts as reachable; only http(s) URIs are probed.
    """
    import urllib.error
    import urllib.request

    from tasks.core.errors import UserError

    uri = uri or mlflow.get_tracking_uri()
    if not str(uri).startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{str(uri).rstrip('/')}/health", timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answered
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(f"MLflow tracking server {uri} is unreachable ({reason}); start it (mlflow server ...) "
                        "or fix MLFLOW_TRACKING_URI (unset it to track in <workdir>/mlflow.db)") from None


def spill_dir(workdir: str | Path, kind: str) -> Path:
    """A fresh folder under ``<workdir>/runs/`` for one workflow run's queue (created only if something is queued)."""
    return Path(workdir).resolve() / "runs" / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


class SafeLogger:
    """Opens, writes to and ends MLflow runs; on the first failure reports once, then queues every call locally."""

    def __init__(self, spill_dir: str | Path):
        self.spill = Path(spill_dir).resolve() / PENDING_FILE  # absolute: sync-runs may run from anywhere
        self.failed = False
        self.resumed = False  # the last start_run continued an existing run
        self._opened_offline: set[str] = set()

    # -- runs ----------------------------------------------------------------------
    def run_id(self) -> str | None:
        """The innermost open run (an ``offline-`` id while the server is away), or None."""
        if _OFFLINE_RUNS:
            return _OFFLINE_RUNS[-1]
        active = mlflow.active_run()
        return active.info.run_id if active else None

    def start_run(self, run_id: str | None = None, run_name: str | None = None, experiment: str | None = None,
                  nested: bool | None = None, tags: dict | None = None) -> str:
        """Open (or with ``run_id``, continue) a run and return its id; ``nested`` defaults to "a run is open".

        A top-level run needs a reachable server (``check_reachable``); a
        stored ``run_id`` missing from the store is one warning line and a new
        run (``resumed`` tells which happened). While the server is away the
        run is opened locally and queued.
        """
        parent = self.run_id()
        nested = parent is not None if nested is None else nested
        self.resumed = False
        if run_id and run_id in self._opened_offline:  # reopened in this process: its calls join the same queue
            _OFFLINE_RUNS.append(run_id)
            self.resumed = True
            return run_id
        if run_id and run_id.startswith(OFFLINE_PREFIX):
            run_id = None  # a run that only exists in another process's queue cannot be continued: a new one
        if not self.failed:
            if parent is None:
                check_reachable()
            try:
                return self._start_online(run_id, run_name, experiment, nested, tags)
            except Exception as err:  # noqa: BLE001 - the server went away: continue offline
                self.report(err)
        if run_id:  # an existing run: its calls are queued under its real id
            _OFFLINE_RUNS.append(run_id)
            self.resumed = True
            return run_id
        new = OFFLINE_PREFIX + uuid.uuid4().hex
        self._append("start_run", (), {"run_name": run_name, "experiment": experiment,
                                       "experiment_id": mlflow.tracking.fluent._active_experiment_id,
                                       "parent": parent if nested else None, "tags": tags or {}}, new)
        _OFFLINE_RUNS.append(new)
        self._opened_offline.add(new)
        return new

    def _start_online(self, run_id, run_name, experiment, nested, tags) -> str:
        from mlflow.exceptions import MlflowException

        if run_id:
            try:
                mlflow.MlflowClient().get_run(run_id)
            except MlflowException as err:
                if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                print(f"warning: MLflow run {run_id} is not in {mlflow.get_tracking_uri()} (store lost or "
                      "MLFLOW_TRACKING_URI changed); starting a new run, training resumes from its checkpoint",
                      file=sys.stderr, flush=True)
                run_id = None
        if not nested and experiment:
            mlflow.set_experiment(experiment)
        run = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name, nested=nested, tags=tags)
        self.resumed = run_id is not None
        return run.info.run_id

    def end_run(self, status: str = "FINISHED") -> None:
        """End the innermost run; while the server is away the final status is queued instead."""
        if _OFFLINE_RUNS:
            self._append("set_terminated", (status,), {}, _OFFLINE_RUNS.pop())
            return
        active = mlflow.active_run()
        if active is None:
            return
        if self.failed:
            _leave_active_run()
            self._append("set_terminated", (status,), {}, active.info.run_id)
            return
        try:
            mlflow.end_run(status)  # pops the run first, then sends the status
        except Exception as err:  # noqa: BLE001
            self.report(err)
            self._append("set_terminated", (status,), {}, active.info.run_id)

    @contextlib.contextmanager
    def run(self, run_id: str | None = None, run_name: str | None = None, experiment: str | None = None,
            nested: bool | None = None, tags: dict | None = None):
        """``start_run`` as a block yielding the run id; ends FINISHED, FAILED on an error, KILLED on Ctrl-C."""
        rid = self.start_run(run_id, run_name, experiment, nested, tags)
        try:
            yield rid
        except KeyboardInterrupt:
            self.end_run("KILLED")
            raise
        except BaseException:
            self.end_run("FAILED")
            raise
        self.end_run("FINISHED")

    # -- writes --------------------------------------------------------------------
    def __call__(self, method: str, *args, **kwargs) -> None:
        """``mlflow.<method>(*args, **kwargs)`` on the innermost run, or queued once the server failed."""
        if not self.failed and not _OFFLINE_RUNS:
            try:
                getattr(mlflow, method)(*args, **kwargs)
                return
            except Exception as err:  # any tracking failure must not stop training
                self.report(err)
        self.queue(method, *args, **kwargs)

    def log_model(self, model: keras.Model) -> None:
        """Log a Keras model as ``model`` with a tensor signature (queued as a ``.keras`` file during an outage)."""
        signature = keras_signature(model)
        if not self.failed and not _OFFLINE_RUNS:
            try:
                mlflow.keras.log_model(model, name="model", signature=signature, pip_requirements=PIP_REQUIREMENTS)
                return
            except Exception as err:  # noqa: BLE001 - tracking outage: keep the model locally instead
                self.report(err)
        keep = self._keep_dir()
        path = keep / "model.keras"
        model.save(path)
        self._append("log_keras_model", (str(path),), {"signature": signature.to_dict(),
                                                       "pip_requirements": PIP_REQUIREMENTS}, self.run_id())

    def report(self, err: Exception) -> None:
        """Print the one warning of this logger and switch to local queuing."""
        if not self.failed:
            print(f"warning: MLflow tracking failed ({type(err).__name__}: {str(err)[:120]}); "
                  f"keeping metrics and artifacts locally in {self.spill} (upload later: convforge sync-runs)",
                  file=sys.stderr, flush=True)
            self.failed = True

    def queue(self, method: str, *args, **kwargs) -> None:
        """Append one call to the pending file; artifact files and images are copied beside it first."""
        if method == "log_image":  # numpy pixels do not fit a JSON line: a PNG file instead
            from PIL import Image

            image = args[0] if args else kwargs.pop("image")
            artifact_file = kwargs.pop("artifact_file", None) or (args[1] if len(args) > 1 else "image.png")
            path = self._keep_dir() / Path(artifact_file).name
            Image.fromarray(image).save(path)
            method, args, kwargs = "log_artifact", (str(path), str(Path(artifact_file).parent).strip(".") or None), {}
        elif method == "log_artifact" and args:
            args = (str(shutil.copy2(args[0], self._keep_dir() / Path(args[0]).name)), *args[1:])
        self._append(method, args, kwargs, self.run_id())

    def _keep_dir(self) -> Path:
        keep = self.spill.parent / "pending-artifacts" / f"{_count_lines(self.spill):06d}"
        keep.mkdir(parents=True, exist_ok=True)
        return keep

    def _append(self, method: str, args: tuple, kwargs: dict, run_id: str | None) -> None:
        self.spill.parent.mkdir(parents=True, exist_ok=True)
        record = {"method": method, "args": args, "kwargs": kwargs, "run_id": run_id, "time": int(time.time() * 1000)}
        with self.spill.open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())


def keras_signature(model: keras.Model):
    """The MLflow tensor signature of a Keras model's first input and (first) output."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    shape = (-1, *[d if d is not None else -1 for d in model.input_shape[1:]])
    out = model.output_shape if not isinstance(model.output_shape, list) else model.output_shape[0]
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(model.inputs[0].dtype), shape)]),
                          outputs=Schema([TensorSpec(np.dtype("float32"), (-1, *out[1:]))]))


def _leave_active_run() -> None:
    """Pop MLflow's innermost active run without any network call (its status is queued or kept)."""
    from mlflow.environment_variables import MLFLOW_RUN_ID

    stack = mlflow.tracking.fluent._active_run_stack.get()
    if stack:
        stack.pop()
    MLFLOW_RUN_ID.unset()


def _count_lines(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.is_file() else 0


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
