"""Localisation + landmarks: target vector round trip, the notes' loss against NumPy, a tiny task run and export."""

import numpy as np
import pytest

from models.localisation import LocalisationLoss, decode_localisation, encode_localisation
from serving.loader import load_export, predict_arrays
from tasks.localisation import LocalisationTask
from tasks.recipe import load_recipe


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
