"""Loading ``.keras`` model files without running code they carry.

A ``.keras`` file is a zip with ``config.json`` (the architecture) and the
weights. The config can name any Python class or hold the bytecode of a
``Lambda`` layer, so loading an untrusted file can run arbitrary code.
``load_keras`` reads ``config.json`` first and refuses a file that holds a
``Lambda`` layer, a serialised Python function, or a class from outside Keras
and this project (``models.*`` classes, registered as ``convforge>Name``),
then loads it with Keras ``safe_mode=True``. Legacy HDF5 model files (whose
config cannot be vetted the same way) are refused too. Pass
``allow_unsafe=True`` (CLI ``--allow-unsafe``; or set the environment variable
``CONVFORGE_ALLOW_UNSAFE_MODELS=1``) only for files you trust.

Weights-only files (``.weights.h5``) hold no code and are loaded with
``model.load_weights`` as before.

Example:
    >>> model = load_keras("downloads/classifier.keras")           # refuses Lambda layers
    >>> model = load_keras("my_own.keras", allow_unsafe=True)      # a file you wrote yourself
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import keras

ALLOW_ENV = "CONVFORGE_ALLOW_UNSAFE_MODELS"
PROJECT_MODULES = ("models",)
PROJECT_PACKAGE = "convforge"
MAX_CONFIG_BYTES = 32 * 1024 * 1024


class UnsafeModelError(ValueError):
    """A model file that could run code on load; the message names the parts and the fix."""


def unsafe_parts(path: str | os.PathLike) -> list[str]:
    """What in the ``.keras`` file at ``path`` could run code on load (empty: nothing).

    Raises ``ValueError`` when ``path`` is not a ``.keras`` archive."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise ValueError(f"{path}: config.json is {info.file_size} bytes; refusing to read it")
            config = json.loads(archive.read(info))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError, OSError) as err:
        raise ValueError(f"{path} is not a readable .keras model file ({type(err).__name__})") from None
    found: list[str] = []
    _walk(config, found)
    return sorted(set(found))


def _walk(node, found: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, found)
        return
    if not isinstance(node, dict):
        return
    class_name, module = node.get("class_name"), node.get("module")
    registered = node.get("registered_name")
    if class_name == "Lambda":
        found.append(f"Lambda layer {node.get('config', {}).get('name', '?')!r}")
    if class_name in ("__lambda__", "function", "__function__") or (class_name and str(class_name).startswith("__lambda")):
        found.append("a serialised Python function")
    if isinstance(module, str) and module and not _trusted_module(module):
        found.append(f"class {class_name!r} from module {module!r}")
    if isinstance(registered, str) and ">" in registered and not registered.startswith(f"{PROJECT_PACKAGE}>"):
        found.append(f"custom object {registered!r}")
    for value in node.values():
        _walk(value, found)


def _trusted_module(module: str) -> bool:
    top = module.split(".")[0]
    return top == "keras" or top in PROJECT_MODULES


def _allowed(allow_unsafe: bool | None) -> bool:
    if allow_unsafe is not None:
        return bool(allow_unsafe)
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")


def load_keras(path: str | os.PathLike, allow_unsafe: bool | None = None, compile: bool = False) -> keras.Model:
    """Load a ``.keras`` file, refusing code-carrying content unless ``allow_unsafe``.

    ``allow_unsafe=None`` reads ``$CONVFORGE_ALLOW_UNSAFE_MODELS``. Raises
    ``UnsafeModelError`` (a ``ValueError``) naming what was refused, ``ValueError``
    for files that are not ``.keras`` archives, ``FileNotFoundError`` if missing."""
    import models  # noqa: F401 - registers this project's layers (convforge>Name)

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    allowed = _allowed(allow_unsafe)
    if not zipfile.is_zipfile(path):
        if not allowed:
            raise UnsafeModelError(f"{path} is not a .keras archive (legacy HDF5/other formats cannot be vetted); "
                                   f"re-save it as .keras, or pass --allow-unsafe if you trust it")
        return keras.saving.load_model(path, compile=compile, safe_mode=False)
    parts = unsafe_parts(path)
    if parts and not allowed:
        raise UnsafeModelError(f"{path} holds code that would run on load ({'; '.join(parts[:3])}); "
                               f"pass --allow-unsafe (or set {ALLOW_ENV}=1) only if you trust its source")
    return keras.saving.load_model(path, compile=compile, safe_mode=not allowed)
