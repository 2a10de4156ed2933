"""Faces: gallery search at 1,000,000 encodings, and one-shot learning on unseen classes.

    .venv/bin/python benchmarks/faces.py [--encodings 1000000] [--steps 600] [--losses ...] [--lite0-losses ...]
                                         [--skip-training] [--skip-gallery]

1. Identify against a SQLite gallery of ``--encodings`` 128-d unit encodings
   (20 per person), 2 threads, side by side: the gallery's NumPy block scan
   and faiss ``IndexFlatIP`` (both exact). Reports load time, resident
   memory added (against the raw float32 size), latency of one query and
   per query in batches of 64, and whether both engines give the same answers.
2. One-shot on a proxy (a teaching example, no goal): the ``faces_fashion_mnist`` recipe trains the encoder on 5
   Fashion-MNIST classes (``--steps`` P x K batches) once per loss; the 5
   classes it never saw are verified (ROC AUC, EER) and identified (enrol one
   image per class, identify the rest). Same seed, data and steps for each loss;
   ``LOSS:euclidean`` trains with plain instead of squared distances. The
   ``faces_fashion_mnist_lite0`` recipe (the ImageNet EfficientNet-Lite0 trunk,
   images upscaled to 64 px) trains with each of ``--lite0-losses`` on the same
   split and steps, its rows next to the small CNN's.

``--skip-gallery`` keeps the gallery subsection of the previous results file
(it says so) and reruns only the one-shot part; ``--keep-previous-rows`` adds
the previous run's small-CNN rows of the losses not rerun, marked "previous run".
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

THREADS = "2"
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
    os.environ.setdefault(var, THREADS)
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.machine import table, write_section  # noqa: E402

PER_PERSON = 20
DIM = 128


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def unit(rng, n, dim=DIM):
    e = rng.standard_normal((n, dim), dtype=np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def build_gallery(path: Path, n: int, seed: int = 0) -> float:
    from serving.gallery import Gallery

    rng = np.random.default_rng(seed)
    g = Gallery(path)
    start = time.perf_counter()
    for person in range(n // PER_PERSON):
        e = unit(rng, PER_PERSON)
        g.enrol(f"person{person:07d}", e, [f"{person}-{i}" for i in range(PER_PERSON)], "bench/1@0")
    g.close()
    return time.perf_counter() - start


def probe_queries(path: Path, n: int, rng) -> tuple[np.ndarray, list]:
    """64 noisy copies of stored encodings (answer known) and 64 random directions (not recognised)."""
    import sqlite3

    db = sqlite3.connect(str(path))
    rows = np.sort(rng.choice(n, 64, replace=False)) + 1
    picked = [db.execute("SELECT p.name, e.embedding FROM encodings e JOIN persons p ON p.id = e.person_id WHERE e.id = ?", (int(r),)).fetchone() for r in rows]
    db.close()
    known = np.stack([np.frombuffer(blob, np.float32) for _, blob in picked])
    noisy = known + rng.normal(scale=0.02, size=known.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return np.concatenate([noisy, unit(rng, 64)]), [name for name, _ in picked] + [None] * 64


def time_engine(path: Path, index: str, queries: np.ndarray) -> dict:
    from serving.gallery import Gallery

    before = rss_mb()
    g = Gallery(path, index=index)
    start = time.perf_counter()
    g.identify(queries[:1], 0.5, "bench/1@0")  # loads the encodings once
    load_s = time.perf_counter() - start
    added = rss_mb() - before
    singles = []
    for q in queries[:32]:
        t = time.perf_counter()
        g.identify(q[None], 0.5, "bench/1@0")
        singles.append(time.perf_counter() - t)
    t = time.perf_counter()
    answers = g.identify(queries[:64], 0.5, "bench/1@0") + g.identify(queries[64:], 0.5, "bench/1@0")
    batched = (time.perf_counter() - t) / len(queries)
    g.close()
    del g
    return {"load_s": load_s, "rss_mb": added, "single_ms": 1000 * float(np.median(singles)), "batched_ms": 1000 * batched, "answers": answers}


def gallery_benchmark(n: int) -> str:
    import faiss

    faiss.omp_set_num_threads(int(THREADS))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gallery.db"
        build_s = build_gallery(path, n)
        queries, truth = probe_queries(path, n, np.random.default_rng(1))
        results = {index: time_engine(path, index, queries) for index in ("numpy", "faiss")}
    raw_mb = n * DIM * 4 / 2**20
    names = {k: [m.name for m in r["answers"]] for k, r in results.items()}
    same = names["numpy"] == names["faiss"]
    correct = {k: sum(a == b for a, b in zip(v, truth, strict=True)) for k, v in names.items()}
    rows = [
        [k, f"{r['load_s']:.1f}", f"{r['rss_mb']:.0f} ({r['rss_mb'] / raw_mb:.2f}x raw)", f"{r['single_ms']:.1f}", f"{r['batched_ms']:.2f}", f"{correct[k]}/128"]
        for k, r in results.items()
    ]
    ratio = results["numpy"]["single_ms"] / results["faiss"]["single_ms"]
    print(f"numpy/faiss single-query time ratio {ratio:.2f}; same answers: {same}")
    return (
        f"### Identify against {n:,} stored 128-d encodings ({n // PER_PERSON:,} persons x {PER_PERSON}), {THREADS} threads\n\n"
        f"Raw float32 size {raw_mb:.0f} MB; gallery built in {build_s:.0f} s (one transaction per person). "
        f"Load average of the (shared) machine during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores. "
        f"Queries: 64 noisy copies of stored encodings (answer known) + 64 random directions (must be 'not recognised'), threshold 0.5.\n\n"
        + table(["engine", "load s", "memory added MB", "ms / query (1 at a time, median)", "ms / query (batches of 64)", "right answers"], rows)
        + f"\n\nBoth engines give the same answers: {'yes' if same else 'NO'}; single-query time numpy / faiss = {ratio:.2f}.\n"
    )


def class_pair_aucs(task, model) -> list[str]:
    """AUC of all same-class pairs against the different-class pairs of each two unseen classes."""
    from itertools import combinations

    from sklearn.metrics import roc_auc_score

    from tasks.problems.faces import embed

    test = task.splits["test"]
    e, y = embed(model, test.x, task.input_shape), test.y
    i, j = np.triu_indices(len(y), 1)
    d, same = ((e[i] - e[j]) ** 2).sum(1), y[i] == y[j]
    out = []
    for a, b in combinations(np.unique(y), 2):
        neg = d[((y[i] == a) & (y[j] == b)) | ((y[i] == b) & (y[j] == a))]
        score = roc_auc_score(np.r_[np.ones(same.sum()), np.zeros(len(neg))], -np.r_[d[same], neg])
        out.append(f"{task.class_names[a]} / {task.class_names[b]} {score:.2f}")
    return out


def previous_gallery_section() -> str:
    """The gallery subsection of the last results file, marked as reused."""
    from benchmarks.machine import RESULTS

    text = (RESULTS / "faces.md").read_text()
    start = text.index("### Identify against")
    end = text.find("### One-shot", start)
    machine = text.split("Machine: ", 1)[1].split("\n", 1)[0]
    return text[start: end if end >= 0 else len(text)].strip() + f"\n\n(Gallery figures kept from the previous run: {machine}.)\n"


def previous_cnn_rows(rerun: list[str]) -> list[list[str]]:
    """Small-CNN rows of the last results file whose loss is not rerun now, marked as such."""
    from benchmarks.machine import RESULTS

    text = (RESULTS / "faces.md").read_text()
    table_text = text[text.index("### One-shot"):]
    out = []
    for line in table_text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not cells[1][:1].isdigit():
            continue
        name = cells[0].removeprefix("small CNN ")
        if name.startswith("Lite0 ") or name.split(" ")[0] in rerun:
            continue
        out.append([f"small CNN {name} (previous run)", *cells[1:]])
    return out


def verdict(aucs: dict[str, float]) -> str:
    best = max(aucs, key=aucs.get)
    mined = {k: v for k, v in aucs.items() if "hard" in k}
    out = f"best test AUC {aucs[best]:.3f} ({best})."
    if mined and "triplet_random" in aucs:
        win = max(mined.values()) > aucs["triplet_random"]
        out += (f" Best hard/semi-hard mining ({max(mined.values()):.3f}) vs random triplets ({aucs['triplet_random']:.3f}): "
                f"{'mining wins' if win else 'random wins'}.")
    return out


def one_shot_benchmark(losses: list[str], steps: int, epochs: int, lite0_losses: list[str] = (), keep_previous: bool = False) -> str:
    import keras

    from tasks.core.recipe import load_recipe
    from tasks.core.task import get_task_class

    rows, aucs, lite_aucs, pairs = [], {}, {}, {}
    runs = [("faces_fashion_mnist", spec) for spec in losses] + [("faces_fashion_mnist_lite0", spec) for spec in lite0_losses]
    for recipe_name, spec in runs:
        lite = recipe_name.endswith("lite0")
        loss, _, distance = spec.partition(":")  # e.g. triplet_batch_hard:euclidean
        overrides = [f"faces.loss={loss}", f"train.epochs={epochs}", f"train.steps_per_epoch={steps // epochs}"]
        recipe = load_recipe(recipe_name, overrides + (["faces.squared=false"] if distance == "euclidean" else []))
        keras.utils.set_random_seed(recipe["seed"])
        task = get_task_class("faces")(recipe)
        inputs = task.build_inputs()
        model = task.build_model(inputs)
        task.compile(model, inputs)
        start = time.perf_counter()
        task.fit(model, inputs, [])
        seconds = time.perf_counter() - start
        m = task.evaluate(model, inputs)
        print(recipe_name, spec, {k: round(v, 4) for k, v in m.items()}, f"{seconds:.0f} s", flush=True)
        (lite_aucs if lite else aucs)[spec] = m["test_auc"]
        if spec == (lite0_losses[0] if lite else losses[0]):
            pairs[lite] = class_pair_aucs(task, model)
        rows.append([("Lite0 " if lite else "small CNN ") + spec + (f" (head AUC {m['test_head_auc']:.3f})" if "test_head_auc" in m else ""), f"{m['val_auc']:.3f}", f"{m['test_auc']:.3f}", f"{m['test_eer']:.3f}", f"{m['test_accuracy']:.3f}", f"{m['test_one_shot_accuracy']:.3f}", f"{seconds:.0f}"])
    if keep_previous:
        rows[len(losses):len(losses)] = previous_cnn_rows(losses)
    recipe = load_recipe("faces_fashion_mnist")
    unseen = ", ".join(recipe["faces"]["unseen_classes"])
    verdicts = [f"Small CNN: {verdict(aucs)}"] if aucs else []
    verdicts += [f"Lite0: {verdict(lite_aucs)}"] if lite_aucs else []
    confusions = [f"{'Lite0' if lite else 'small CNN'}, {(lite0_losses if lite else losses)[0]}: {'; '.join(p)}" for lite, p in pairs.items()]
    return (
        f"### One-shot on unseen classes (Fashion-MNIST; trained on the other 5 classes, {steps} steps of P x K = "
        f"{recipe['faces']['p']} x {recipe['faces']['k']})\n\n"
        f"Unseen classes: {unseen}. AUC/EER over {recipe['faces']['max_pairs']:,} balanced pairs of the test images of those classes; "
        "'accuracy at threshold' uses the threshold chosen on validation pairs of the training classes; one-shot = enrol 1 image "
        "per unseen class, identify all the others (mean of 5 draws). Encoders: the small CNN of `faces_fashion_mnist` "
        "(widths 16/32/64, 28 px grey) and the ImageNet EfficientNet-Lite0 trunk of `faces_fashion_mnist_lite0` (see its "
        "description for the options and how they were chosen).\n\n"
        + table(["encoder, loss", "val AUC (seen)", "test AUC (unseen)", "test EER", "accuracy at threshold", "one-shot identification", "train s"], rows)
        + "\n\nA teaching example, not a face benchmark (the unseen-class AUC goal of this proxy is retired: real faces use "
        "dlib's pretrained encoder, see 'Faces: the pretrained encoder and alignment against dlib'). " + " ".join(verdicts)
        + "\n\nWhere the unseen classes are confused (AUC of same-class pairs against the pairs of two classes): "
        + " | ".join(confusions) + ". Classes whose differences no training class taught "
        "(two kinds of footwear, two long garments) stay close together.\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encodings", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--losses", nargs="+", default=[
        "triplet_semi_hard", "triplet_batch_hard", "triplet_batch_hard:euclidean", "triplet_all", "triplet_random", "binary"])
    ap.add_argument("--lite0-losses", nargs="*", default=["triplet_semi_hard", "triplet_random"])
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--skip-gallery", action="store_true", help="keep the gallery subsection of the previous results file")
    ap.add_argument("--keep-previous-rows", action="store_true", help="add the previous run's small-CNN rows of losses not rerun")
    args = ap.parse_args()
    parts = [previous_gallery_section() if args.skip_gallery else gallery_benchmark(args.encodings)]
    if not args.skip_training:
        parts.append(one_shot_benchmark(args.losses, args.steps, args.epochs, args.lite0_losses, args.keep_previous_rows))
    command = "python benchmarks/faces.py " + " ".join(sys.argv[1:])
    write_section("faces", "Faces: gallery search and one-shot verification", command.strip(), "\n".join(parts))


if __name__ == "__main__":
    main()
