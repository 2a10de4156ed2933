"""Keras functional model builders; ``models.build(name, ...)`` is the entry point.

Importing the package imports every module in it, so each module's
``@register`` runs and the registry is complete.
"""

import importlib
import pkgutil

from models.registry import build, names, register

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "registry":
        importlib.import_module(f"models.{_info.name}")

__all__ = ["build", "names", "register"]
