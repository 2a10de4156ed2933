"""Symmetric landmarks: which keypoint labels swap places when an image is mirrored.

A mirror moves every keypoint to its reflected position, but for landmarks with
sides that is not enough: after a horizontal flip the point labelled
``left_eye`` sits where a right eye belongs. A landmark dataset declares its
pairs once (``FlipPairs``); ``augment_dataset(..., flip_pairs=...)`` then swaps
the labels (coordinates and visibility) of every image it mirrors.

Two naming conventions (``FlipPairs.from_names``):

* ``sides="image"``: names describe places in the picture (the scenes' ``left``
  = leftmost point, a face's ``left_eye`` = the eye on the image's left): a
  horizontal mirror swaps left/right, a vertical mirror swaps top/bottom.
* ``sides="subject"``: names are the subject's own sides (COCO persons'
  ``left_shoulder``): every mirror swaps left/right (a reflection changes
  handedness), none swaps top/bottom; two mirrors cancel.

Example:
    >>> pairs = FlipPairs.from_names(["centroid", "top", "bottom", "left", "right"])
    >>> pairs.horizontal, pairs.vertical
    (((3, 4),), ((1, 2),))
    >>> pairs.permutation("horizontal")
    [0, 1, 2, 4, 3]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SIDES = ("image", "subject")


@dataclass(frozen=True)
class FlipPairs:
    """The ``K`` landmark ``names`` of one object, in keypoint order, and the index pairs
    that swap under a ``horizontal`` and a ``vertical`` mirror."""

    names: tuple[str, ...]
    horizontal: tuple[tuple[int, int], ...] = ()
    vertical: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        k = len(self.names)
        for axis in ("horizontal", "vertical"):
            used = [i for pair in getattr(self, axis) for i in pair]
            if any(not 0 <= i < k for i in used) or len(set(used)) != len(used):
                raise ValueError(f"flip pairs ({axis}) must be disjoint index pairs in 0..{k - 1}; "
                                 f"received {getattr(self, axis)!r}")

    @classmethod
    def from_names(cls, names, sides: str = "image") -> FlipPairs:
        """Pairs found by swapping the words ``left``/``right`` (and ``top``/``bottom``)
        in the names, e.g. ``left_eye`` <-> ``right_eye``, ``mouth_left`` <-> ``mouth_right``."""
        if sides not in SIDES:
            raise ValueError(f"sides must be one of {SIDES}; received {sides!r}")
        names = tuple(str(n) for n in names)
        left_right = _pairs(names, "left", "right")
        if sides == "subject":
            return cls(names, left_right, left_right)
        return cls(names, left_right, _pairs(names, "top", "bottom"))

    def permutation(self, axis: str) -> list[int]:
        """``order`` with ``mirrored[k] = original[order[k]]`` under a mirror on ``axis``."""
        order = list(range(len(self.names)))
        for i, j in getattr(self, axis):
            order[i], order[j] = j, i
        return order


def _pairs(names: tuple[str, ...], a: str, b: str) -> tuple[tuple[int, int], ...]:
    lower = [n.lower() for n in names]
    pairs = []
    for i, name in enumerate(lower):
        words = re.split(r"([^0-9a-z]+)", name)
        partner = "".join(b if w == a else a if w == b else w for w in words)
        if partner != name and partner in lower and lower.index(partner) > i:
            pairs.append((i, lower.index(partner)))
    return tuple(pairs)
