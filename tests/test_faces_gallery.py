"""The SQLite gallery: enrol/identify/remove, restarts, concurrent writers, encoder versions, faiss."""

import multiprocessing as mp

import numpy as np
import pytest

from serving.gallery import EncoderMismatch, Gallery, best_inner_product

V1 = "faces/1@aaaa"


def unit(rng, n, dim=16):
    e = rng.normal(size=(n, dim)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def near(e, rng, scale=0.05):
    out = e + rng.normal(scale=scale, size=e.shape).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_enrol_identify_remove_then_not_recognised(tmp_path):
    rng = np.random.default_rng(0)
    people = unit(rng, 3)
    g = Gallery(tmp_path / "g.db")
    for name, e in zip(["ada", "bob", "cy"], people, strict=True):
        assert g.enrol(name, e[None], [f"hash-{name}"], V1) == 1
    assert g.enrol("ada", people[:1], ["hash-ada"], V1) == 0  # the same image again is skipped
    matches = g.identify(near(people, rng), threshold=0.5, encoder_version=V1)
    assert [m.name for m in matches] == ["ada", "bob", "cy"]
    assert all(m.distance < 0.1 for m in matches)
    assert g.verify(near(people[1:2], rng)[0], "bob", 0.5, V1).name == "bob"
    assert g.verify(people[0], "bob", 0.5, V1).name is None
    assert g.remove("bob") == 1
    assert g.identify(near(people[1:2], rng), 0.5, V1)[0].name is None  # not recognised
    assert [p for p, _ in g.persons()] == ["ada", "cy"]
    with pytest.raises(KeyError):
        g.remove("bob")
    with pytest.raises(ValueError, match="unit length"):
        g.enrol("dan", people[:1] * 2, ["h"], V1)


def test_stored_encodings_are_loaded_once_and_reloaded_after_another_writer(tmp_path):
    rng = np.random.default_rng(4)
    people = unit(rng, 2)
    g = Gallery(tmp_path / "g.db")
    g.enrol("ada", people[:1], ["a"], V1)
    g.identify(people[:1], 0.5, V1)
    loaded = g._index
    g.identify(people[1:], 0.5, V1)
    assert g._index is loaded  # the matrix is reused, not re-read per query
    Gallery(tmp_path / "g.db").enrol("bob", people[1:], ["b"], V1)  # another connection (or process) writes
    assert g.identify(people[1:], 0.5, V1)[0].name == "bob" and g._index is not loaded


def _enrol_many(path, worker, count):
    rng = np.random.default_rng(worker)
    g = Gallery(path)
    for i in range(count):
        g.enrol(f"w{worker}-p{i}", unit(rng, 2), [f"{worker}-{i}-a", f"{worker}-{i}-b"], V1)
    g.close()


def test_concurrent_enrolments_from_several_processes_lose_nothing_and_survive_restart(tmp_path):
    path = tmp_path / "shared.db"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_enrol_many, args=(path, w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    g = Gallery(path)  # a new process-level view of what the writers left
    assert len(g.persons()) == 100 and len(g) == 200
    assert g.generation == 100
    # every worker's encodings are found again by exact search
    rng = np.random.default_rng(2)
    first = unit(rng, 2)
    match = g.identify(first, 1e-6, V1)
    assert [m.name for m in match] == ["w2-p0", "w2-p0"]


def test_encoder_version_mismatch_is_refused_until_reencoded(tmp_path):
    rng = np.random.default_rng(1)
    e = unit(rng, 4)
    g = Gallery(tmp_path / "g.db")
    g.enrol("ada", e[:2], ["a1", "a2"], V1, crops=[b"crop-a1", b"crop-a2"])
    g.enrol("bob", e[2:], ["b1", "b2"], V1, crops=[b"crop-b1", b"crop-b2"])
    with pytest.raises(EncoderMismatch, match="faces reencode"):
        g.identify(e[:1], 0.5, "faces/2@bbbb")
    with pytest.raises(EncoderMismatch):
        g.enrol("cy", e[:1], ["c1"], "faces/2@bbbb")
    new = {c: v for c, v in zip([b"crop-a1", b"crop-a2", b"crop-b1", b"crop-b2"], unit(rng, 4, dim=8), strict=True)}
    assert g.reencode(lambda crops: np.stack([new[c] for c in crops]), "faces/2@bbbb") == 4
    assert g.encoder_version == "faces/2@bbbb"
    assert g.identify(new[b"crop-b2"][None], 1e-6, "faces/2@bbbb")[0].name == "bob"


def test_faiss_index_gives_the_same_answers_as_numpy_search(tmp_path):
    rng = np.random.default_rng(3)
    stored = unit(rng, 3000, dim=32)
    g = Gallery(tmp_path / "g.db")
    for i in range(0, 3000, 10):
        g.enrol(f"p{i // 10}", stored[i : i + 10], [str(j) for j in range(i, i + 10)], V1)
    queries = np.concatenate([near(stored[::97], rng, 0.05), unit(rng, 20, dim=32)])
    exact = np.argmax(queries @ stored.T, axis=1)
    rows, _ = best_inner_product(stored, queries, scratch_floats=256 * len(queries))  # several blocks
    np.testing.assert_array_equal(rows, exact)
    a = g.identify(queries, 0.3, V1)
    b = Gallery(tmp_path / "g.db", index="faiss").identify(queries, 0.3, V1)
    assert [m.name for m in a] == [m.name for m in b]
    np.testing.assert_allclose([m.distance for m in a], [m.distance for m in b], atol=1e-4)
    assert [m.name for m in a[:31]] == [f"p{i // 10}" for i in range(0, 3000, 97)]
    assert all(m.name is None for m in a[31:])  # random directions are far from everyone


@pytest.mark.parametrize("index", ["numpy", "faiss"])
def test_euclidean_gallery_of_raw_descriptors_answers_as_brute_force(tmp_path, index):
    """dlib-style raw descriptors (norms ~0.9-1.6): nearest by plain Euclidean distance, threshold 0.6."""
    rng = np.random.default_rng(5)
    stored = rng.normal(scale=0.1, size=(300, 128)).astype(np.float32) * rng.uniform(0.8, 1.4, (300, 1)).astype(np.float32)
    g = Gallery(tmp_path / "e.db", index=index)
    for k in range(0, 300, 3):
        g.enrol(f"p{k // 3}", stored[k : k + 3], [f"h{k + i}" for i in range(3)], "dlib@1", distance="euclidean")
    assert g.distance == "euclidean"
    queries = np.concatenate([stored[::7] + rng.normal(scale=0.02, size=(43, 128)).astype(np.float32),
                              rng.normal(scale=0.1, size=(5, 128)).astype(np.float32) * 3])
    d = np.linalg.norm(queries[:, None] - stored[None], axis=-1)
    matches = g.identify(queries, 0.6, "dlib@1")
    np.testing.assert_allclose([m.distance for m in matches], d.min(axis=1), rtol=1e-4, atol=1e-4)
    expected = [f"p{i // 3}" if v <= 0.6 else None for i, v in zip(d.argmin(axis=1), d.min(axis=1), strict=True)]
    assert [m.name for m in matches] == expected and expected[-1] is None  # far queries: not recognised
    v = g.verify(queries[0], "p0", 0.6, "dlib@1")
    assert v.name == "p0" and v.distance == pytest.approx(d[0, :3].min(), abs=1e-4)
    with pytest.raises(EncoderMismatch, match="compares encodings by euclidean"):
        g.enrol("unit", unit(rng, 1, 128), ["u"], "dlib@1")
    with pytest.raises(ValueError, match="finite"):
        g.enrol("nan", np.full((1, 128), np.nan, np.float32), ["n"], "dlib@1", distance="euclidean")
