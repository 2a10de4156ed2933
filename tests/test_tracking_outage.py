"""Tracking outages through the whole stack, with real `mlflow server` processes.

- a tracking URI where nothing listens is one ``error:`` line within seconds
  (exit 2, no traceback, nothing left behind) instead of minutes of retries;
- a server killed in the middle of a transfer recipe costs the next epoch
  seconds, not minutes (MLflow's HTTP retries bounded by ``tracking.configure``),
  training finishes, and after a restart ``convforge sync-runs`` uploads the
  rest, the nested stage runs opened during the outage included.
"""

import time
from pathlib import Path

import mlflow
import pytest
from mlflow_servers import KillServerAfterFirstEpoch, free_port, start_server, stop_server

from tasks.cli.main import main
from tasks.core.recipe import load_recipe
from tasks.core.task import register_task
from tasks.core.trainer import train
from tasks.problems.transfer import TransferTask


def test_unreachable_server_at_start_is_one_error_line_within_seconds(tmp_path, monkeypatch, capsys):
    url = f"http://127.0.0.1:{free_port()}"  # a typo'd port: nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        monkeypatch.delenv(name, raising=False)
    start = time.perf_counter()
    code = main(["train", "fashion_mnist_lenet5", "--workdir", str(tmp_path), "--set", "data.train_limit=64",
                 "--set", "train.epochs=1"])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and seconds < 20
    assert len(err) == 1 and err[0].startswith(f"error: MLflow tracking server {url} is unreachable")
    assert "MLFLOW_TRACKING_URI" in err[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert main(["sync-runs", "--workdir", str(tmp_path)]) == 0  # nothing queued: nothing to reach
    start = time.perf_counter()  # reads of finished runs say the same, not "run not found"
    assert main(["ensemble", "0" * 32, "1" * 32, "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert time.perf_counter() - start < 20 and len(err) == 1 and f"{url} is unreachable" in err[0]


@register_task("transfer_with_server_outage")
class OutageTransferTask(TransferTask):
    """The transfer task with one extra callback (the fault injector) in every stage."""

    def fit(self, model, inputs, callbacks):
        return super().fit(model, inputs, [*callbacks, KillServerAfterFirstEpoch()])


@pytest.mark.slow
def test_server_killed_mid_transfer_run_then_sync_uploads_the_nested_stage_runs(tmp_path, monkeypatch, capsys):
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        monkeypatch.delenv(name, raising=False)  # the defaults convforge sets must bound the retries
    server, url = start_server(tmp_path)
    KillServerAfterFirstEpoch.server, KillServerAfterFirstEpoch.seconds = server, []
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    recipe = load_recipe({
        "task": "transfer_with_server_outage",
        "data": {"dataset": "fashion_mnist", "train_limit": 512, "test_limit": 128},
        "model": {"name": "transfer_classifier", "options": {"backbone": "lenet5", "dropout": 0.0}},
        "train": {"batch_size": 64},
        "transfer": {"cache_activations": False, "cache_dir": str(tmp_path / "cache"), "stages": [
            {"train": "head", "epochs": 2, "learning_rate": 0.003},
            {"train": "all", "epochs": 2, "learning_rate": 0.001},
        ]},
        "export": {"enabled": False},
    })
    try:
        result = train(recipe, tmp_path)  # must finish although the server died after the first epoch
    finally:
        stop_server(server)
    err = capsys.readouterr().err
    assert err.count("MLflow tracking failed") == 1
    first, killed, *rest = KillServerAfterFirstEpoch.seconds
    print(f"epoch seconds: first {first:.2f}, after the kill {killed:.2f}, later {[round(s, 2) for s in rest]}")
    assert killed < 20 + 3 * first  # bounded retries: seconds, not the minutes of MLflow's defaults
    assert max(rest) < 5 + 3 * first  # no calls at all once the failure is known

    restarted, url = start_server(tmp_path)  # the same store, back (on another port)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        assert main(["sync-runs", "--workdir", str(tmp_path)]) == 0
        client = mlflow.MlflowClient(url)
        parent = client.get_run(result.run_id)
        assert parent.info.status == "FINISHED" and "test_accuracy" in parent.data.metrics
        children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
        by_name = {r.info.run_name: r for r in children}
        assert sorted(by_name) == ["stage1-head", "stage2-all"]  # stage 2 was opened during the outage
        for name, stage in by_name.items():
            assert stage.info.status == "FINISHED", name
            assert sorted(m.step for m in client.get_metric_history(stage.info.run_id, "loss")) == [0, 1], name
        assert "stage.index" in by_name["stage2-all"].data.params
        assert "figures" in {a.path for a in client.list_artifacts(result.run_id)}
        mlflow.set_tracking_uri(url)
        try:  # the model queued as a .keras file, uploaded into the parent run
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{result.run_id}/model"))
        finally:
            mlflow.set_tracking_uri(None)
        assert list(local.rglob("*.keras"))
        assert main(["sync-runs", "--workdir", str(tmp_path)]) == 0  # nothing left, nothing sent twice
        assert sorted(m.step for m in client.get_metric_history(by_name["stage2-all"].info.run_id, "loss")) == [0, 1]
    finally:
        stop_server(restarted)
