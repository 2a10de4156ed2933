"""The rest of the outage path (issue #21 items 4 and 6), against real MLflow stores in tmp folders.

- a queue written while training in one folder syncs from any other folder;
- a replay that fails half-way is resumed by the next sync (nothing sent twice)
  and never marks the run FAILED;
- a resume whose stored MLflow run is not in the current store (mlflow.db lost,
  MLFLOW_TRACKING_URI changed) warns once and starts a new run, keeping the
  Keras checkpoint so training still resumes.
"""

import socket
from pathlib import Path

import keras
import mlflow
import pytest

from tasks.cli.main import main
from tasks.core.recipe import load_recipe
from tasks.core.task import register_task
from tasks.core.tracking import PENDING_FILE, SafeLogger
from tasks.core.trainer import recipe_key, train
from tasks.problems.classification import ClassificationTask


def _dead_uri() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once closed


def _queue_during_outage(store: str, monkeypatch, spill: Path, figure: Path, metrics_before: int = 3, metrics_after: int = 3):
    """A run started on ``store``; the server then goes away and the rest of the run is queued in ``spill``."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("outage")
    run = mlflow.start_run()
    mlflow.log_metric("loss", 9.0, step=0)  # sent while the store was there
    mlflow.set_tracking_uri(_dead_uri())  # the server is gone
    log = SafeLogger(spill)
    for step in range(1, metrics_before + 1):
        log("log_metrics", {"loss": float(step)}, step=step)
    log("log_artifact", str(figure), "figures")
    for step in range(metrics_before + 1, metrics_before + metrics_after + 1):
        log("log_metrics", {"loss": float(step)}, step=step)
    log.end_run("FINISHED")
    mlflow.set_tracking_uri(store)
    return run.info.run_id


def test_sync_runs_from_another_folder_finds_the_queued_files(tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    train_dir, elsewhere = tmp_path / "train", tmp_path / "elsewhere"
    train_dir.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(train_dir)  # training ran here with the default --workdir .
    (train_dir / "curves.png").write_bytes(b"\x89PNG not really")
    run_id = _queue_during_outage(store, monkeypatch, Path("runs") / "k", Path("curves.png"))
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    try:
        assert main(["sync-runs", "--workdir", str(train_dir)]) == 0
        client = mlflow.MlflowClient(store)
        assert [a.path for a in client.list_artifacts(run_id, "figures")] == ["figures/curves.png"]
        assert client.get_run(run_id).info.status == "FINISHED"
    finally:
        mlflow.set_tracking_uri(None)


def test_failed_replay_is_resumed_and_never_marks_the_run_failed(tmp_path, monkeypatch, capsys):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    figure = tmp_path / "curves.png"
    figure.write_bytes(b"\x89PNG not really")
    state = tmp_path / "runs" / "k"
    run_id = _queue_during_outage(store, monkeypatch, state, figure)
    queued = next((state / "pending-artifacts").rglob("curves.png"))
    kept = queued.read_bytes()
    queued.unlink()  # the replay of this call fails half-way through the queue
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    client = mlflow.MlflowClient(store)
    try:
        assert main(["sync-runs", "--workdir", str(tmp_path)]) == 1
        assert "could not sync" in capsys.readouterr().out
        assert client.get_run(run_id).info.status == "RUNNING"  # not FAILED: the run itself did not fail
        assert sorted(m.step for m in client.get_metric_history(run_id, "loss")) == [0, 1, 2, 3]
        assert (state / PENDING_FILE).is_file()

        queued.write_bytes(kept)  # the cause is gone: the next sync sends only what was not sent
        assert main(["sync-runs", "--workdir", str(tmp_path)]) == 0
        assert sorted(m.step for m in client.get_metric_history(run_id, "loss")) == [0, 1, 2, 3, 4, 5, 6]
        assert client.get_run(run_id).info.status == "FINISHED"
        assert [a.path for a in client.list_artifacts(run_id, "figures")] == ["figures/curves.png"]
        assert not (state / PENDING_FILE).exists()
    finally:
        mlflow.set_tracking_uri(None)


class InterruptOnce(keras.callbacks.Callback):
    """Stops the process-like run (KeyboardInterrupt) at the end of epoch 2, the first time only."""

    fired = False

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1 and not InterruptOnce.fired:
            InterruptOnce.fired = True
            raise KeyboardInterrupt


@register_task("classification_interrupted_once")
class InterruptedTask(ClassificationTask):
    def fit(self, model, inputs, callbacks):
        return super().fit(model, inputs, [*callbacks, InterruptOnce()])


def test_lost_store_after_a_crash_starts_a_new_run_and_still_resumes_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'first.db'}")
    recipe = load_recipe({
        "task": "classification_interrupted_once",
        "data": {"dataset": "digits", "train_limit": 256, "test_limit": 64, "image_size": [16, 16]},
        "model": {"name": "lenet5"},
        "train": {"epochs": 3, "batch_size": 64, "backup_interval_s": 0},
        "export": {"enabled": False},
    })
    InterruptOnce.fired = False
    with pytest.raises(KeyboardInterrupt):
        train(recipe, tmp_path)
    state = tmp_path / "runs" / recipe_key(recipe)
    old_id = (state / "mlflow_run_id").read_text().strip()
    assert (state / "backup").is_dir()

    second = f"sqlite:///{tmp_path / 'second.db'}"  # mlflow.db lost, or the URI now points elsewhere
    monkeypatch.setenv("MLFLOW_TRACKING_URI", second)
    capsys.readouterr()
    try:
        result = train(recipe, tmp_path)
        err = capsys.readouterr().err
        warnings = [line for line in err.splitlines() if old_id in line]
        assert len(warnings) == 1 and warnings[0].startswith("warning:") and "new run" in warnings[0]
        assert result.run_id != old_id
        assert len(result.history["loss"]) == 1  # epochs 1-2 came from the checkpoint: only epoch 3 trained
        run = mlflow.MlflowClient(second).get_run(result.run_id)
        assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
        assert "model.name" in run.data.params  # a new run is described in full
    finally:
        mlflow.set_tracking_uri(None)
    assert not state.exists()


def test_runs_opened_during_an_outage_are_created_nested_by_sync(tmp_path, monkeypatch):
    import numpy as np

    store = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    mlflow.set_tracking_uri(store)
    log = SafeLogger(tmp_path / "runs" / "k")
    parent = log.start_run(run_name="parent", experiment="outage")
    mlflow.set_tracking_uri(_dead_uri())
    with log.run(run_name="stage2") as child:  # opened while the server is away: a local id
        assert child.startswith("offline-") and log.failed
        log("log_params", {"stage.index": 2})
        log("log_image", np.full((4, 4, 3), 200, np.uint8), artifact_file="progress/step_00001.png")
        log("log_text", "hello\n", "notes.md")
    log("set_tag", "export_path", "/nowhere")
    log.end_run("FINISHED")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    try:
        assert main(["sync-runs", "--workdir", str(tmp_path)]) == 0
        client = mlflow.MlflowClient(store)
        runs = client.search_runs([client.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
        assert [r.info.run_name for r in runs] == ["stage2"]
        stage = runs[0]
        assert stage.info.status == "FINISHED" and stage.data.params == {"stage.index": "2"}
        assert {a.path for a in client.list_artifacts(stage.info.run_id, "progress")} == {"progress/step_00001.png"}
        assert "notes.md" in {a.path for a in client.list_artifacts(stage.info.run_id)}
        assert client.get_run(parent).data.tags["export_path"] == "/nowhere"
        assert client.get_run(parent).info.status == "FINISHED"
    finally:
        mlflow.set_tracking_uri(None)
