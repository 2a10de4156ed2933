"""kill -9 in the second stage of a transfer schedule; the rerun resumes IN that stage."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from tasks.core.recipe import load_recipe
from tasks.core.trainer import recipe_key

ROOT = Path(__file__).resolve().parents[1]
RECIPE = {
    "task": "transfer",
    "data": {"dataset": "fashion_mnist", "train_limit": 3000, "test_limit": 200},
    "model": {"name": "transfer_classifier", "options": {"backbone": "lenet5", "dropout": 0.0}},
    "train": {"batch_size": 32, "backup_interval_s": 0},
    "transfer": {"cache_activations": False, "stages": [
        {"train": "head", "epochs": 1, "learning_rate": 0.003},
        {"train": "all", "epochs": 3, "learning_rate": 0.001},
    ]},
    "export": {"enabled": False},
}


@pytest.mark.slow
def test_kill_9_in_stage_2_resumes_in_stage_2(tmp_path):
    recipe_file = tmp_path / "transfer.yaml"
    recipe_file.write_text(yaml.safe_dump(RECIPE))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    args = [sys.executable, "-m", "tasks.cli.main", "train", str(recipe_file), "--workdir", str(tmp_path)]
    backup = tmp_path / "runs" / recipe_key(load_recipe(str(recipe_file))) / "backup"
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # stage 1 finished and stage 2 checkpointed one epoch: kill in the middle of its second epoch
    while time.time() < deadline and not (
            (backup / "stage1.done.weights.h5").is_file() and any((backup / "stage2").glob("**/*training_metadata*"))):
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "stage 1/2: finished before the interruption" in out.stdout
    assert "stage 2/2: train all layers" in out.stdout

    client = mlflow.MlflowClient(uri)
    parent = client.get_run(out.stdout.split("mlflow run id: ")[1].split()[0])
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    names = sorted(r.info.run_name for r in children)
    assert names == ["stage1-head", "stage2-all"]  # stage 1 not repeated, stage 2 continued in its own run
    stage2 = next(r for r in children if r.info.run_name == "stage2-all")
    steps = [m.step for m in client.get_metric_history(stage2.info.run_id, "loss")]
    assert sorted(set(steps)) == [0, 1, 2]  # every stage-2 epoch once, none lost
    assert len(steps) <= 4  # at most the one interrupted epoch is redone
    assert parent.info.status == "FINISHED" and parent.data.metrics["test_accuracy"] > 0.5
    assert not backup.parent.exists()
