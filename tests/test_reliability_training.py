"""Reliability of training: kill -9 and resume in the same MLflow run; NaN loss stops cleanly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from tasks.recipe import load_recipe
from tasks.trainer import TrainingDiverged, recipe_key, train

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.train_limit=3000", "data.test_limit=200", "train.batch_size=32", "export.enabled=false"]


@pytest.mark.slow
def test_kill_9_mid_training_resumes_the_same_run(tmp_path):
    overrides = ["data.train_limit=20000", "data.test_limit=200", "train.batch_size=32", "export.enabled=false", "train.epochs=6"]
    args = [sys.executable, "-m", "tasks.cli", "train", "fashion_mnist_lenet5", "--workdir", str(tmp_path)]
    for o in overrides:
        args += ["--set", o]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "TF_NUM_INTRAOP_THREADS": "1"}
    state = tmp_path / "runs" / recipe_key(load_recipe("fashion_mnist_lenet5", overrides))
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    # wait until at least one epoch is checkpointed, then kill in the middle of the next one
    while time.time() < deadline and not any((state / "backup").glob("**/*training_metadata*")):
        time.sleep(0.2)
        assert proc.poll() is None, "training ended before it could be killed"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    run_id = (state / "mlflow_run_id").read_text().strip()
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    done_before = len(client.get_metric_history(run_id, "loss"))
    assert 1 <= done_before < 6

    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"mlflow run id: {run_id}" in out.stdout  # the same MLflow run continued
    assert "resuming MLflow run" in out.stdout
    steps = [m.step for m in client.get_metric_history(run_id, "val_accuracy")]
    assert sorted(set(steps)) == list(range(6))  # every epoch logged once it finished, nothing lost
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["test_accuracy"] > 0.6
    assert not state.exists()  # state is cleaned after success


def test_nan_loss_stops_with_the_step_named_and_fails_the_run(tmp_path, mlflow_store):
    recipe = load_recipe("fashion_mnist_lenet5", SMALL + ["train.epochs=2", "train.optimizer=sgd", "train.learning_rate=3.0e+38"])
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) at epoch 1, step \d+"):
        train(recipe, tmp_path)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert runs[0].info.status == "FAILED"
    assert (tmp_path / "runs" / recipe_key(recipe) / "mlflow_run_id").is_file()  # state kept for inspection
