"""The face gallery: K enrolled persons and their encodings, persisted in SQLite.

Recognition compares a query encoding with every stored one; people join
(``enrol``) and leave (``remove``) without retraining the encoder. Each
encoding row keeps the person, the float32 embedding, the SHA-256 of the
source image, the version of the encoder that made it, and the aligned face
crop (PNG) so ``reencode`` can rebuild every encoding when the encoder changes.
A gallery holds encodings of ONE encoder version: enrolling or identifying
with another one is refused (distances between two encoders mean nothing).

Hostile files and names: a zero-byte or non-SQLite file is refused at open
(never silently a new gallery); a damaged database (a corrupted page) raises
``GalleryDamaged`` with one line and the way to recover, from any method;
names are at most ``MAX_NAME_CHARS`` characters without control characters
(newlines, ANSI escapes), and ``display_name`` makes older ones safe to print.
``owners`` tells which persons already hold a photo, so enrolling the same
photo under another name can be warned about.

Concurrency: the database runs in WAL mode (readers never block the writer)
and every change is one ``BEGIN IMMEDIATE`` transaction with a busy timeout,
so several processes can enrol at once and nothing is lost.

Search: the encodings are loaded once into one contiguous float32 matrix
(reloaded only when another write bumped the gallery's generation) and
scanned block by block with a matrix product. The gallery's ``distance``
is set by the encoder at enrol: ``squared_l2`` (unit-length embeddings, so
||q - e||^2 = 2 - 2 q.e and the nearest encoding is the largest dot product)
or ``euclidean`` (raw embeddings such as dlib's descriptors, threshold 0.6:
each row is stored as [e, -||e||^2 / 2] and the query as [q, 1], whose dot
product q.e - ||e||^2 / 2 is largest for the nearest e, and
||q - e|| = sqrt(||q||^2 - 2 (that product))). ``index="faiss"`` hands the
same matrix to a faiss ``IndexFlatIP`` (exact, same answers) instead.

Example:
    >>> g = Gallery("faces.db")
    >>> g.enrol("ada", embeddings, hashes, encoder_version="faces/3@1a2b")
    >>> g.identify(query_embeddings, threshold=0.9, encoder_version="faces/3@1a2b")
    [Match(name='ada', distance=0.31), Match(name=None, distance=1.7)]
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.gallery_safety import (
    MAX_NAME_CHARS,
    GalleryDamaged,
    check_file,
    check_name,
    damaged,
    display_name,
    guarded,
)

__all__ = ["EUCLIDEAN", "MAX_NAME_CHARS", "SQUARED_L2", "EncoderMismatch", "Gallery", "GalleryDamaged", "Match", "best_inner_product", "check_name",
           "display_name"]

DEFAULT_PATH = "faces.db"
SQUARED_L2, EUCLIDEAN = "squared_l2", "euclidean"  # how encodings compare (see Search above)
FETCH_ROWS = 8192  # rows read from SQLite at a time (bounds the transient copies)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS persons (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, enrolled_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS encodings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    image_sha256 TEXT NOT NULL,
    encoder_version TEXT NOT NULL,
    crop BLOB,
    source TEXT,
    UNIQUE (person_id, image_sha256));
CREATE INDEX IF NOT EXISTS encodings_person ON encodings(person_id);
"""


class EncoderMismatch(ValueError):
    """The gallery was encoded by another encoder version; the message names both and the fix."""


@dataclass(frozen=True)
class Match:
    """The closest enrolled person (None: not recognised) and the distance to them (the gallery's ``distance``)."""

    name: str | None
    distance: float


@dataclass
class _Index:
    generation: int
    names: list[str]
    person_of_row: np.ndarray  # int32 [M]: index into names
    matrix: np.ndarray | None  # float32 [M, D] (None when faiss holds the vectors)
    faiss_index: object | None


