"""Tracking outages: a real `mlflow server` killed after the first epoch does not stop training;
the failure is reported once, nothing is retried, and `convforge sync-runs` uploads what was queued."""

import json
import time
from pathlib import Path

import mlflow
import pytest
from mlflow_servers import KillServerAfterFirstEpoch, free_port, start_server, stop_server

from models.safe_load import load_keras
from tasks.cli.main import main
from tasks.core.recipe import load_recipe
from tasks.core.task import register_task
from tasks.core.tracking import PENDING_FILE, SafeLogger
from tasks.core.trainer import recipe_key, train
from tasks.problems.classification import ClassificationTask

EPOCHS = 4


@register_task("classification_with_server_outage")
class OutageTask(ClassificationTask):
    """The classification task with one extra callback (the fault injector)."""

    def fit(self, model, inputs, callbacks):
        return super().fit(model, inputs, [*callbacks, KillServerAfterFirstEpoch()])


@pytest.mark.slow
def test_server_killed_mid_run_training_finishes_and_sync_uploads_everything(tmp_path, monkeypatch, capsys):
    server, url = start_server(tmp_path)
    KillServerAfterFirstEpoch.server, KillServerAfterFirstEpoch.seconds = server, []
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        recipe = load_recipe({
            "task": "classification_with_server_outage",
            "data": {"dataset": "digits", "train_limit": 600, "test_limit": 100, "image_size": [16, 16]},
            "model": {"name": "lenet5"},
            "train": {"epochs": EPOCHS, "batch_size": 32},
        })
        result = train(recipe, tmp_path)  # must not raise although the server died after epoch 1
    finally:
        stop_server(server)
    err = capsys.readouterr().err
    assert err.count("MLflow tracking failed") == 1  # reported once
    assert result.export_path is not None and (result.export_path / "saved_model.pb").is_file()
    assert result.metrics["test_accuracy"] > 0.3
    # no retries after the first failure: later epochs are not slowed by the dead server
    assert max(KillServerAfterFirstEpoch.seconds[2:]) < 5 + 3 * max(KillServerAfterFirstEpoch.seconds[0], 0.5)

    state = tmp_path / "runs" / recipe_key(recipe)
    calls = [json.loads(line) for line in (state / PENDING_FILE).read_text().splitlines()]
    methods = [c["method"] for c in calls]
    assert {c["run_id"] for c in calls} == {result.run_id}
    epochs_queued = sorted(c["kwargs"]["step"] for c in calls if c["method"] == "log_metrics" and "step" in c["kwargs"])
    assert epochs_queued[-1] == EPOCHS - 1
    assert "log_keras_model" in methods and methods[-1] == "set_terminated" and calls[-1]["args"] == ["FINISHED"]
    figures = [c["args"][0] for c in calls if c["method"] == "log_artifact"]
    assert figures and all(Path(f).is_file() and str(state) in f for f in figures)  # copied, not temp paths

    # the server's store is reachable again (here: directly); sync-runs uploads the queue
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'server.db'}")
    assert main(["sync-runs", "--workdir", str(tmp_path)]) == 0
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'server.db'}")
    steps = sorted(m.step for m in client.get_metric_history(result.run_id, "val_accuracy"))
    assert steps == list(range(EPOCHS))  # epoch 0 sent live, the rest synced: nothing lost
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    assert "export_path" in run.data.tags
    assert "figures" in {a.path for a in client.list_artifacts(result.run_id)}
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'server.db'}")
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{result.run_id}/model"))
    finally:
        mlflow.set_tracking_uri(None)
    assert load_keras(next(local.rglob("*.keras"))).output_shape == (None, 10)  # the queued model, uploaded
    assert not (state / PENDING_FILE).exists()
    assert main(["sync-runs", "--workdir", str(tmp_path)]) == 0  # idempotent: nothing left


def test_safe_logger_spills_after_one_failure_without_calling_again(tmp_path, monkeypatch, capsys):
    port = free_port()  # nothing listens there: every call would fail
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
    try:
        log = SafeLogger(tmp_path)
        start = time.perf_counter()
        log("log_metric", "loss", 1.0)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(50):
            log("log_metric", "loss", float(i), step=i)
        rest = time.perf_counter() - start
    finally:
        mlflow.set_tracking_uri(None)
    assert log.failed and capsys.readouterr().err.count("MLflow tracking failed") == 1
    assert len((tmp_path / PENDING_FILE).read_text().splitlines()) == 51
    assert rest < max(1.0, first)  # 50 queued calls cost less than the one network failure


def test_replay_of_an_interrupted_run_keeps_its_status_and_queue_on_failure(tmp_path, mlflow_store):
    client = mlflow.MlflowClient()
    run = client.create_run(client.create_experiment("outage"))  # RUNNING: killed before it could end
    spill = tmp_path / PENDING_FILE
    spill.write_text(json.dumps({"method": "log_metrics", "args": [{"loss": 0.25}], "kwargs": {"step": 3},
                                 "run_id": run.info.run_id}) + "\n")
    assert main(["sync-runs", "--workdir", str(tmp_path.parent / "nowhere")]) == 0  # nothing to sync there
    (tmp_path / "runs" / "k").mkdir(parents=True)
    spill.rename(tmp_path / "runs" / "k" / PENDING_FILE)
    (tmp_path / "runs" / "k" / "mlflow_run_id").write_text(run.info.run_id)  # resume state: kept after sync
    assert main(["sync-runs", "--workdir", str(tmp_path)]) == 0
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.25]
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    assert (tmp_path / "runs" / "k" / "mlflow_run_id").is_file()
    (tmp_path / "runs" / "k" / PENDING_FILE).write_text('{"method": "log_metric", "args": ["x", 1.0], "kwargs": {}, '
                                                       '"run_id": "0123456789abcdef0123456789abcdef"}\n')
    assert main(["sync-runs", "--workdir", str(tmp_path)]) == 1  # unknown run: reported, queue kept
    assert (tmp_path / "runs" / "k" / PENDING_FILE).is_file()
