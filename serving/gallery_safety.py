"""Guards of the face gallery against hostile files and names (used by ``serving.gallery``).

- ``check_file``: an existing gallery file must be a SQLite database; a
  zero-byte file is refused instead of silently becoming a new gallery.
- ``guarded``: SQLite's "database disk image is malformed" / "file is not a
  database" from any gallery method becomes ``GalleryDamaged``, one line with
  the way to recover (``sqlite3 ... .recover``); locks and busy errors pass.
- ``check_name`` / ``display_name``: names are at most ``MAX_NAME_CHARS``
  characters with no control characters (newlines, ANSI escapes); names
  stored before this rule are escaped when printed.
"""

from __future__ import annotations

import functools
import sqlite3
import time
import unicodedata
from pathlib import Path

MAX_NAME_CHARS = 200
SQLITE_MAGIC = b"SQLite format 3\x00"


class GalleryDamaged(ValueError):
    """The gallery file is not a usable SQLite database (empty, foreign or corrupted); one line with the fix."""


def check_name(name: str) -> str:
    """``name`` if it can be a person's name: not blank, at most ``MAX_NAME_CHARS``, no control characters."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a person's name must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"a person's name is at most {MAX_NAME_CHARS} characters; received {len(name):,}")
    bad = sorted({repr(c) for c in name if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")})
    if bad:
        raise ValueError(f"a person's name must not hold control characters (newlines, escapes); found {', '.join(bad[:5])}")
    return name


def display_name(name: str | None) -> str:
    """A stored name made safe to print on one terminal line (control characters escaped, cut to the limit)."""
    if name is None:
        return "not recognised"
    safe = "".join(c if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp") else repr(c)[1:-1] for c in name)
    return safe if len(safe) <= MAX_NAME_CHARS else safe[: MAX_NAME_CHARS - 1] + "…"


def guarded(method):
    """Turn SQLite's "malformed"/"not a database" errors into ``GalleryDamaged`` (locks and busy stay as they are)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError) and "malformed" not in str(err) and "not a database" not in str(err):
                raise
            raise damaged(self.path, err) from None

    return wrapper


def damaged(path: Path, err: Exception) -> GalleryDamaged:
    return GalleryDamaged(f"gallery {path} is damaged ({err}); restore a backup, or keep what is readable with "
                          f"`sqlite3 {path} .recover | sqlite3 recovered.db` and use --gallery recovered.db")


def check_file(path: Path, wait_s: float = 1.0) -> None:
    """Refuse an existing file that is not a SQLite database; a zero-byte one too (unless another process is creating it)."""
    if not path.exists():
        return
    deadline = time.monotonic() + wait_s
    while path.stat().st_size == 0 and time.monotonic() < deadline:  # a concurrent first open writes the header
        time.sleep(0.05)
    size = path.stat().st_size
    if size == 0:
        raise GalleryDamaged(f"gallery {path} cannot be opened: it is an empty file (0 bytes), not a gallery; delete it "
                             "to start a new gallery or give the right file with --gallery")
    with path.open("rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise GalleryDamaged(f"gallery {path} cannot be opened: it is not a SQLite database ({size:,} bytes of "
                             "something else); give a gallery file with --gallery")
