"""Weight sources: an unreachable download fails within seconds and names the fix; local files work."""

import socket
import time

import numpy as np
import pytest

import models.backbones as backbones
from models.errors import WeightsUnavailableError
from tasks.cli.main import main


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Point the weights host at a closed local port and the Keras cache at an empty folder."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(backbones, "IMAGENET_HOST", ("127.0.0.1", port))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


def test_unreachable_imagenet_fails_fast(offline):
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="cannot be downloaded"):
        backbones.build_backbone("ResNet50", (32, 32, 3), weights="imagenet")
    assert time.perf_counter() - start < 10


def test_cli_names_the_fix_in_one_line(offline, mlflow_store, workdir, capsys):
    start = time.perf_counter()
    code = main(["train", "transfer_fashion_mnist_lite0", "--set", "model.options.backbone=MobileNetV3Small",
                 "--set", "data.train_limit=64", "--set", "data.test_limit=16", "--set", "data.image_size=[32,32]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: model.options.weights:")
    assert "--set model.options.weights=PATH" in err[0] and "MobileNetV3Small" in err[0]
    assert time.perf_counter() - start < 30


def test_missing_local_file_is_named(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="not found"):
        backbones.build_backbone("efficientnet_lite0", (32, 32, 3), weights=str(tmp_path / "nope.weights.h5"))
    with pytest.raises(WeightsUnavailableError, match="not found"):
        backbones.build_backbone("EfficientNetB0", (32, 32, 3), weights=str(tmp_path / "nope.h5"))


def test_local_keras_weights_file_round_trips(tmp_path):
    source = backbones.build_backbone("MobileNetV3Small", (32, 32, 3))
    path = tmp_path / "mnv3.weights.h5"
    source.save_weights(path)
    loaded = backbones.build_backbone("MobileNetV3Small", (32, 32, 3), weights=str(path))
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), source.predict(x, verbose=0), atol=1e-5)
