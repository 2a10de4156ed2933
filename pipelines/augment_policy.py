"""Augmentation policies: the names, options and checks of a recipe's ``data.augment``, without TensorFlow.

A policy is a list read from a recipe, each entry a transform name or a
one-key mapping of name to options::

    augment: [mirror, {random_crop: {padding: 4}}, {rotate: {degrees: 15}},
              {shear: {degrees: 10}}, elastic, grid_distortion,
              {colour_shift: {shift: 20}}, pca_colour]

Transforms (every one takes ``p``, the chance it is applied to an image):

==================  ==========================================================
``mirror``          horizontal flip (``vertical: true`` flips rows); p 0.5
``random_crop``     per-image window: ``padding`` px of zeros around the image,
                    ``scale`` [lo, hi] area fraction (resized back to full size)
``rotate``          ``degrees``: d (uniform in [-d, d]) or [lo, hi]; counter-
                    clockwise on screen
``shear``           ``degrees`` like rotate; ``axis`` x (lean the vertical
                    axis, top to the right) or y
``elastic``         local warping: ``grid`` x ``grid`` control points moved up
                    to ``magnitude`` x image size, interpolated smoothly
``grid_distortion`` ``steps`` bands per axis, each resized by 1 +- ``limit``
``colour_shift``    per-channel offsets uniform in [-``shift``, ``shift``] levels
``pca_colour``      AlexNet PCA colour: ``sum_i alpha_i lambda_i p_i``,
                    alpha ~ N(0, ``std``); needs a fitted ``PcaColour``
==================  ==========================================================

This module is the policy (schema and validation: ``validate_policy`` returns
the checked ``Step`` list); ``pipelines.augment`` renders it as TF graph ops.
Listings such as ``convforge datasets`` read the names from here, so they
answer without importing TensorFlow.

Example:
    >>> "mirror" in AUGMENTATIONS, ALIASES["flip"]
    (True, 'mirror')
    >>> [s.name for s in validate_policy(["flip", {"rotate": {"degrees": 10}}])]
    ['mirror', 'rotate']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# name -> (kind, default options); kind: "affine" (a matrix), "warp" (a displacement field) or "colour" (an offset)
TRANSFORMS: dict[str, tuple[str, dict]] = {
    "mirror": ("affine", {"p": 0.5, "vertical": False}),
    "random_crop": ("affine", {"p": 1.0, "padding": 0, "scale": [1.0, 1.0]}),
    "rotate": ("affine", {"p": 1.0, "degrees": 15.0}),
    "shear": ("affine", {"p": 1.0, "degrees": 10.0, "axis": "x"}),
    "elastic": ("warp", {"p": 1.0, "magnitude": 0.03, "grid": 5}),
    "grid_distortion": ("warp", {"p": 1.0, "steps": 5, "limit": 0.3}),
    "colour_shift": ("colour", {"p": 1.0, "shift": 20.0}),
    "pca_colour": ("colour", {"p": 1.0, "std": 0.1}),
}
AUGMENTATIONS = tuple(TRANSFORMS)
ALIASES = {"color_shift": "colour_shift", "pca_color": "pca_colour", "flip": "mirror", "rotation": "rotate"}


@dataclass
class Step:
    """One checked policy entry: canonical ``name``, its ``kind`` and all its options (defaults filled in)."""

    name: str
    kind: str  # "affine" | "warp" | "colour"
    options: dict = field(default_factory=dict)


def _check_option(where: str, key: str, value: Any, default: Any) -> Any:
    def bad(expect: str):
        return ValueError(f"{where}: option {key!r} must be {expect}; received {value!r}")

    number = (int, float)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
    elif key == "degrees":
        ok = isinstance(value, number) and value >= 0
        ok = ok or (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, number) for v in value) and value[0] <= value[1])
        if not ok or isinstance(value, bool):
            raise bad("a number d >= 0 (meaning [-d, d]) or a range [lo, hi]")
    elif key == "scale":
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and 0 < value[0] <= value[1] <= 1):
            raise bad("a range [lo, hi] with 0 < lo <= hi <= 1")
        value = [float(v) for v in value]
    elif key == "axis":
        if value not in ("x", "y"):
            raise bad("'x' or 'y'")
    elif key in ("grid", "steps"):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 2):
            raise bad("an integer >= 2")
    elif key == "padding":
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise bad("an integer >= 0 (pixels)")
    else:
        if not isinstance(value, number) or isinstance(value, bool) or value < 0:
            raise bad("a number >= 0")
        if key in ("p", "limit") and value > (1 if key == "p" else 0.99):
            raise bad("between 0 and 1" if key == "p" else "below 1")
    return value


def validate_policy(policy) -> list[Step]:
    """Check a recipe's policy list; returns its steps. ValueError naming the bad entry."""
    if policy is None:
        return []
    if not isinstance(policy, (list, tuple)):
        raise ValueError(f"augmentation policy must be a list of transforms; received {policy!r}")
    steps = []
    for i, entry in enumerate(policy, 1):
        if isinstance(entry, str):
            name, options = entry, {}
        elif isinstance(entry, dict) and len(entry) == 1:
            name, options = next(iter(entry.items()))
            options = {} if options is None else options
        else:
            raise ValueError(f"augmentation step {i} must be a name or {{name: {{options}}}}; received {entry!r}")
        canonical = ALIASES.get(name, name)
        if canonical not in TRANSFORMS:
            raise ValueError(f"augmentation step {i}: unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
        kind, defaults = TRANSFORMS[canonical]
        where = f"augmentation step {i} ({canonical})"
        if not isinstance(options, dict):
            raise ValueError(f"{where}: options must be a mapping; received {options!r}")
        resolved = dict(defaults)
        for key, value in options.items():
            if key not in defaults:
                raise ValueError(f"{where}: unknown option {key!r}; known options: {', '.join(defaults)}")
            resolved[key] = _check_option(where, key, value, defaults[key])
        steps.append(Step(canonical, kind, resolved))
    return steps


def needs_pca(policy) -> bool:
    """True if the policy has a ``pca_colour`` step (fit ``PcaColour`` on the training set)."""
    return any(step.name == "pca_colour" for step in validate_policy(policy))


def whole_pixels(step: Step) -> bool:
    """True for steps that map pixels to whole pixels (no resampling needed)."""
    return step.name == "mirror" or (step.name == "random_crop" and step.options["scale"] == [1.0, 1.0])
