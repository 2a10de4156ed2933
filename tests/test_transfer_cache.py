"""Cached frozen activations: correct features, a hit when nothing changed, rebuilt when the backbone or data changes."""

import keras
import numpy as np
import tensorflow as tf

from models.backbones import build_backbone
from pipelines.catalog import load_arrays
from tasks.core.activation_cache import cached_features


def _data(start, stop):
    data = load_arrays("fashion_mnist")
    x, y = data.x_train[start:stop], data.y_train[start:stop]
    key = {"dataset": "fashion_mnist", "fingerprint": data.fingerprint(), "rows": [start, stop], "image_size": None}
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32), key, x, y


def _lenet(seed):
    keras.utils.set_random_seed(seed)
    return build_backbone("lenet5", (28, 28, 1))


def test_features_are_the_backbones_and_are_reused(tmp_path):
    backbone = _lenet(1)
    ds, key, x, y = _data(0, 80)
    first = cached_features(backbone, ds, key, tmp_path, "train")
    assert first.rebuilt and first.features.shape == (80, backbone.output_shape[-1])
    np.testing.assert_allclose(first.features, backbone.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_array_equal(first.labels, y)
    again = cached_features(backbone, ds, key, tmp_path, "train")
    assert not again.rebuilt and again.path == first.path
    np.testing.assert_array_equal(again.features, first.features)


def test_cache_is_rebuilt_when_backbone_weights_or_data_change(tmp_path):
    ds, key, x, _ = _data(0, 64)
    a = cached_features(_lenet(1), ds, key, tmp_path, "train")
    other_weights = _lenet(2)
    b = cached_features(other_weights, ds, key, tmp_path, "train")
    assert b.rebuilt and b.path != a.path
    np.testing.assert_allclose(b.features, other_weights.predict(x, verbose=0), atol=1e-5)
    keras.utils.set_random_seed(1)
    other_net = build_backbone("resnet18", (28, 28, 1))
    assert cached_features(other_net, ds, key, tmp_path, "train").rebuilt
    ds2, key2, x2, _ = _data(64, 128)
    c = cached_features(_lenet(1), ds2, key2, tmp_path, "train")
    assert c.rebuilt and c.path != a.path
    np.testing.assert_allclose(c.features, _lenet(1).predict(x2, verbose=0), atol=1e-5)
    d = cached_features(_lenet(1), ds, {**key, "image_size": [32, 32]}, tmp_path, "train")  # preprocessing changed
    assert d.rebuilt
    assert not cached_features(_lenet(1), ds, key, tmp_path, "train").rebuilt  # the original entry is still valid
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 5
