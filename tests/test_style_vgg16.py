"""The offline VGG16 loader: shipped HED weights, local files, and a fast failure for 'imagenet'."""

import time

import h5py
import numpy as np
import pytest

from models import vgg16_hed
from models.errors import WeightsUnavailableError
from models.vgg16_hed import hed_weights_path, vgg16_backbone, vgg16_features


def test_hed_weights_copy_into_every_vgg16_conv():
    model = vgg16_backbone(input_shape=(32, 32, 3))
    with h5py.File(hed_weights_path(), "r") as f:
        for name, group in [("block1_conv1", "block1/layers/conv2d"), ("block3_conv3", "block3/layers/conv2d_2"),
                            ("block5_conv2", "block5/layers/conv2d_1")]:
            kernel, bias = model.get_layer(name).get_weights()
            np.testing.assert_array_equal(kernel, f[group]["vars/0"][()])
            np.testing.assert_array_equal(bias, f[group]["vars/1"][()])
    assert model.output_shape == (None, 1, 1, 512)
    assert not model.trainable


def test_features_apply_caffe_preprocessing_inside():
    feats = vgg16_features(["block1_conv1", "block2_conv2"], input_shape=(None, None, 3))
    image = np.random.default_rng(0).integers(0, 256, size=(1, 16, 20, 3)).astype(np.uint8)
    out = feats(image)
    assert out["block1_conv1"].shape == (1, 16, 20, 64) and out["block2_conv2"].shape == (1, 8, 10, 128)
    kernel, bias = feats.get_layer("block1_conv1").get_weights()
    x = image[0, :3, :3, ::-1].astype(np.float64) - np.array(vgg16_hed.IMAGENET_MEAN_BGR)  # BGR - mean
    expected = np.maximum(np.tensordot(x, kernel.astype(np.float64), axes=([0, 1, 2], [0, 1, 2])) + bias, 0)
    np.testing.assert_allclose(np.asarray(out["block1_conv1"])[0, 1, 1], expected, rtol=1e-4, atol=1e-3)


def test_local_weights_file_round_trips(tmp_path):
    source = vgg16_backbone(weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "mine.weights.h5"
    source.save_weights(path)
    loaded = vgg16_backbone(weights=path, input_shape=(32, 32, 3))
    for name in ("block1_conv1", "block4_conv3"):
        np.testing.assert_array_equal(loaded.get_layer(name).get_weights()[0], source.get_layer(name).get_weights()[0])


def test_bad_weights_fail_with_the_fix_named(tmp_path, monkeypatch):
    with pytest.raises(WeightsUnavailableError, match="not found"):
        vgg16_backbone(weights=tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="unknown VGG16 layer"):
        vgg16_features(["block9_conv1"])
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # nothing cached
    monkeypatch.setattr(vgg16_hed, "_IMAGENET_HOST", ("127.0.0.1", 9))  # nothing listens: like being offline
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="hed_bsds500"):
        vgg16_backbone(weights="imagenet")
    assert time.perf_counter() - start < 10
