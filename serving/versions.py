"""The TF Serving folder layout ``<root>/<model_name>/<version>/`` written atomically.

A version folder is first written under a hidden temporary name in the same
parent folder, then renamed into place with ``os.rename`` (atomic on POSIX), so
a reader (TF Serving polls the folder) never sees half a version, and a killed
export leaves only a hidden ``.tmp-*`` folder that is ignored and cleaned up.

Example:
    >>> path = write_version("exports", "lenet", lambda tmp: model.export(tmp))
    >>> path.name        # "1" for the first export, "2" next ...
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def versions(model_dir: str | os.PathLike) -> list[int]:
    """The complete integer versions under ``model_dir``, ascending."""
    d = Path(model_dir)
    if not d.is_dir():
        return []
    return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())


def latest_version(model_dir: str | os.PathLike) -> Path:
    """Path of the newest complete version under ``model_dir``."""
    found = versions(model_dir)
    if not found:
        raise FileNotFoundError(f"no exported version under {model_dir}")
    return Path(model_dir) / str(found[-1])


def write_version(root: str | os.PathLike, model_name: str, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_dir)`` then move ``tmp_dir`` to the next version folder.

    Returns the final version path. Concurrent writers each get their own
    version number: ``os.rename`` onto an existing folder fails, and the loser
    retries with the next number.
    """
    model_dir = Path(root) / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(model_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=model_dir))
    try:
        target = tmp / "v"
        writer(target)
        while True:
            version = (versions(model_dir) or [0])[-1] + 1
            final = model_dir / str(version)
            try:
                os.rename(target, final)
                return final
            except OSError:
                if not final.exists():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_tmp(model_dir: Path, max_age_s: float = 3600.0) -> None:
    """Delete temporary folders older than ``max_age_s`` (left by killed exports)."""
    now = time.time()
    for p in model_dir.glob(".tmp-*"):
        try:
            if now - p.stat().st_mtime > max_age_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            continue
