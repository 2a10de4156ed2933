"""FusedBatchNormalization against Keras' own BatchNormalization and a NumPy reference."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.fused_batch_norm import FusedBatchNormalization


def pair(shape, **kwargs):
    """A Keras BN and a fused BN with the same (non-trivial) weights."""
    plain, fused = keras.layers.BatchNormalization(**kwargs), FusedBatchNormalization(**kwargs)
    rng = np.random.default_rng(1)
    for layer in (plain, fused):
        layer.build(shape)
    weights = [rng.uniform(0.5, 1.5, shape[-1]).astype("float32"), rng.normal(0, 1, shape[-1]).astype("float32"),
               rng.normal(0, 1, shape[-1]).astype("float32"), rng.uniform(0.5, 2, shape[-1]).astype("float32")]
    plain.set_weights(weights)
    fused.set_weights(weights)
    return plain, fused


def test_training_step_matches_keras_and_numpy():
    x = np.random.default_rng(0).normal(2.0, 3.0, (6, 5, 7, 4)).astype("float32")
    plain, fused = pair(x.shape, momentum=0.9, epsilon=1e-3)
    gamma, beta, mm, mv = (w.copy() for w in plain.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        y_plain, y_fused = plain(xt, training=True), fused(xt, training=True)
        loss_plain, loss_fused = tf.reduce_sum(y_plain**3), tf.reduce_sum(y_fused**3)
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    expected = (x - mean) / np.sqrt(var + 1e-3) * gamma + beta
    np.testing.assert_allclose(y_fused, expected, atol=1e-4)
    np.testing.assert_allclose(y_fused, y_plain, atol=1e-4)
    for var_plain, var_fused in ((xt, xt), (plain.gamma, fused.gamma), (plain.beta, fused.beta)):
        g_plain, g_fused = tape.gradient(loss_plain, var_plain), tape.gradient(loss_fused, var_fused)
        np.testing.assert_allclose(g_fused, g_plain, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(fused.moving_mean, 0.9 * mm + 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance, 0.9 * mv + 0.1 * var, rtol=1e-5, atol=1e-6)  # biased variance
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, rtol=1e-5)


def test_inference_and_frozen_layers_use_the_moving_statistics():
    x = np.random.default_rng(2).normal(0.0, 2.0, (3, 4, 4, 5)).astype("float32")
    plain, fused = pair(x.shape)
    gamma, beta, mm, mv = fused.get_weights()
    expected = (x - mm) / np.sqrt(mv + 1e-3) * gamma + beta
    np.testing.assert_allclose(fused(x, training=False), expected, atol=1e-5)
    fused.trainable = False
    before = [w.copy() for w in fused.get_weights()]
    np.testing.assert_allclose(fused(x, training=True), expected, atol=1e-5)  # frozen: inference mode
    for a, b in zip(before, fused.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_mixed_bfloat16_keeps_statistics_in_float32():
    x = np.random.default_rng(3).normal(1.0, 2.0, (8, 6, 6, 8)).astype("float32")
    plain, fused = pair(x.shape, dtype="mixed_bfloat16")
    xb = tf.cast(x, tf.bfloat16)
    y_plain, y_fused = plain(xb, training=True), fused(xb, training=True)
    assert y_fused.dtype == tf.bfloat16 and fused.moving_mean.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y_fused, tf.float32), tf.cast(y_plain, tf.float32), atol=0.05)
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, atol=1e-2)
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, rtol=1e-2)


def test_single_value_per_channel_keeps_finite_statistics():
    x = np.ones((1, 1, 1, 3), "float32")
    _, fused = pair(x.shape, momentum=0.5)
    fused(x, training=True)
    assert np.isfinite(fused.moving_variance.numpy()).all()


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 4, 5, 6)])
def test_other_ranks_fall_back_to_keras(shape):
    x = np.random.default_rng(4).normal(size=shape).astype("float32")
    plain, fused = pair(shape)
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-5)
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, rtol=1e-5)


def test_saved_model_file_round_trip(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = FusedBatchNormalization(name="bn")(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(5).normal(size=(2, 8, 8, 3)).astype("float32")
    model(x, training=True)  # move the statistics off their initial values
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("bn")) is FusedBatchNormalization
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)
