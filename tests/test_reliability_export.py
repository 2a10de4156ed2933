"""Exports of real Keras models: a killed export leaves the previous version loadable by
tf.saved_model.load; several processes exporting at once each get a complete version of their own."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from serving.versions import versions

ROOT = Path(__file__).resolve().parents[1]

EXPORT_SCRIPT = textwrap.dedent("""
    import sys
    import keras
    import models
    from pipelines.decode import decode_image
    from serving.export import export_classifier
    root, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    keras.utils.set_random_seed(seed)
    model = models.build("lenet5", (28, 28, 1), 10)
    for _ in range(count):
        path = export_classifier(model, root, "m", [str(i) for i in range(10)], {"writer.txt": str(seed)}, decode=decode_image)
        print(path, flush=True)
""")

PROBE = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)


def _run(root, seed, count):
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-c", EXPORT_SCRIPT, str(root), str(seed), str(count)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _predict(version: Path) -> np.ndarray:
    served = tf.saved_model.load(str(version))
    return served.signatures["serving_default"](images=tf.constant(PROBE))["probabilities"].numpy()


@pytest.mark.slow
def test_killed_real_export_keeps_the_previous_version_loadable(tmp_path):
    import keras

    import models
    from pipelines.decode import decode_image
    from serving.export import export_classifier

    keras.utils.set_random_seed(1)
    model = models.build("lenet5", (28, 28, 1), 10)
    v1 = export_classifier(model, tmp_path, "m", [str(i) for i in range(10)], {"writer.txt": "1"}, decode=decode_image)
    before = _predict(v1)
    proc = _run(tmp_path, 2, 1)
    deadline = time.time() + 300
    while not any((tmp_path / "m").glob(".tmp-*/v")):  # the SavedModel is being written
        assert proc.poll() is None and time.time() < deadline, "the export finished before it could be killed"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert versions(tmp_path / "m") == [1]  # no partial version 2
    np.testing.assert_allclose(_predict(v1), before, rtol=1e-6)
    assert (v1 / "assets" / "writer.txt").read_text() == "1"
    assert export_classifier(model, tmp_path, "m", [str(i) for i in range(10)], decode=decode_image).name == "2"  # the next export is whole


@pytest.mark.slow
def test_three_processes_exporting_at_once_get_complete_distinct_versions(tmp_path):
    procs = {seed: _run(tmp_path, seed, 1) for seed in (11, 12, 13)}
    written = {}
    for seed, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0
        written[seed] = Path(out.split()[-1])
    assert versions(tmp_path / "m") == [1, 2, 3]
    assert sorted(p.name for p in written.values()) == ["1", "2", "3"]
    outputs = {}
    for seed, path in written.items():  # every version is whole and holds its own writer's model and assets
        assert (path / "assets" / "writer.txt").read_text() == str(seed)
        outputs[seed] = _predict(path)
    assert not np.allclose(outputs[11], outputs[12]) and not np.allclose(outputs[12], outputs[13])

def test_diverged_run_keeps_the_last_good_export_and_its_resume_state(tmp_path, mlflow_store):
    import mlflow

    from tasks.core.recipe import load_recipe
    from tasks.core.trainer import TrainingDiverged, recipe_key, train

    base = {"data": {"dataset": "digits", "image_size": [16, 16], "train_limit": 400, "test_limit": 50},
            "train": {"epochs": 1, "batch_size": 32}, "export": {"name": "digits_model"}}
    good = train(load_recipe(base), tmp_path)
    assert good.export_path.name == "1"
    before = _predict_digits(good.export_path)
    bad = load_recipe({**base, "train": {"epochs": 2, "batch_size": 32, "optimizer": "sgd", "learning_rate": 3e38}})
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, step \d+"):
        train(bad, tmp_path)
    assert versions(tmp_path / "exports" / "digits_model") == [1]  # nothing exported from the diverged run
    np.testing.assert_allclose(_predict_digits(good.export_path), before, rtol=1e-6)
    assert (tmp_path / "runs" / recipe_key(bad) / "mlflow_run_id").is_file()
    statuses = sorted(r.info.status for r in mlflow.search_runs(search_all_experiments=True, output_format="list"))
    assert statuses == ["FAILED", "FINISHED"]


def _predict_digits(version: Path) -> np.ndarray:
    served = tf.saved_model.load(str(version))
    images = tf.constant(PROBE[:, :16, :16, :])
    return served.signatures["serving_default"](images=images)["probabilities"].numpy()
