"""File sources: an image folder (one subfolder per class) and a CSV manifest.

Both return a ``FileList``: paths, integer labels and class names, after a
cheap integrity check of every file (see ``pipelines.decode.check_image_file``)
so corrupt, truncated and zero-byte files are skipped and counted before a run
starts instead of crashing it mid-epoch. Paths that resolve outside the dataset
root (``..``, absolute paths, symlinks out) are refused.

Example:
    >>> files = image_folder("data/flowers")       # data/flowers/<class>/<image>
    >>> files.paths[:2], files.class_names, files.skipped
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.decode import IMAGE_SUFFIXES, check_image_file


@dataclass
class FileList:
    """Image files with labels; ``skipped`` counts files left out, by reason."""

    paths: list[str]
    labels: list[int]
    class_names: list[str]
    skipped: Counter = field(default_factory=Counter)


def inside_root(root: Path, candidate: str | Path) -> Path:
    """Resolve ``candidate`` against ``root``; ValueError if it escapes ``root``."""
    root = root.resolve()
    path = (root / candidate).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"path {str(candidate)!r} escapes the dataset root {root}")
    return path


def image_folder(root: str | Path) -> FileList:
    """Images under ``root/<class_name>/`` (the Keras ``image_dataset_from_directory`` layout)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"dataset folder {root} has no class subfolders (expected {root}/<class>/<image>)")
    out = FileList([], [], classes)
    for label, name in enumerate(classes):
        for p in sorted((root / name).rglob("*")):
            if p.is_dir() or p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                resolved = inside_root(root, p.relative_to(root))
            except ValueError:
                out.skipped["escapes_root"] += 1
                continue
            _add(out, resolved, label)
    return out


def csv_manifest(path: str | Path) -> FileList:
    """A CSV with a header ``path,label``; paths are relative to the CSV's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    root = path.parent
    rows: list[tuple[Path, str]] = []
    skipped: Counter = Counter()
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise ValueError(f"manifest {path} needs a header line with the columns path,label")
        for row in reader:
            p, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
            if not p or not label:
                skipped["bad_manifest_line"] += 1
                continue
            try:
                rows.append((inside_root(root, p), label))
            except ValueError:
                skipped["escapes_root"] += 1
    classes = sorted({label for _, label in rows})
    index = {name: i for i, name in enumerate(classes)}
    out = FileList([], [], classes, skipped)
    for p, label in rows:
        _add(out, p, index[label])
    return out


def _add(out: FileList, path: Path, label: int) -> None:
    problem = check_image_file(path)
    if problem:
        out.skipped[problem] += 1
    else:
        out.paths.append(str(path))
        out.labels.append(label)
