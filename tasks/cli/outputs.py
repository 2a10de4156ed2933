"""The output files commands write: checked before any long computation, one error line naming ``-o``.

Example:
    >>> check_output("edges.png", FIGURE_SUFFIXES)
    PosixPath('edges.png')
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # what PIL / OpenCV write here
FIGURE_SUFFIXES = (*IMAGE_SUFFIXES, ".pdf", ".svg")  # what matplotlib writes


def check_output(path: str, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> Path:
    """The file ``-o`` names; ``UserError`` for a folder or a suffix not in ``suffixes``."""
    from tasks.core.errors import UserError

    out = Path(path)
    if out.is_dir():
        raise UserError(f"-o {path!r} is a folder; give a file name such as {out / ('out' + suffixes[0])}")
    if out.suffix.lower() not in suffixes:
        raise UserError(f"-o {path!r} must end in {', '.join(suffixes[:-1])} or {suffixes[-1]}")
    return out
