"""Typed recipe sections, "did you mean" for unknown keys, `convforge recipe show`, one load_splits_for, one build_model."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks.cli.main import main
from tasks.core.errors import UserError, clean_message
from tasks.core.recipe import flatten, load_recipe, schema_for
from tasks.core.recipe_sections import DataSection, TrainSection, typed_recipe

ROOT = Path(__file__).resolve().parents[1]


def test_transfer_reads_unaugmented_training_data_with_derive():
    """transfer's own load_splits copy (the activation cache's plain images) used to drop data.derive."""
    from tasks.problems.transfer import TransferTask

    recipe = load_recipe({"task": "transfer", "data": {"dataset": "digits", "derive": "rows", "augment": ["mirror"],
                                                       "train_limit": 16}, "train": {"batch_size": 8}})
    task = TransferTask(recipe)
    x, _ = next(iter(task._plain_train(inputs=None)))
    assert tuple(x.shape[1:]) == (8, 8)  # rows of the 8x8 digits: a sequence, not an (8, 8, 1) image
