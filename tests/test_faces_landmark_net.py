"""face-api's 68-point landmark CNN in Keras: equal to an independent NumPy forward pass of the TF.js weights,
safe-mode reload, the TF.js reader's dequantisation, and one-line errors for bad weight files."""

import json
import shutil

import keras
import numpy as np
import pytest

from models.face_landmark_net import SHARD, face_landmark_68_net, load_face_landmark_weights
from models.tfjs_weights import TfjsFormatError, read_tfjs_weights
from pipelines.face_api_package import LANDMARK_68_FILES, FaceApiUnavailable, face_api_files
from pipelines.face_crops import load_rgb, square_crop
from pipelines.sample_faces import bundled_photos
from tasks.cli.main import main
from tasks.workflows.face_landmarks import landmark_cnn

MEAN = np.array([122.782, 117.001, 104.298])


@pytest.fixture(scope="module")
def manifest():
    return face_api_files(LANDMARK_68_FILES)[0]


@pytest.fixture(scope="module")
def model(manifest):
    return face_landmark_68_net(weights=manifest)


def _same_pad(a, k, stride):
    size = a.shape[1]
    out = -(-size // stride)
    pad = max((out - 1) * stride + k - size, 0)
    return np.pad(a, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0))), out


def _conv(a, kernel, stride):
    a, out = _same_pad(a, kernel.shape[0], stride)
    y = np.zeros((a.shape[0], out, out, kernel.shape[3]))
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            y += a[:, i:i + stride * out:stride, j:j + stride * out:stride] @ kernel[i, j]
    return y


def _separable(a, w, key, stride=1):
    a, out = _same_pad(a, 3, stride)
    depthwise = np.zeros((a.shape[0], out, out, a.shape[3]))
    for i in range(3):
        for j in range(3):
            depthwise += a[:, i:i + stride * out:stride, j:j + stride * out:stride] * w[f"{key}/depthwise_filter"][i, j, :, 0]
    return depthwise @ w[f"{key}/pointwise_filter"][0, 0] + w[f"{key}/bias"]


def numpy_landmarks(crops: np.ndarray, w: dict) -> np.ndarray:
    """face-api's forward pass (FaceFeatureExtractor + FaceLandmark68Net) written out in float64 NumPy."""
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    a = (crops.astype(np.float64) - MEAN) / 255.0
    for i in range(4):
        k = f"dense{i}"
        c0 = relu(_conv(a, w[f"{k}/conv0/filters"], 2) + w[f"{k}/conv0/bias"]) if i == 0 else relu(_separable(a, w, f"{k}/conv0", 2))
        c1 = _separable(c0, w, f"{k}/conv1")
        c2 = _separable(relu(c0 + c1), w, f"{k}/conv2")
        c3 = _separable(relu(c0 + c1 + c2), w, f"{k}/conv3")
        a = relu(c0 + c1 + c2 + c3)
    assert a.shape[1:3] == (7, 7)  # the 7x7/2 valid average pool is then a plain mean
    return (a.mean(axis=(1, 2)) @ w["fc/weights"] + w["fc/bias"]).reshape(-1, 68, 2)


def test_tfjs_reader_dequantises_uint8_codes_as_the_manifest_says(manifest):
    weights = read_tfjs_weights(manifest)
    specs = [spec for group in json.loads(manifest.read_text()) for spec in group["weights"]]
    assert list(weights) == [s["name"] for s in specs] and len(weights) == 49
    raw = (manifest.parent / SHARD).read_bytes()
    assert sum(int(np.prod(s["shape"])) for s in specs) == len(raw)  # uint8: one byte per value
    fc = next(s for s in specs if s["name"] == "fc/bias")
    start = len(raw) - 136
    expected = np.frombuffer(raw[start:], np.uint8) * fc["quantization"]["scale"] + fc["quantization"]["min"]
    np.testing.assert_allclose(weights["fc/bias"], expected, rtol=1e-6)


def test_keras_port_equals_numpy_forward_pass_on_real_and_random_crops(manifest, model):
    weights = read_tfjs_weights(manifest)
    grace = load_rgb(bundled_photos()["grace_hopper"])
    real, _ = square_crop(grace, (grace.shape[1] / 2, grace.shape[0] * 0.45), 0.6 * grace.shape[1], 112)
    crops = np.stack([real, np.random.default_rng(0).integers(0, 256, (112, 112, 3), np.uint8)])
    ours = np.asarray(model(crops, training=False))
    reference = numpy_landmarks(crops, weights)
    diff = np.abs(ours - reference).max()
    print(f"max |keras - numpy| = {diff:.2e}")
    assert ours.shape == (2, 68, 2) and diff <= 1e-4
    assert 0.1 < reference[0].min() and reference[0].max() < 0.9  # a real face lands inside its crop


def test_landmark_net_reloads_in_safe_mode(model, tmp_path):
    path = tmp_path / "landmarks.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    crops = np.random.default_rng(1).integers(0, 256, (1, 112, 112, 3), np.uint8)
    np.testing.assert_allclose(again(crops, training=False), model(crops, training=False), atol=1e-6)


def test_bad_weight_files_are_one_line_errors(manifest, tmp_path):
    model = face_landmark_68_net()
    with pytest.raises(OSError, match="not found"):
        load_face_landmark_weights(model, tmp_path / "nothing.json")
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(manifest, copy / manifest.name)
    shard = copy / SHARD
    data = bytearray((manifest.parent / shard.name).read_bytes())
    data[1000] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(TfjsFormatError, match="SHA-256 mismatch") as err:
        load_face_landmark_weights(model, copy / manifest.name)
    assert "\n" not in str(err.value)
    shard.write_bytes(bytes(data[:5000]))
    with pytest.raises(TfjsFormatError, match="truncated"):
        read_tfjs_weights(copy / manifest.name)
    (copy / manifest.name).write_text("{not json")
    with pytest.raises(TfjsFormatError, match="not a TF.js weights manifest"):
        read_tfjs_weights(copy / manifest.name)


def test_unreachable_registry_is_one_error_line_naming_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVFORGE_CACHE", str(tmp_path / "empty-cache"))
    for name in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there: the download is refused at once
    with pytest.raises(FaceApiUnavailable, match="registry may be unreachable") as err:
        face_api_files(LANDMARK_68_FILES)
    assert "\n" not in str(err.value) and str(tmp_path / "empty-cache") in str(err.value)
    grace = bundled_photos(tmp_path)["grace_hopper"]
    landmark_cnn.cache_clear()  # the model loaded by earlier tests would hide the download
    assert main(["faces", "landmarks", str(grace), "-o", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot download") and err.count("\n") == 1
    assert not (tmp_path / "out.png").exists()
