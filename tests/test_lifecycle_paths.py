"""One run lifecycle: the single-process trainer and the multi-worker loop log the same things.

Inception v1 with its two training-only side heads, on a small image folder
with a few corrupt files, trained once by ``convforge train`` and once by
``convforge train --distributed`` (a one-worker MultiWorkerMirroredStrategy,
the custom loop): MLflow must hold the same params, tags, inputs.json,
metric names (``skipped_*`` included) and a logged model without side heads.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from reliability_faults import encode, expected_skips, real_images, write_bad_images

from tasks.core.runs import load_run

ROOT = Path(__file__).resolve().parents[1]


def _folder(root: Path) -> Path:
    images, labels = real_images(96, 32, seed=5)
    for i, (im, lb) in enumerate(zip(images, labels, strict=True)):
        (root / f"class{lb % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"class{lb % 3}" / f"{i}.png").write_bytes(encode(im))
    write_bad_images(root / "class0")
    return root


def _train(workdir: Path, data: Path, distributed: bool) -> str:
    """Train through the CLI in a fresh process (a strategy must come first in its process); returns the run id."""
    workdir.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}",
               TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    args = [sys.executable, "-m", "tasks.cli.main", "train", "fashion_mnist_inception_v1", "--workdir", str(workdir),
            "--set", f"data.dataset=folder:{data}", "--set", "data.image_size=[32,32]", "--set", "data.channels=1",
            "--set", "train.epochs=1", "--set", "train.batch_size=16", "--set", "export.enabled=false"]
    if distributed:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}})
        args.append("--distributed")
    out = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout.split("mlflow run id: ")[1].split()[0]


def _logged(workdir: Path, run_id: str) -> dict:
    """What MLflow holds for the run (the model and inputs.json read back as ``convforge`` reads them)."""
    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    run = client.get_run(run_id)
    try:
        logged = load_run(run_id, workdir)
    finally:
        mlflow.set_tracking_uri(None)
    return {"status": run.info.status, "params": set(run.data.params),
            "tags": {k for k in run.data.tags if not k.startswith("mlflow.")}, "metrics": set(run.data.metrics),
            "inputs": (logged.class_names, logged.input_shape), "outputs": logged.model.output_shape,
            "artifacts": {a.path for a in client.list_artifacts(run_id)}, "workers": run.data.tags.get("workers"),
            "skipped": {k: v for k, v in run.data.metrics.items() if k.startswith("skipped_")}}


@pytest.mark.slow
def test_trainer_and_multi_worker_loop_log_the_same_run(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # each run is read from its own workdir's mlflow.db
    data = _folder(tmp_path / "images")
    single = _logged(tmp_path / "single", _train(tmp_path / "single", data, distributed=False))
    multi = _logged(tmp_path / "multi", _train(tmp_path / "multi", data, distributed=True))
    assert single["status"] == multi["status"] == "FINISHED"
    assert single["workers"] == multi["workers"] == "1"
    for key in ("params", "tags", "metrics", "inputs", "outputs", "artifacts", "skipped"):
        assert single[key] == multi[key], key
    assert single["outputs"] == (None, 3)  # the inference model: no aux1/aux2 side heads
    assert single["skipped"] == {f"skipped_{reason}": float(n) for reason, n in expected_skips().items()}
    assert {"loss", "main_loss", "aux1_loss", "main_accuracy", "val_main_accuracy", "test_accuracy"} <= single["metrics"]
