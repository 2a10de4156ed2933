"""Safe loading: .keras files with Lambda layers or foreign code are refused unless allowed;
no code path unpickles untrusted data or loads a .keras file around models.safe_load."""

import json
import re
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import models
from models.backbones import build_backbone
from models.safe_load import UnsafeModelError, load_keras, unsafe_parts
from tasks.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    plain = models.build("lenet5", (28, 28, 1), 10)
    plain.save(tmp / "plain.keras")
    inp = keras.Input((28, 28, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    lam = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    lam.save(tmp / "lambda.keras")
    # a file whose config names a function outside Keras (what a hand-made exploit looks like)
    with zipfile.ZipFile(tmp / "plain.keras") as src, zipfile.ZipFile(tmp / "foreign.keras", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                layer = config["config"]["layers"][1]
                layer["config"]["activation"] = {"module": "os", "class_name": "system", "config": "touch pwned",
                                                 "registered_name": "function"}
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    with zipfile.ZipFile(tmp / "plain.keras") as src, zipfile.ZipFile(tmp / "custom.keras", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"][1]["registered_name"] = "evil>Payload"
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    plain.save(tmp / "legacy.h5")
    (tmp / "notzip.keras").write_bytes(b"PK\x03\x04 truncated zip")
    return tmp, plain


def test_project_models_load_safely(files):
    tmp, plain = files
    assert unsafe_parts(tmp / "plain.keras") == []
    x = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1)).astype(np.uint8)
    np.testing.assert_allclose(load_keras(tmp / "plain.keras")(x), plain(x), rtol=1e-6)


@pytest.mark.parametrize("name, reason", [
    ("lambda.keras", "Lambda layer"), ("foreign.keras", "module 'os'"), ("custom.keras", "evil>Payload"),
    ("legacy.h5", "not a .keras archive"),
])
def test_code_carrying_files_are_refused(files, name, reason, monkeypatch):
    tmp, _ = files
    monkeypatch.delenv("CONVFORGE_ALLOW_UNSAFE_MODELS", raising=False)
    with pytest.raises(UnsafeModelError, match=re.escape(reason)):
        load_keras(tmp / name)
    with pytest.raises(ValueError):  # the transfer backbone loader goes through the same gate
        build_backbone("lenet5", (28, 28, 1), weights=str(tmp / name)) if name.endswith(".keras") else load_keras(tmp / name)
    assert not Path("pwned").exists()


def test_explicit_opt_in_loads_a_trusted_lambda_model(files, monkeypatch):
    tmp, _ = files
    model = load_keras(tmp / "lambda.keras", allow_unsafe=True)
    assert model.output_shape == (None, 2)
    monkeypatch.setenv("CONVFORGE_ALLOW_UNSAFE_MODELS", "1")
    assert load_keras(tmp / "lambda.keras").output_shape == (None, 2)


def test_cli_refuses_then_allows_with_flag(files, capsys):
    tmp, _ = files
    assert main(["info", str(tmp / "lambda.keras")]) == 2
    assert "--allow-unsafe" in capsys.readouterr().err
    assert main(["info", str(tmp / "notzip.keras")]) == 2
    assert main(["info", str(tmp / "lambda.keras"), "--allow-unsafe"]) == 0


def _sources():
    for folder in ("models", "pipelines", "serving", "tasks", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            yield path, path.read_text()


def test_no_unsafe_deserialisation_in_the_code_base():
    offenders = []
    for path, text in _sources():
        rel = str(path.relative_to(ROOT))
        for pattern in (r"allow_pickle\s*=\s*True", r"joblib\.load", r"yaml\.load\(", r"yaml\.unsafe_load",
                        r"torch\.load", r"\beval\(", r"marshal\.loads"):
            if re.search(pattern, text):
                offenders.append(f"{rel}: {pattern}")
        if re.search(r"pickle\.(load|loads|Unpickler)\b", text) and rel != "models/convert_efficientnet_lite.py":
            offenders.append(f"{rel}: pickle")  # the one reader there allows only tensor state dicts
        if re.search(r"(keras\.(saving|models)\.load_model|mlflow\.keras\.load_model)\(", text) and rel != "models/safe_load.py":
            offenders.append(f"{rel}: loads a .keras file around models.safe_load")
    assert offenders == []
