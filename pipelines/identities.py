"""Identity folders for faces: ``root/<person>/<image>``, one subfolder per person.

Built on ``pipelines.sources.image_folder`` (the same integrity checks and
path-escape refusal), plus what metric learning needs: people with fewer than
``min_images`` images are left out (a triplet needs an anchor and a positive)
and counted, and ``members`` lists each person's images.

Example:
    >>> people = identity_folder("data/faces", min_images=2)
    >>> people.class_names[:3], people.members[0][:2], people.skipped
    >>> ds = identity_dataset(people, channels=3, image_size=(112, 112))
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipelines.decode import decode_image
from pipelines.sources import image_folder


@dataclass
class Identities:
    """Image paths with person ids; ``members[i]`` are the indices of person ``i``'s images."""

    paths: list[str]
    labels: list[int]
    class_names: list[str]
    members: list[list[int]]
    skipped: Counter = field(default_factory=Counter)


def identity_folder(root: str | Path, min_images: int = 2) -> Identities:
    """People under ``root`` with at least ``min_images`` usable images each."""
    files = image_folder(root)
    counts = Counter(files.labels)
    kept = [c for c in range(len(files.class_names)) if counts[c] >= min_images]
    skipped = Counter(files.skipped)
    dropped = len(files.class_names) - len(kept)
    if dropped:
        skipped["person_with_too_few_images"] += dropped
    new_id = {old: new for new, old in enumerate(kept)}
    paths, labels = [], []
    for path, label in zip(files.paths, files.labels, strict=True):
        if label in new_id:
            paths.append(path)
            labels.append(new_id[label])
    if not kept:
        raise ValueError(f"no person under {root} has {min_images} or more readable images")
    members = [[] for _ in kept]
    for i, label in enumerate(labels):
        members[label].append(i)
    return Identities(paths, labels, [files.class_names[c] for c in kept], members, skipped)


def identity_dataset(people: Identities, channels: int = 3, image_size: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Unbatched ``(uint8 [H, W, channels], int64 person id)``, decoded in parallel; an image
    that still fails to decode is dropped instead of stopping the epoch."""
    ds = tf.data.Dataset.from_tensor_slices((np.array(people.paths), np.array(people.labels, np.int64)))

    def load(path, label):
        image = decode_image(tf.io.read_file(path), channels, image_size)
        image.set_shape([*(image_size or (None, None)), channels])
        return image, label

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(log_warning=True)