class Gallery:
    """A SQLite-backed gallery at ``path`` (created on first use)."""

    def __init__(self, path: str | Path = DEFAULT_PATH, index: str = "numpy", timeout_s: float = 60.0):
        if index not in ("numpy", "faiss"):
            raise ValueError(f"unknown gallery index {index!r}; choose numpy or faiss. Received: index={index!r}")
        self.path = Path(path)
        self.index_kind = index
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_file(self.path)
        self._db = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise damaged(self.path, err) from None
        self._db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a crash never corrupts; commits skip fsync
        self._db.execute("PRAGMA foreign_keys = ON")
        with self._write():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(statement)
        self._index: _Index | None = None

    # -- reading --------------------------------------------------------------
    @property
    @guarded
    def encoder_version(self) -> str | None:
        """The version of the encoder that made every stored encoding (None while empty)."""
        return self._meta("encoder_version")

    @property
    @guarded
    def distance(self) -> str:
        """How the stored encodings compare: ``squared_l2`` (unit length; the default) or ``euclidean``."""
        return self._meta("distance") or SQUARED_L2

    @property
    @guarded
    def generation(self) -> int:
        """A counter bumped by every change (cached search matrices compare it)."""
        return int(self._meta("generation") or 0)

    @guarded
    def meta(self, key: str) -> str | None:
        """A free-form setting stored with the gallery (e.g. the encoder export it was made with)."""
        return self._meta(key)

    @guarded
    def set_meta(self, key: str, value: str) -> None:
        with self._write():
            self._set_meta(key, value)

    @guarded
    def persons(self) -> list[tuple[str, int]]:
        """(name, number of encodings) of every enrolled person, by name."""
        return self._db.execute(
            "SELECT p.name, COUNT(e.id) FROM persons p LEFT JOIN encodings e ON e.person_id = p.id GROUP BY p.id ORDER BY p.name"
        ).fetchall()

    def _empty(self) -> bool:
        return self._db.execute("SELECT NOT EXISTS (SELECT 1 FROM encodings)").fetchone()[0] == 1

    @guarded
    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM encodings").fetchone()[0]

    @guarded
    def check_encoder(self, encoder_version: str) -> None:
        """Raise ``EncoderMismatch`` unless the gallery is empty or encoded by ``encoder_version``."""
        stored = self.encoder_version
        if stored is not None and stored != encoder_version and not self._empty():
            raise EncoderMismatch(
                f"gallery {self.path} holds encodings of encoder {stored!r} but this encoder is {encoder_version!r}; "
                "run `convforge faces reencode` with the new encoder (or use the old one)"
            )

    # -- changing -------------------------------------------------------------
    @guarded
    def enrol(
        self,
        name: str,
        embeddings: np.ndarray,
        image_hashes: Sequence[str],
        encoder_version: str,
        crops: Sequence[bytes | None] | None = None,
        sources: Sequence[str | None] | None = None,
        distance: str = SQUARED_L2,
    ) -> int:
        """Add encodings ``[M, D]`` of person ``name``; returns how many were new.

        ``distance``: how the encoder's embeddings compare (``squared_l2``: unit
        length; ``euclidean``: raw). An image already enrolled for ``name`` (same hash) is skipped.
        """
        e = _rows(embeddings, distance)
        if len(e) != len(image_hashes):
            raise ValueError(f"{len(e)} embeddings but {len(image_hashes)} image hashes")
        crops = list(crops) if crops is not None else [None] * len(e)
        sources = list(sources) if sources is not None else [None] * len(e)
        check_name(name)
        with self._write():
            self.check_encoder(encoder_version)
            dim = self._meta("dim")
            if dim is not None and int(dim) != e.shape[1] and not self._empty():
                raise EncoderMismatch(f"gallery {self.path} stores {dim}-d encodings; received {e.shape[1]}-d")
            if self.distance != distance and not self._empty():
                raise EncoderMismatch(f"gallery {self.path} compares encodings by {self.distance}; received {distance} ones")
            self._db.execute("INSERT OR IGNORE INTO persons(name, enrolled_at) VALUES (?, ?)", (name, time.time()))
            person_id = self._db.execute("SELECT id FROM persons WHERE name = ?", (name,)).fetchone()[0]
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO encodings(person_id, embedding, image_sha256, encoder_version, crop, source) VALUES (?, ?, ?, ?, ?, ?)",
                [(person_id, row.tobytes(), h, encoder_version, c, s) for row, h, c, s in zip(e, image_hashes, crops, sources, strict=True)],
            )
            added = self._db.total_changes - before
            self._set_meta("encoder_version", encoder_version)
            self._set_meta("dim", e.shape[1])
            self._set_meta("distance", distance)
            self._bump()
        return added

    @guarded
    def owners(self, image_hashes: Sequence[str]) -> dict[str, list[str]]:
        """Image hash -> names of the persons already enrolled with that image (hashes not enrolled are left out)."""
        out: dict[str, list[str]] = {}
        for h in dict.fromkeys(image_hashes):
            rows = self._db.execute("SELECT p.name FROM encodings e JOIN persons p ON p.id = e.person_id "
                                    "WHERE e.image_sha256 = ? ORDER BY p.name", (h,)).fetchall()
            if rows:
                out[h] = [r[0] for r in rows]
        return out

    @guarded
    def remove(self, name: str) -> int:
        """Remove person ``name`` and their encodings; returns the number of encodings removed."""
        with self._write():
            row = self._db.execute("SELECT id FROM persons WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise KeyError(name)
            n = self._db.execute("DELETE FROM encodings WHERE person_id = ?", (row[0],)).rowcount
            self._db.execute("DELETE FROM persons WHERE id = ?", (row[0],))
            self._bump()
        return n

    @guarded
    def reencode(self, encode: Callable[[list[bytes]], np.ndarray], encoder_version: str, batch: int = 256,
                 distance: str = SQUARED_L2) -> int:
        """Rebuild every encoding from its stored crop with ``encode(png_crops) -> [M, D]``.

        One transaction: readers see the old encodings until it commits.
        """
        with self._write():
            rows = self._db.execute("SELECT id, crop FROM encodings ORDER BY id").fetchall()
            missing = [i for i, crop in rows if crop is None]
            if missing:
                raise ValueError(f"{len(missing)} encodings have no stored crop (enrolled from embeddings only); enrol those images again")
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                e = _rows(encode([crop for _, crop in chunk]), distance)
                self._db.executemany(
                    "UPDATE encodings SET embedding = ?, encoder_version = ? WHERE id = ?",
                    [(v.tobytes(), encoder_version, i) for v, (i, _) in zip(e, chunk, strict=True)],
                )
                self._set_meta("dim", e.shape[1])
            self._set_meta("encoder_version", encoder_version)
            self._set_meta("distance", distance)
            self._bump()
        return len(rows)

    # -- searching ------------------------------------------------------------
    @guarded
    def identify(self, queries: np.ndarray, threshold: float, encoder_version: str) -> list[Match]:
        """The closest person for each query ``[Q, D]``, or ``Match(None, d)`` when d > ``threshold``."""
        self.check_encoder(encoder_version)
        q = _rows(queries, self.distance)
        index = self._load()
        if not index.names:
            return [Match(None, float("inf")) for _ in q]
        rows, scores = self._search(index, _query_side(q, self.distance))
        out = []
        for r, s, qi in zip(rows, scores, q, strict=True):
            d = _distance(float(s), qi, self.distance)
            out.append(Match(index.names[index.person_of_row[r]] if d <= threshold else None, d))
        return out

    @guarded
    def verify(self, query: np.ndarray, name: str, threshold: float, encoder_version: str) -> Match:
        """Is ``query`` ``[D]`` person ``name``? Match(name, d) if d <= threshold, else Match(None, d)."""
        self.check_encoder(encoder_version)
        q = _rows(np.asarray(query).reshape(1, -1), self.distance)[0]
        index = self._load()
        if name not in index.names:
            raise KeyError(name)
        rows = np.flatnonzero(index.person_of_row == index.names.index(name))
        vectors = index.matrix[rows] if index.matrix is not None else np.stack([index.faiss_index.reconstruct(int(r)) for r in rows])
        d = _distance(float(np.max(vectors @ _query_side(q[None], self.distance)[0])), q, self.distance)
        return Match(name if d <= threshold else None, d)

    def _search(self, index: _Index, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if index.faiss_index is not None:
            scores, rows = index.faiss_index.search(q, 1)
            return rows[:, 0], scores[:, 0]
        return best_inner_product(index.matrix, q)

    def _load(self) -> _Index:
        generation = self.generation
        if self._index is not None and self._index.generation == generation:
            return self._index
        self._index = None  # free the old matrix before building the new one
        with self._read():
            generation = self.generation
            names, ids = [], {}
            for pid, name in self._db.execute("SELECT id, name FROM persons ORDER BY id"):
                ids[pid] = len(names)
                names.append(name)
            m = len(self)
            dim = int(self._meta("dim") or 0)
            matrix = np.empty((m, dim), np.float32)
            owner = np.empty(m, np.int32)
            cursor = self._db.execute("SELECT person_id, embedding FROM encodings ORDER BY id")
            r = 0
            while chunk := cursor.fetchmany(FETCH_ROWS):
                n = len(chunk)
                matrix[r : r + n] = np.frombuffer(b"".join(blob for _, blob in chunk), np.float32).reshape(n, dim)
                owner[r : r + n] = [ids[pid] for pid, _ in chunk]
                r += n
        if self.distance == EUCLIDEAN:  # [e, -||e||^2 / 2]: the nearest e has the largest dot product with [q, 1]
            matrix = np.concatenate([matrix, -0.5 * np.einsum("ij,ij->i", matrix, matrix)[:, None]], axis=1)
            dim += 1
        faiss_index = None
        if self.index_kind == "faiss" and m:
            import faiss

            faiss_index = faiss.IndexFlatIP(dim)
            faiss_index.add(matrix)
            matrix = None
        self._index = _Index(generation, names, owner, matrix, faiss_index)
        return self._index

    def _read(self):
        return _Transaction(self._db, mode="DEFERRED")

    # -- transactions ---------------------------------------------------------
    def _write(self):
        return _Transaction(self._db)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value) -> None:
        self._db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)))

    def _bump(self) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES ('generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def close(self) -> None:
        """Close the connection (the cached search matrix is dropped too)."""
        self._index = None
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` (take the write lock now, waiting up to the busy timeout) ... COMMIT/ROLLBACK."""

    def __init__(self, db: sqlite3.Connection, mode: str = "IMMEDIATE"):
        self.db, self.mode = db, mode

    def __enter__(self):
        self.db.execute(f"BEGIN {self.mode}")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


def _rows(embeddings: np.ndarray, distance: str) -> np.ndarray:
    """Validated float32 rows ``[M, D]``: unit length for ``squared_l2``, finite for ``euclidean``."""
    if distance not in (SQUARED_L2, EUCLIDEAN):
        raise ValueError(f"unknown distance {distance!r}; choose {SQUARED_L2} or {EUCLIDEAN}")
    if distance == SQUARED_L2:
        return _unit_rows(embeddings)
    e = np.ascontiguousarray(np.asarray(embeddings, np.float32))
    if e.ndim != 2 or e.shape[1] == 0 or not np.all(np.isfinite(e)):
        raise ValueError(f"embeddings must be finite [M, D]; received shape {e.shape}")
    return e


def _query_side(q: np.ndarray, distance: str) -> np.ndarray:
    """Queries as the search matrix expects them: [q] (squared_l2) or [q, 1] (euclidean)."""
    return q if distance == SQUARED_L2 else np.concatenate([q, np.ones((len(q), 1), np.float32)], axis=1)


def _distance(score: float, q: np.ndarray, distance: str) -> float:
    """The distance of a query to the row whose (augmented) dot product with it is ``score``."""
    if distance == SQUARED_L2:
        return max(0.0, 2.0 - 2.0 * score)
    return float(np.sqrt(max(0.0, float(q @ q) - 2.0 * score)))


def _unit_rows(embeddings: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    e = np.ascontiguousarray(np.asarray(embeddings, np.float32))
    if e.ndim != 2 or e.shape[1] == 0:
        raise ValueError(f"embeddings must be [M, D]; received shape {e.shape}")
    norms = np.linalg.norm(e, axis=1)
    if not np.all(np.abs(norms - 1.0) <= tolerance):
        raise ValueError("embeddings must have unit length (the encoder L2-normalises them)")
    return e


def best_inner_product(matrix: np.ndarray, queries: np.ndarray, scratch_floats: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """Row of ``matrix`` ``[M, D]`` with the largest dot product with each query ``[Q, D]``, and that product.

    Scans the rows in blocks so the scratch scores never exceed
    ``scratch_floats`` (64 MB by default) whatever M is; one query scans
    everything in one matrix-vector product.
    """
    q_t = np.ascontiguousarray(queries.T)
    block = max(1024, scratch_floats // max(1, len(queries)))
    best_rows = np.zeros(len(queries), np.int64)
    best = np.full(len(queries), -np.inf, np.float32)
    for start in range(0, len(matrix), block):
        scores = matrix[start : start + block] @ q_t  # [B, Q]
        arg = np.argmax(scores, axis=0)
        top = scores[arg, np.arange(len(queries))]
        better = top > best
        best[better], best_rows[better] = top[better], arg[better] + start
    return best_rows, best
