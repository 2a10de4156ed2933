"""Hostile gallery files and names: a corrupted page, a zero-byte file and a foreign file are one
`error:` line (never a traceback, never silently a new gallery); names are bounded and free of
control characters; the same photo under a second name is reported."""

import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.gallery import MAX_NAME_CHARS, Gallery, GalleryDamaged, display_name
from tasks.cli.main import main

VERSION, DIM = "enc@1", 16


def _unit(n: int, seed: int) -> np.ndarray:
    e = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _gallery_with(path, persons: int = 300) -> None:
    with Gallery(path) as g:
        for i in range(persons):
            g.enrol(f"person{i:04d}", _unit(2, i), [f"h{i}-0", f"h{i}-1"], VERSION, crops=[b"\x89PNG" * 200] * 2)
        g._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _corrupt_a_page(path) -> None:
    """Overwrite one page (the root of the encodings index, which listing and search read) as a disk error would."""
    db = sqlite3.connect(path)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'encodings_person'").fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    data[start : start + page_size] = np.random.default_rng(0).integers(0, 256, page_size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _damaged_gallery(folder):
    """A 300-person faces.db in ``folder`` with one page overwritten and no WAL to recover it from."""
    db = folder / "faces.db"
    _gallery_with(db)
    _corrupt_a_page(db)
    for wal in folder.glob("faces.db-*"):
        wal.unlink()
    return db


def test_a_corrupted_page_is_one_line_on_list_and_identify(tmp_path, capsys):
    db = _damaged_gallery(tmp_path)
    assert main(["faces", "list", "--gallery", str(db)]) == 2
    line = one_error_line(capsys)
    assert "is damaged" in line and ".recover" in line
    with pytest.raises(GalleryDamaged, match="is damaged"):
        g = Gallery(db)
        g.identify(_unit(1, 7), 0.5, VERSION)


def test_a_corrupted_page_is_one_line_on_remove(tmp_path):
    with pytest.raises(GalleryDamaged, match="is damaged"):
        Gallery(_damaged_gallery(tmp_path)).remove("person0007")


def test_a_zero_byte_file_is_not_silently_a_new_gallery(tmp_path, capsys):
    db = tmp_path / "faces.db"
    db.write_bytes(b"")
    assert main(["faces", "list", "--gallery", str(db)]) == 2
    assert "empty file (0 bytes)" in one_error_line(capsys)
    assert db.stat().st_size == 0  # left as it was
    assert main(["faces", "list", "--gallery", str(tmp_path / "new.db")]) == 0  # a missing file is a new gallery


@settings(max_examples=60, deadline=None)
@given(name=st.text(min_size=1, max_size=50).filter(str.strip))
def test_names_with_control_characters_are_refused_and_others_kept_exactly(tmp_path_factory, name):
    g = Gallery(tmp_path_factory.mktemp("g") / "faces.db")
    printable = all(c.isprintable() or c == " " for c in name)
    try:
        g.enrol(name, _unit(1, 0), ["h"], VERSION)
        stored = dict(g.persons())
        assert name in stored and display_name(name) == name or not printable
    except ValueError as err:
        assert "control characters" in str(err) and not printable
    finally:
        g.close()


def test_long_names_newlines_and_ansi_escapes(tmp_path, capsys):
    g = Gallery(tmp_path / "faces.db")
    for bad in ["x" * 100_000, "eve\nmallory: 3 encoding(s)", "\x1b[2J\x1b[31mroot"]:
        with pytest.raises(ValueError, match="at most|control characters"):
            g.enrol(bad, _unit(1, 0), ["h"], VERSION)
    assert g.persons() == []
    g.close()
    assert main(["faces", "enrol", "x" * 100_000, "photo.jpg", "--gallery", str(tmp_path / "faces.db")]) == 2
    line = one_error_line(capsys)
    assert f"at most {MAX_NAME_CHARS}" in line and len(line) < 300
    # a name stored by an older version is printed escaped, on one line
    db = sqlite3.connect(tmp_path / "faces.db")
    db.execute("INSERT INTO persons(name, enrolled_at) VALUES (?, 0)", ("old\x1b[31m\nname",))
    db.commit()
    db.close()
    assert main(["faces", "list", "--gallery", str(tmp_path / "faces.db")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  old\\x1b[31m\\nname: 0 encoding(s)" and "\x1b" not in "".join(out)


def test_the_same_photo_under_two_names_is_found(tmp_path):
    with Gallery(tmp_path / "faces.db") as g:
        g.enrol("ada", _unit(1, 0), ["same-photo"], VERSION)
        g.enrol("bob", _unit(1, 1), ["other-photo"], VERSION)
        assert g.owners(["same-photo", "other-photo", "new-photo"]) == {"same-photo": ["ada"], "other-photo": ["bob"]}
