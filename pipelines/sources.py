"""File sources: an image folder (one subfolder per class) and a CSV manifest.

Both return a ``FileList``: paths, integer labels and class names, after a
cheap integrity check of every file (see ``pipelines.decode.check_image_file``)
so corrupt, truncated and zero-byte files are skipped and counted before a run
starts instead of crashing it mid-epoch. Paths that resolve outside the dataset
root (``..``, absolute paths, symlinks out) are refused. A file whose name is
not valid UTF-8 is skipped (``non_utf8_name``) with a warning naming it; a
class folder whose name is not UTF-8 is an error naming it (class names ship
with the model); an empty class folder is a warning (it stays a model output
that nothing trains). CSV manifests may start with a UTF-8 byte-order mark
(Excel's default).

Example:
    >>> files = image_folder("data/flowers")       # data/flowers/<class>/<image>
    >>> files.paths[:2], files.class_names, files.skipped
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.decode import IMAGE_SUFFIXES, check_image_file


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes come back from the OS as surrogates
        return False
    return True


def _printable(name: str) -> str:
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


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
    for name in classes:
        if not _is_utf8(name):
            raise ValueError(f"class folder {_printable(str(root / name))} has a name that is not UTF-8; rename it "
                             "(class names are stored with the model)")
    out = FileList([], [], classes)
    bad_names: list[str] = []
    for label, name in enumerate(classes):
        before = len(out.paths)
        for p in sorted((root / name).rglob("*")):
            if p.is_dir() or p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if not _is_utf8(str(p)):
                out.skipped["non_utf8_name"] += 1
                bad_names.append(_printable(str(p)))
                continue
            try:
                resolved = inside_root(root, p.relative_to(root))
            except ValueError:
                out.skipped["escapes_root"] += 1
                continue
            _add(out, resolved, label)
        if len(out.paths) == before:
            print(f"warning: class folder {_printable(str(root / name))} has no readable images; class {name!r} stays "
                  "a model output that no image trains", file=sys.stderr)
    if bad_names:
        more = ", ..." if len(bad_names) > 3 else ""
        print(f"warning: skipped {len(bad_names)} file(s) whose name is not UTF-8 (rename them to use them): "
              f"{', '.join(bad_names[:3])}{more}", file=sys.stderr)
    return out


def csv_manifest(path: str | Path) -> FileList:
    """A CSV with a header ``path,label``; paths are relative to the CSV's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    root = path.parent
    rows: list[tuple[Path, str]] = []
    skipped: Counter = Counter()
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:  # -sig: Excel writes a BOM first
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
