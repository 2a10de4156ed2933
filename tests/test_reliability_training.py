"""Reliability of training: kill -9 and resume in the same MLflow run; NaN loss stops cleanly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from tasks.core.checkpoints import IntervalBackup
from tasks.core.recipe import load_recipe
from tasks.core.trainer import TrainingDiverged, recipe_key, train

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.train_limit=3000", "data.test_limit=200", "train.batch_size=32", "export.enabled=false"]


@pytest.mark.slow
def test_kill_9_mid_training_resumes_the_same_run(tmp_path):
    overrides = ["data.train_limit=20000", "data.test_limit=200", "train.batch_size=32", "export.enabled=false", "train.epochs=6",
                 "train.backup_interval_s=0"]
    args = [sys.executable, "-m", "tasks.cli.main", "train", "fashion_mnist_lenet5", "--workdir", str(tmp_path)]
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



class _CrashAtEpochEnd(keras.callbacks.Callback):
    """Stops ``fit`` with an exception at the end of epoch ``epoch`` (1-based), after the backup ran."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def _tiny_fit(backup_dir, min_interval_s, extra_callbacks):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, np.arange(32) % 3, epochs=5, verbose=0, callbacks=[IntervalBackup(str(backup_dir), min_interval_s), *extra_callbacks])


@pytest.mark.parametrize("interval, saved", [(0, True), (3600, False)])
def test_interval_backup_saves_each_epoch_at_0_and_nothing_within_the_interval(tmp_path, interval, saved):
    with pytest.raises(KeyboardInterrupt):
        _tiny_fit(tmp_path, interval, [_CrashAtEpochEnd(2)])
    meta = list(tmp_path.glob("**/*training_metadata*"))
    assert bool(meta) == saved
    seen = []
    _tiny_fit(tmp_path, interval, [keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))])
    assert seen == ([2, 3, 4] if saved else [0, 1, 2, 3, 4])  # resumes after the checkpointed epochs only
    assert IntervalBackup(str(tmp_path), 7.5).with_dir(str(tmp_path / "b")).min_interval_s == 7.5
