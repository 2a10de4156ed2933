"""The recipe's ``data`` section -> ``pipelines.splits.load_splits``: one call site for every task and command.

Every field of the section that decides what the splits hold is passed
(``dataset``, fractions, limits, ``image_size``, ``channels``, ``derive``), so
no caller can drop one; a dataset that cannot be read is one ``UserError``
line naming ``data.dataset``.

Example:
    >>> from tasks.core.recipe import load_recipe
    >>> recipe = load_recipe("fashion_mnist_lenet5", ["data.train_limit=64"])
    >>> splits = load_splits_for(recipe["data"], recipe["seed"])
    >>> splits.input_shape
    (28, 28, 1)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from tasks.core.errors import UserError, clean_message
from tasks.core.recipe_sections import DataSection


def load_splits_for(data: DataSection | Mapping[str, Any], seed: int, **changes: Any):
    """The train/val/test splits the recipe's ``data`` section describes (``pipelines.splits.Splits``).

    ``data`` is the typed section (``task.config.data``) or the recipe's
    mapping (``recipe["data"]``); ``changes`` replace fields for this call
    only, e.g. ``val_fraction=0.0, test_fraction=0.0, train_limit=1`` to read
    just the input shape.

    Example:
        >>> load_splits_for({"dataset": "digits", "derive": "rows"}, 0, train_limit=8).input_shape
        (8, 8)
    """
    from pipelines.splits import load_splits

    section = data if isinstance(data, DataSection) else DataSection.from_mapping(data, "data.")
    if changes:
        section = dataclasses.replace(section, **changes)
    try:
        return load_splits(section.dataset, seed, section.val_fraction, section.test_fraction, section.train_limit,
                           section.test_limit, section.image_size, section.channels, section.derive)
    except (KeyError, FileNotFoundError, ValueError) as err:
        raise UserError(f"data.dataset {section.dataset!r}: {clean_message(err)}") from None
