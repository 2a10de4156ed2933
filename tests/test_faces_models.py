"""The encoder's embedding is unit-length; the binary head's output equals its formula."""

import keras
import numpy as np
import pytest

import models
from models.siamese import AbsoluteDifference


def test_encoder_embeddings_are_unit_length_and_model_builds_by_name():
    encoder = models.build("face_encoder", (24, 24, 1), 0, embedding_dim=16, widths=(8, 16))
    x = np.random.default_rng(0).integers(0, 256, size=(5, 24, 24, 1), dtype=np.uint8)
    e = np.asarray(encoder(x))
    assert e.shape == (5, 16) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)


def test_encoder_accepts_a_keras_applications_backbone():
    encoder = models.build("face_encoder", (32, 32, 1), 0, embedding_dim=8, backbone="MobileNetV3Small", weights=None)
    e = np.asarray(encoder(np.zeros((2, 32, 32, 1), np.uint8)))
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown encoder backbone"):
        models.build("face_encoder", (32, 32, 3), 0, backbone="LeNet")


def test_binary_head_equals_sigmoid_of_weighted_absolute_difference():
    model = models.build("face_siamese", (20, 20, 1), 0, embedding_dim=12, widths=(8,))
    head = model.get_layer("same_identity")
    rng = np.random.default_rng(1)
    head.set_weights([rng.normal(size=(12, 1)).astype(np.float32) * 3, np.array([0.4], np.float32)])
    a = rng.integers(0, 256, size=(6, 20, 20, 1), dtype=np.uint8)
    b = rng.integers(0, 256, size=(6, 20, 20, 1), dtype=np.uint8)
    yhat = np.asarray(model({"image_a": a, "image_b": b}))
    encoder = model.get_layer("face_encoder")
    fa, fb = np.asarray(encoder(a), np.float64), np.asarray(encoder(b), np.float64)
    w, bias = (np.asarray(v, np.float64) for v in head.get_weights())
    expected = 1.0 / (1.0 + np.exp(-(np.abs(fa - fb) @ w[:, 0] + bias[0])))
    np.testing.assert_allclose(yhat[:, 0], expected, rtol=1e-5)
    # the same image twice: |f - f| = 0, so yhat = sigmoid(b)
    same = np.asarray(model({"image_a": a, "image_b": a}))[:, 0]
    np.testing.assert_allclose(same, 1.0 / (1.0 + np.exp(-0.4)), rtol=1e-5)


def test_siamese_model_round_trips_through_keras_file(tmp_path):
    model = models.build("face_siamese", (16, 16, 1), 0, embedding_dim=4, widths=(4,))
    path = tmp_path / "siamese.keras"
    model.save(path)
    clone = keras.models.load_model(path)
    assert isinstance(clone.get_layer("abs_difference"), AbsoluteDifference)
    x = np.random.default_rng(2).integers(0, 256, size=(3, 16, 16, 1), dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(clone({"image_a": x, "image_b": x[::-1]})), np.asarray(model({"image_a": x, "image_b": x[::-1]})), rtol=1e-5)
