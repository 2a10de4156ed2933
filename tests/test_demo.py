"""`make demo`'s main job at tiny scale: 3 transfer members -> ensemble + 10-crop -> one MLflow parent run
with the members (and their stage runs) and the ensemble nested -> one TF Serving export -> real test
images classified through its serving_bytes signature."""

import mlflow
import numpy as np
import pytest

from pipelines.catalog import load_arrays
from serving.loader import load_export, predict_arrays
from tasks.workflows.demo import EXPORT_NAME, main

TINY = ["data.image_size=[32,32]", "data.train_limit=64", "data.test_limit=40", "train.batch_size=32",
        "transfer.stages=[{train: head, epochs: 2}, {train: top_k, k: 1, epochs: 1, schedule: cosine}]"]


@pytest.mark.slow
def test_demo_main_job_end_to_end(workdir, mlflow_store, capsys):
    args = ["--workdir", str(workdir)]
    for override in TINY:
        args += ["--set", override]
    assert main(args) == 0
    out = capsys.readouterr().out

    parents = mlflow.search_runs(search_all_experiments=True, filter_string="attributes.run_name LIKE 'demo-%'")
    assert len(parents) == 1
    parent = parents.iloc[0]
    children = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'")
    assert len(children) == 4  # three members and the ensemble evaluation
    members = children[children["tags.task"] == "transfer"]
    assert len(members) == 3 and sorted(members["params.seed"]) == ["1", "2", "3"]
    for run_id in members.run_id:
        stages = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
        assert sorted(stages["tags.mlflow.runName"]) == ["stage1-head", "stage2-top_k"]
        epochs = {name: len(mlflow.MlflowClient().get_metric_history(rid, "val_accuracy"))
                  for name, rid in zip(stages["tags.mlflow.runName"], stages.run_id, strict=True)}
        assert epochs == {"stage1-head": 2, "stage2-top_k": 1}  # per-epoch curves in each stage run

    metrics = mlflow.get_run(parent.run_id).data.metrics
    for key in ("ensemble_test_accuracy", "ensemble_test_single_accuracy", *(f"member{i}_test_accuracy" for i in (1, 2, 3))):
        assert 0.0 <= metrics[key] <= 1.0
    table = mlflow.artifacts.load_text(f"runs:/{parent.run_id}/comparison.md")
    assert table.splitlines()[0] == "| model | 1 crop | 10crop |" and "| ensemble of 3 |" in table
    assert f"{metrics['ensemble_test_accuracy']:.4f} |" in table.splitlines()[-1]
    assert "ensemble_confusion_matrix.png" in str(mlflow.artifacts.list_artifacts(run_id=parent.run_id, artifact_path="figures"))

    export = workdir / "exports" / EXPORT_NAME / "1"
    assert (export / "saved_model.pb").is_file() and mlflow.get_run(parent.run_id).data.tags["export_path"] == str(export)
    served = load_export(export)
    assert {"serving_default", "serving_bytes"} <= set(served.signatures)
    data = load_arrays("fashion_mnist")
    out_arrays = predict_arrays(served, np.repeat(data.x_test[:6], 3, axis=-1))
    names = (export / "assets" / "class_names.txt").read_text().splitlines()
    printed = [line.split(": ", 1)[1].split(" (")[0] for line in out.splitlines() if "demo_images/test_" in line]
    assert printed == [names[i] for i in out_arrays["multicrop_probabilities"].argmax(axis=1)]
