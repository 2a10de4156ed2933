"""A tiny detection run end to end: trainer -> MLflow (mAP, figure) -> export with NMS inside -> detect CLI."""

import json

import pytest
from detection_checks import assert_detect_command_draws, assert_export_equals_keras

from pipelines.catalog import load_arrays
from pipelines.scenes import background_photos, make_scenes
from serving.loader import load_export, predict_arrays
from tasks.core.recipe import load_recipe
from tasks.core.trainer import train
from tasks.problems.detection import predict_detections

TINY = ["scenes.train=48", "scenes.val=8", "scenes.test=8", "train.epochs=1", "train.steps_per_epoch=3",
        "train.batch_size=16", "model.options={width: 4}", "detection.score_threshold=0.02",
        "detection.eval_score_threshold=0.02", "detection.max_detections=20"]


@pytest.mark.slow
def test_exported_detector_returns_the_keras_models_detections(mlflow_store, workdir):
    import mlflow

    recipe = load_recipe("scenes_yolo", TINY)
    result = train(recipe)
    assert {"test_map50_voc", "test_map_coco", "test_map50_coco"} <= set(result.metrics)
    run = mlflow.get_run(result.run_id)
    assert "test_map50_voc" in run.data.metrics
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "figures")]
    assert "figures/detections.png" in artifacts

    # held-out real scenes the run never saw (other seed, test objects)
    data = load_arrays("fashion_mnist")
    scenes = make_scenes(data.x_test[:200], data.y_test[:200], background_photos(), 4, seed=99)
    served = load_export(result.export_path)
    out = predict_arrays(served, scenes.images)
    assert set(out) >= {"detection_boxes", "detection_scores", "detection_classes", "num_detections"}
    assert out["num_detections"].sum() > 0

    keras_model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")  # the Keras model the run logged
    anchors = json.loads((result.export_path / "assets" / "anchors.json").read_text())
    expected = predict_detections(keras_model, scenes.images, anchors, 10, 0.02, 0.5, 20)
    assert_export_equals_keras(out, expected)

    # the CLI draws them; a non-image is refused with one line and exit code 2
    assert_detect_command_draws(result.export_path, scenes.images[0], workdir)
