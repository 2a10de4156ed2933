"""Local response normalisation against the paper's formula in NumPy and tf.nn.local_response_normalization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.local_response_norm import LocalResponseNormalization


def lrn_numpy(a, r=2, k=2.0, alpha=1e-4, beta=0.75):
    out = np.empty_like(a)
    channels = a.shape[-1]
    for i in range(channels):
        lo, hi = max(0, i - r), min(channels - 1, i + r)
        out[..., i] = a[..., i] / (k + alpha * np.sum(a[..., lo : hi + 1] ** 2, axis=-1)) ** beta
    return out


def test_lrn_matches_numpy_and_tf():
    x = np.random.default_rng(0).normal(0, 30, (2, 5, 4, 11)).astype(np.float32)
    layer = LocalResponseNormalization()
    np.testing.assert_allclose(np.asarray(layer(x)), lrn_numpy(x.astype(np.float64)), rtol=1e-5)
    tf_out = tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    np.testing.assert_allclose(np.asarray(layer(x)), tf_out.numpy(), rtol=1e-5)
    custom = LocalResponseNormalization(depth_radius=1, bias=1.0, alpha=0.01, beta=0.5)
    np.testing.assert_allclose(np.asarray(custom(x)), lrn_numpy(x.astype(np.float64), 1, 1.0, 0.01, 0.5), rtol=1e-5)


def test_lrn_config_round_trip_and_rank():
    layer = LocalResponseNormalization(depth_radius=3, bias=1.5, alpha=2e-4, beta=0.5, name="n")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert clone.get_config() == layer.get_config()
    x = np.random.default_rng(1).normal(size=(3, 7, 6)).astype(np.float32)  # works on 1D feature maps too
    np.testing.assert_allclose(np.asarray(clone(x)), lrn_numpy(x.astype(np.float64), 3, 1.5, 2e-4, 0.5), rtol=1e-5)
    with pytest.raises(ValueError, match="bias > 0"):
        LocalResponseNormalization(bias=0.0)
