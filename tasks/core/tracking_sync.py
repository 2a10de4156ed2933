"""Replay of tracking calls queued during an MLflow outage (``convforge sync-runs``).

A queue (``<run_dir>/pending-mlflow.jsonl``, written by ``tasks.core.tracking.SafeLogger``)
holds one JSON call per line, each naming its run: a real run id, or an
``offline-...`` id for a run opened while the server was away (created here,
nested under its parent). Replay goes through ``MlflowClient`` with explicit
run ids, so no run is started or ended as a side effect:

- resumable: after every call the count of sent lines (and the ids given to
  offline runs) is written to ``<queue>.progress.json``; a replay that fails
  half-way (server away again, a file missing) is continued by the next sync,
  which sends only the lines not yet sent;
- a replay error never changes a run's status: only a queued final status
  (``set_terminated``) is applied, in order;
- file paths are absolute in new queues; relative ones (older queues) are
  resolved against the queue's own folder, so sync works from any folder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, RunTag

from tasks.core.tracking import OFFLINE_PREFIX


def read_queue(spill_file: str | Path) -> list[dict]:
    """The queued calls of ``spill_file`` (``ValueError`` on a damaged line)."""
    return [json.loads(line) for line in Path(spill_file).read_text().splitlines() if line.strip()]


def pending_run_ids(spill_file: str | Path) -> list[str]:
    """The run ids named by the queued calls of ``spill_file`` (first seen first; ``offline-`` ids included)."""
    seen: dict[str, None] = {}
    for call in read_queue(spill_file):
        if call.get("run_id"):
            seen.setdefault(call["run_id"], None)
    return list(seen)


def progress_file(spill_file: str | Path) -> Path:
    """Where the replay of ``spill_file`` records how far it got."""
    return Path(str(spill_file) + ".progress.json")


def replay_pending(spill_file: str | Path, run_id: str | None = None) -> tuple[int, list[str]]:
    """Send the not-yet-sent calls of ``spill_file``; returns (calls sent now, real run ids written to).

    ``run_id`` (optional) replaces the run id of calls that name none. The
    queue and its progress file are removed once every call went through.
    """
    path = Path(spill_file)
    if not path.is_file():
        return 0, []
    calls = read_queue(path)
    progress_path = progress_file(path)
    progress = json.loads(progress_path.read_text()) if progress_path.is_file() else {"sent": 0, "runs": {}}
    client = mlflow.MlflowClient()
    runs: dict[str, str] = progress["runs"]
    touched: dict[str, None] = {}
    sent = 0
    for index in range(progress["sent"], len(calls)):
        call = calls[index]
        queued_id = call.get("run_id") or run_id
        if call["method"] == "start_run":
            runs[queued_id] = _create_run(client, call, runs)
        else:
            if not queued_id or queued_id.startswith(OFFLINE_PREFIX) and queued_id not in runs:
                raise ValueError(f"line {index + 1} names no known run ({queued_id!r})")
            _send(client, runs.get(queued_id, queued_id), call, path)
        touched.setdefault(runs.get(queued_id, queued_id), None)
        sent += 1
        progress["sent"] = index + 1
        _write_atomic(progress_path, json.dumps(progress))
    path.unlink()
    progress_path.unlink(missing_ok=True)
    shutil.rmtree(path.parent / "pending-artifacts", ignore_errors=True)
    (path.parent / "model.keras").unlink(missing_ok=True)
    return sent, list(touched)


def _create_run(client: mlflow.MlflowClient, call: dict, runs: dict[str, str]) -> str:
    """Create the run a queued ``start_run`` opened while offline; returns its real id."""
    kw = call["kwargs"]
    parent = runs.get(kw.get("parent"), kw.get("parent"))
    tags = dict(kw.get("tags") or {})
    if parent:
        experiment_id = client.get_run(parent).info.experiment_id
        tags["mlflow.parentRunId"] = parent
    elif kw.get("experiment"):
        found = client.get_experiment_by_name(kw["experiment"])
        experiment_id = found.experiment_id if found else client.create_experiment(kw["experiment"])
    else:
        experiment_id = kw.get("experiment_id") or "0"
    return client.create_run(experiment_id, start_time=call.get("time"), tags=tags, run_name=kw.get("run_name")).info.run_id


def _send(client: mlflow.MlflowClient, run_id: str, call: dict, spill: Path) -> None:
    """One queued call, sent to ``run_id`` with the client (no fluent run is started or ended)."""
    method, args, kwargs = call["method"], list(call["args"]), dict(call["kwargs"])
    stamp = call.get("time") or int(time.time() * 1000)
    if method in ("log_metrics", "log_metric"):
        values = args[0] if method == "log_metrics" else {args[0]: args[1]}
        step = kwargs.get("step") if kwargs.get("step") is not None else (args[2] if method == "log_metric" and len(args) > 2 else 0)
        client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, int(step or 0)) for k, v in values.items()])
    elif method in ("log_params", "log_param"):
        values = args[0] if method == "log_params" else {args[0]: args[1]}
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in values.items()])
    elif method in ("set_tags", "set_tag"):
        values = args[0] if method == "set_tags" else {args[0]: args[1]}
        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in values.items()])
    elif method in ("log_dict", "log_text"):
        getattr(client, method)(run_id, *args, **kwargs)
    elif method == "log_artifact":
        client.log_artifact(run_id, str(_local(args[0], spill)), *args[1:], **kwargs)
    elif method == "log_keras_model":
        _log_keras_model(client, run_id, _local(args[0], spill), kwargs)
    elif method == "set_terminated":
        client.set_terminated(run_id, args[0], end_time=stamp)
    else:
        raise ValueError(f"queued call {method!r} is unknown to this version of convforge")


def _log_keras_model(client: mlflow.MlflowClient, run_id: str, path: Path, kwargs: dict) -> None:
    """Log a queued ``.keras`` model into ``run_id``; the run keeps the status it had."""
    from mlflow.models import ModelSignature

    from models.safe_load import load_keras
    from tasks.core.tracking import _leave_active_run

    if kwargs.get("signature"):
        kwargs["signature"] = ModelSignature.from_dict(kwargs["signature"])
    model = load_keras(path)
    status = client.get_run(run_id).info.status
    mlflow.start_run(run_id=run_id)  # log_model links the model to the active run
    try:
        mlflow.keras.log_model(model, name="model", **kwargs)
    finally:
        _leave_active_run()  # no end_run: that would set a status
        client.update_run(run_id, status=status)


def _local(path: str, spill: Path) -> Path:
    """A queued file: absolute as written, or (older queues: relative to the training folder) found beside the queue."""
    p = Path(path)
    if p.is_absolute():
        return p
    parts = p.parts
    if "pending-artifacts" in parts:
        return spill.parent.joinpath(*parts[parts.index("pending-artifacts"):])
    return spill.parent / p.name


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
