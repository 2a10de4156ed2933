"""Fast R-CNN and Faster R-CNN end to end on real scenes: trainer -> losses fall -> MLflow (mAP, figure)
-> export with decoding + NMS inside == the logged Keras model + NMS -> ``convforge detect`` draws them."""

import cv2
import numpy as np
import pytest
import tensorflow as tf
from detection_checks import assert_detect_command_draws, assert_export_equals_keras

from pipelines.catalog import load_arrays
from pipelines.scenes import background_photos, make_scenes
from serving.loader import load_export
from tasks.cli.main import main
from tasks.core.recipe import load_recipe
from tasks.core.trainer import train
from tasks.problems.two_stage import padded_proposals, predict_regions

TINY = ["data.dataset=scenes:digits", "data.augment=[]", "scenes.train=32", "scenes.val=8", "scenes.test=8",
        "scenes.fresh=false", "train.epochs=6", "train.batch_size=8", "train.learning_rate=0.002",
        "detection.score_threshold=0.05", "detection.eval_score_threshold=0.02", "detection.max_detections=20",
        "detection.max_proposals=100"]
OPTIONS = {"fast": "model.options={backbone: null, width: 8}",
           "faster": "model.options={backbone: null, width: 8, max_proposals: 50}"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["faster", "fast"])
def test_two_stage_detector_trains_exports_and_detects(kind, mlflow_store, workdir):
    import mlflow

    result = train(load_recipe(f"scenes_{kind}_rcnn", [*TINY, OPTIONS[kind]]))
    h = result.history
    stages = ["rpn_loss", "head_loss"] if kind == "faster" else ["loss"]  # Fast R-CNN: one stage, the head
    for stage in stages:  # a tiny run on real scenes lowers every stage's loss
        assert h[stage][-1] < 0.8 * h[stage][0], (stage, h[stage])
    assert {"test_map50_voc", "test_map_coco", "test_proposals_per_image"} <= set(result.metrics)
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "figures")]
    assert "figures/detections.png" in artifacts

    # held-out real scenes the run never saw: the export's detections == the logged Keras model's + NMS
    data = load_arrays("digits")
    scenes = make_scenes(data.x_test, data.y_test, background_photos(), 3, seed=77, image_size=(128, 128))
    served = load_export(result.export_path)
    signature = served.signatures["serving_default"]
    proposals = np.stack([padded_proposals(im, 100) for im in scenes.images]) if kind == "fast" else None
    extra = {"proposals": tf.constant(proposals)} if kind == "fast" else {}
    out = {k: v.numpy() for k, v in signature(images=tf.constant(scenes.images), **extra).items()}
    assert out["num_detections"].sum() > 0
    keras_model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    expected, counts = predict_regions(keras_model, scenes.images, 10, 0.05, 0.5, 20, proposals)
    assert min(counts) > 0
    assert_export_equals_keras(out, expected)

    # the CLI computes what the export needs (Fast R-CNN: selective search) and draws the boxes
    assert_detect_command_draws(result.export_path, scenes.images[0], workdir)


def test_rcnn_export_equals_rcnn_detect_on_real_scenes(workdir):
    import keras

    from models import build
    from models.region_proposals import rcnn_detect, selective_search
    from tasks.problems.two_stage import export_rcnn

    keras.utils.set_random_seed(3)
    clf = build("window_classifier", (32, 32, 3), 11, width=8, dense=16)
    data = load_arrays("digits")
    scenes = make_scenes(data.x_test, data.y_test, background_photos(), 2, seed=5, image_size=(128, 128))
    path = export_rcnn(clf, workdir / "exports", "scenes_rcnn", data.class_names, max_proposals=300,
                       score_threshold=0.05, max_detections=20)
    served = load_export(path).signatures["serving_default"]
    proposals = np.stack([padded_proposals(im, 300) for im in scenes.images])
    out = {k: v.numpy() for k, v in served(images=tf.constant(scenes.images), proposals=tf.constant(proposals)).items()}
    for i, image in enumerate(scenes.images):
        ref = rcnn_detect(clf, image, selective_search(image), 10, score_threshold=0.05, max_detections=20)
        n = int(ref["num_detections"][0])
        assert n > 0 and int(out["num_detections"][i]) == n
        np.testing.assert_allclose(out["detection_boxes"][i, :n], ref["detection_boxes"][0, :n].numpy(), atol=1e-5)
        np.testing.assert_allclose(out["detection_scores"][i, :n], ref["detection_scores"][0, :n].numpy(), atol=1e-5)
    image = workdir / "scene.png"
    cv2.imwrite(str(image), cv2.cvtColor(scenes.images[0], cv2.COLOR_RGB2BGR))
    assert main(["detect", str(path), str(image), "-o", str(workdir / "out.png")]) == 0
    assert cv2.imread(str(workdir / "out.png")) is not None


def test_two_stage_task_refuses_a_one_stage_model_in_one_line():
    from tasks.core.errors import UserError
    from tasks.problems.two_stage import TwoStageDetectionTask

    with pytest.raises(UserError, match="model.name 'yolo'.*fast_rcnn or faster_rcnn"):
        TwoStageDetectionTask(load_recipe("scenes_fast_rcnn", ["model.name=yolo"])).build_inputs()
