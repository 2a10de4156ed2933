"""The model registry: one name -> one Keras functional builder.

Every builder has the signature ``builder(input_shape, num_classes, **options)``
and returns an un-compiled ``keras.Model`` that takes uint8 images (or raw
signals/volumes for 1D/3D nets) and rescales inside.

Example:
    >>> from models import build
    >>> model = build("lenet5", input_shape=(28, 28, 1), num_classes=10)
"""

from __future__ import annotations

from collections.abc import Callable

import keras

Builder = Callable[..., keras.Model]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``fn`` under ``name`` (lower-case, unique)."""

    def wrap(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def names() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_REGISTRY)


def build(name: str, input_shape, num_classes: int, **options) -> keras.Model:
    """Build the registered model ``name`` for ``input_shape`` and ``num_classes``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(names())}")
    return _REGISTRY[name](tuple(input_shape), int(num_classes), **options)
