"""The face gallery with several real processes enrolling, removing and identifying at once, and
one writer killed with SIGKILL mid-stream: the database stays whole and every person is all-or-nothing."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from serving.gallery import Gallery

ROOT = Path(__file__).resolve().parents[1]
PER_PERSON, DIM, VERSION = 3, 16, "enc@1"

WORKER = textwrap.dedent(f"""
    import sys
    import numpy as np
    from serving.gallery import Gallery
    path, worker, count, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    g = Gallery(path)
    for i in range(count):
        rng = np.random.default_rng(worker * 10000 + i)
        e = rng.normal(size=({PER_PERSON}, {DIM})).astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        g.enrol(f"w{{worker}}-p{{i}}", e, [f"{{worker}}-{{i}}-{{k}}" for k in range({PER_PERSON})], "{VERSION}")
        if mode == "churn" and i % 2:
            g.remove(f"w{{worker}}-p{{i}}")
        if mode == "read":
            g.identify(e[:1], 0.5, "{VERSION}")
        print(i, flush=True)
""")


def _embeddings(worker, i):
    rng = np.random.default_rng(worker * 10000 + i)
    e = rng.normal(size=(PER_PERSON, DIM)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _start(path, worker, count, mode):
    return subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(worker), str(count), mode], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_concurrent_writers_readers_and_a_killed_writer_leave_a_consistent_gallery(tmp_path):
    path = tmp_path / "faces.db"
    Gallery(path).close()  # schema created once; the workers race on everything else
    workers = {0: ("plain", 30), 1: ("churn", 30), 2: ("read", 30)}
    procs = {w: _start(path, w, n, mode) for w, (mode, n) in workers.items()}
    victim = _start(path, 3, 10_000, "plain")
    deadline, enrolled = time.time() + 120, 0
    while enrolled < 5 and time.time() < deadline:  # kill it while the others are still writing
        enrolled += bool(victim.stdout.readline())
    os.kill(victim.pid, signal.SIGKILL)  # mid-stream, possibly inside a transaction
    victim.wait(timeout=30)
    for p in procs.values():
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    g = Gallery(path)
    persons = dict(g.persons())
    assert all(n == PER_PERSON for n in persons.values())  # nobody half-enrolled, not even by the killed writer
    assert {f"w0-p{i}" for i in range(30)} <= persons.keys()
    assert {f"w1-p{i}" for i in range(30)} & persons.keys() == {f"w1-p{i}" for i in range(0, 30, 2)}
    assert {f"w2-p{i}" for i in range(30)} <= persons.keys()
    killed = sorted(int(n.split("-p")[1]) for n in persons if n.startswith("w3-"))
    assert killed == list(range(len(killed))) and len(killed) >= 1  # a prefix of its work, nothing torn
    assert len(g) == PER_PERSON * len(persons)
    for name in ("w0-p29", "w1-p28", "w2-p0", f"w3-p{killed[-1]}"):  # stored vectors are found again exactly
        w, i = int(name[1]), int(name.split("-p")[1])
        assert [m.name for m in g.identify(_embeddings(w, i), 1e-5, VERSION)] == [name] * PER_PERSON
    g.enrol("after-crash", _embeddings(9, 0), ["a", "b", "c"], VERSION)  # still writable
    assert dict(g.persons())["after-crash"] == PER_PERSON
