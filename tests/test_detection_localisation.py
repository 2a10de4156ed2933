"""Localisation + landmarks: target vector round trip, the notes' loss against NumPy, a tiny task run and export."""

import numpy as np
import pytest

from models.localisation import LocalisationLoss, decode_localisation, encode_localisation
from pipelines.catalog import load_arrays
from pipelines.scene_data import scene_element_dataset
from pipelines.scenes import background_photos, make_scenes
from serving.loader import load_export, predict_arrays
from tasks.core.errors import UserError
from tasks.core.recipe import load_recipe
from tasks.problems.localisation import LocalisationTask, augmented_targets, localisation_targets


def test_target_vector_round_trip():
    box = np.array([0.2, 0.1, 0.6, 0.5], np.float32)
    marks = np.array([[0.3, 0.4], [0.3, 0.2], [0.3, 0.6], [0.1, 0.4], [0.5, 0.4]], np.float32)
    y = encode_localisation(box, 7, marks, 10, 5)
    assert y.shape == (25,) and y[0] == 1 and y[5 + 7] == 1
    np.testing.assert_allclose(y[1:5], [0.3, 0.4, 0.4, 0.4])  # bx, by, bw, bh
    d = decode_localisation(y[None], 10)
    np.testing.assert_allclose(d["boxes"][0], box, atol=1e-7)
    np.testing.assert_allclose(d["landmarks"][0], marks)
    assert d["classes"][0] == 7 and d["pc"][0] == 1
    assert not encode_localisation(None, 0, None, 10, 5).any()


def test_loss_counts_only_pc_without_an_object():
    rng = np.random.default_rng(0)
    c, k = 4, 2
    pred = np.concatenate([rng.uniform(0.05, 0.95, (3, 5)), rng.dirichlet(np.ones(c), 3), rng.uniform(0, 1, (3, 2 * k))], 1)
    true = np.stack([encode_localisation([0.1, 0.1, 0.5, 0.6], 2, rng.uniform(0, 1, (k, 2)), c, k),
                     encode_localisation(None, 0, None, c, k),
                     encode_localisation([0.3, 0.2, 0.9, 0.7], 0, rng.uniform(0, 1, (k, 2)), c, k)])
    bce = -(true[:, 0] * np.log(pred[:, 0]) + (1 - true[:, 0]) * np.log(1 - pred[:, 0]))
    box = ((true[:, 1:5] - pred[:, 1:5]) ** 2).sum(1)
    ce = -(true[:, 5 : 5 + c] * np.log(pred[:, 5 : 5 + c])).sum(1)
    marks = ((true[:, 5 + c :] - pred[:, 5 + c :]) ** 2).sum(1)
    expected = bce + true[:, 0] * (5 * box + ce + 5 * marks)
    assert expected[1] == bce[1]
    got = float(LocalisationLoss(c)(true.astype(np.float32), pred.astype(np.float32)))
    np.testing.assert_allclose(got, expected.mean(), rtol=1e-5)


def test_mirrored_scenes_move_the_box_and_swap_sided_landmarks():
    data = load_arrays("fashion_mnist")
    scenes = make_scenes(data.x_train[:100], data.y_train[:100], background_photos(), 8, image_size=(64, 64),
                         objects_per_scene=(1, 1), object_size=(20, 30), seed=5)
    elements = scene_element_dataset(lambda: [scenes], (64, 64), keypoints=True)
    out = list(augmented_targets(elements, [{"mirror": {"p": 1.0}}], seed=1, num_classes=10).as_numpy_iterator())
    before = localisation_targets(scenes, 10)
    for (image, y), original, t in zip(out, scenes.images, before, strict=True):
        np.testing.assert_array_equal(image, original[:, ::-1])
        assert y[0] == 1 and (y[5:15] == t[5:15]).all()  # still an object, same class
        np.testing.assert_allclose(y[1], 1 - t[1], atol=1.5 / 64)  # bx mirrored
        np.testing.assert_allclose(y[2:5], t[2:5], atol=1.5 / 64)  # by, bw, bh kept
        marks, was = y[15:].reshape(5, 2), t[15:].reshape(5, 2)  # centroid, top, bottom, left, right
        np.testing.assert_allclose(marks[:, 0], 1 - was[[0, 1, 2, 4, 3], 0], atol=1.5 / 64)  # left <-> right
        np.testing.assert_allclose(marks[:, 1], was[[0, 1, 2, 4, 3], 1], atol=1.5 / 64)
        assert marks[3, 0] <= marks[4, 0]  # the point labelled 'left' is still the leftmost


def test_augmented_training_batches_and_bad_policy(workdir):
    base = ["scenes.train=16", "scenes.val=8", "scenes.test=8", "train.batch_size=8"]
    task = LocalisationTask(load_recipe("scenes_localisation", base + ["data.augment=[mirror, {rotate: {degrees: 10}}]"]))
    images, targets = next(iter(task.build_inputs().train))
    assert images.shape == (8, 64, 64, 3) and targets.shape == (8, 25)
    assert set(np.unique(targets[:, 0])) <= {0.0, 1.0}
    with pytest.raises(UserError, match="data.augment"):
        LocalisationTask(load_recipe("scenes_localisation", base + ["data.augment=[blur]"])).build_inputs()


@pytest.mark.slow
def test_tiny_localisation_run_exports_the_keras_outputs(workdir):
    recipe = load_recipe("scenes_localisation", ["scenes.train=32", "scenes.val=8", "scenes.test=8",
                                                 "train.batch_size=16", "train.epochs=1", "train.steps_per_epoch=2",
                                                 "model.options={width: 4, dense: 16}"])
    task = LocalisationTask(recipe)
    inputs = task.build_inputs()
    model = task.build_model(inputs)
    task.compile(model)
    history = task.fit(model, inputs, [])  # fresh scenes: an endless stream, epochs of steps_per_epoch batches
    assert len(history.history["loss"]) == 1
    metrics = task.evaluate(model, inputs)
    assert {"test_pc_accuracy", "test_mean_iou", "test_landmark_error"} <= set(metrics)
    figures = task.log_figures(model, inputs, {}, workdir)
    assert [f.name for f in figures] == ["localisation.png"]
    path = task.export(model, inputs, workdir / "exports", "loc")
    images = task.test_scenes.images
    out = predict_arrays(load_export(path), images)
    d = decode_localisation(model.predict(images, verbose=0), 10)
    np.testing.assert_allclose(out["detection_boxes"][:, 0], np.clip(d["boxes"], 0, 1), atol=1e-5)
    np.testing.assert_allclose(out["landmarks"][:, 0], d["landmarks"], atol=1e-5)
    np.testing.assert_array_equal(out["num_detections"], (d["pc"] > 0.6).astype(int))
