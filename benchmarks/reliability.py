"""Reliability fault matrix: what was tried (faults, bad inputs, counts), what survived, what was lost.

Runs every fault quickly on real data (scikit-learn digits, tiny LeNet-5s) in
one process plus a few real subprocesses (kill -9), then the hostile-user
probes of ``benchmarks/reliability_probes.py`` (decompression bombs in every
decode path with their peak memory, oversized figures, recipe alias bombs and
ranges, gallery files, folder datasets, 1D exports), and writes
``benchmarks/results/reliability.md``. Bounded: a few minutes on 2 cores
(most of it is TensorFlow start-up in the kill -9 subprocesses).

    .venv/bin/python benchmarks/reliability.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from reliability_faults import BAD_IMAGES, BILLION_LAUGHS, encode, png_bomb, real_images, write_bad_images  # noqa: E402

from benchmarks import reliability_probes as probes  # noqa: E402
from benchmarks.machine import table, write_section  # noqa: E402

ROWS: list[list] = []
ENV = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def row(fault: str, tried: str, survived: str, lost: str) -> None:
    ROWS.append([fault, tried, survived, lost])
    print(" | ".join(ROWS[-1]), flush=True)


def bad_data(tmp: Path) -> None:
    """Every reader gets 4 good images and one file of each bad kind (plus malformed lines)."""
    from pipelines.annotations import detection_dataset, read_coco, read_voc, read_yolo
    from pipelines.identities import identity_dataset, identity_folder
    from pipelines.sources import csv_manifest
    from pipelines.splits import load_splits
    from pipelines.tfrecord import files_items, read_shards, write_shards

    images = real_images(4, 16)[0]
    kinds = len(BAD_IMAGES)

    def good(folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(images):
            (folder / f"g{i}.png").write_bytes(encode(im))
        return sorted(folder.glob("g*.png"))

    results = {}
    for person in ("p0", "p1"):
        good(tmp / "folder" / person)
    write_bad_images(tmp / "folder" / "p0")
    results["folder"] = (load_splits(f"folder:{tmp / 'folder'}", 0, 0.0, 0.0).train, load_splits(
        f"folder:{tmp / 'folder'}", 0, 0.0, 0.0).skipped, 8)
    people = identity_folder(tmp / "folder")
    results["identities"] = (identity_dataset(people, image_size=(16, 16)), people.skipped, 8)
    g = good(tmp / "csv" / "x")
    bad = write_bad_images(tmp / "csv" / "x")
    lines = ["path,label"] + [f"x/{p.name},a" for p in g + list(bad.values())] + [",", "x/g0.png", "../../etc/passwd,a"]
    (tmp / "csv" / "m.csv").write_text("\n".join(lines) + "\n")
    results["CSV"] = (load_splits(f"csv:{tmp / 'csv' / 'm.csv'}", 0, 0.0, 0.0).train, csv_manifest(tmp / "csv" / "m.csv").skipped, 4)
    paths = [str(p) for p in g + list(bad.values())]
    write_shards(files_items(paths, [0] * len(paths)), tmp / "tfr", 2, ["a"], channels=3)
    results["TFRecord"] = (read_shards(tmp / "tfr").dataset, Counter(json.loads((tmp / "tfr" / "dataset.json").read_text())["skipped"]), 4)
    g = good(tmp / "voc" / "JPEGImages")
    bad = write_bad_images(tmp / "voc" / "JPEGImages")
    (tmp / "voc" / "Annotations").mkdir()
    for p in g + list(bad.values()):
        (tmp / "voc" / "Annotations" / f"{p.stem}.xml").write_text(
            f"<annotation><filename>{p.name}</filename><size><width>16</width><height>16</height></size><object><name>d"
            "</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    (tmp / "voc" / "Annotations" / "laughs.xml").write_text(BILLION_LAUGHS)
    (tmp / "voc" / "Annotations" / "cut.xml").write_text("<annotation><filename>g0.png</filename><si")
    voc = read_voc(tmp / "voc")
    results["VOC XML"] = (detection_dataset(voc), voc.skipped, 4)
    g = good(tmp / "coco" / "images")
    bad = write_bad_images(tmp / "coco" / "images")
    ims = [{"id": i, "file_name": p.name, "width": 16, "height": 16} for i, p in enumerate(g + list(bad.values()))]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 8, 8]} for i in range(len(ims))]
    anns += [{"id": 99, "image_id": 0, "category_id": 1, "bbox": "x"}, {"image_id": 77}]
    (tmp / "coco" / "a.json").write_text(json.dumps({"images": ims, "annotations": anns, "categories": [{"id": 1, "name": "d"}]}))
    coco = read_coco(tmp / "coco" / "a.json")
    results["COCO JSON"] = (detection_dataset(coco), coco.skipped, 4)
    g = good(tmp / "yolo" / "images")
    bad = write_bad_images(tmp / "yolo" / "images")
    (tmp / "yolo" / "labels").mkdir()
    for p in g + list(bad.values()):
        (tmp / "yolo" / "labels" / f"{p.stem}.txt").write_text("0 0.5 0.5 0.4 0.4\nx y\n0 0.5 0.5 9 9\n")
    yolo = read_yolo(tmp / "yolo", ["d"])
    results["YOLO txt"] = (detection_dataset(yolo), yolo.skipped, 4)
    for reader, (ds, skipped, expected) in results.items():
        start = time.perf_counter()
        seen = sum(1 for _ in ds)
        image_faults = sum(skipped[r] for _, r in BAD_IMAGES.values())
        other = {k: v for k, v in skipped.items() if k not in {r for _, r in BAD_IMAGES.values()}}
        row(f"bad images: {reader}", f"{expected} good + {kinds} bad (zero-byte, truncated, wrong format, corrupt header, "
            f"100000x100000 PNG bomb){'; malformed lines/entries: ' + str(dict(other)) if other else ''}",
            f"{image_faults}/{kinds} bad skipped and counted; full pass {seen} images in {time.perf_counter() - start:.2f} s",
            f"{expected - seen} good images")


def graph_bomb() -> None:
    from pipelines.decode import decode_image

    start = time.perf_counter()
    ds = tf.data.Dataset.from_tensor_slices([png_bomb(), png_bomb(60_000, 60_000), encode(real_images(1, 16)[0][0])])
    n = sum(1 for _ in ds.map(lambda d: decode_image(d, 3, (8, 8))).ignore_errors())
    row("decompression bomb inside a TFRecord/serving byte stream", "2 bomb headers + 1 good image decoded in tf.data",
        f"both bombs refused by the in-graph header check before any pixel buffer; {n} image out "
        f"({time.perf_counter() - start:.1f} s with graph tracing)", "0")


def billion_laughs(tmp: Path) -> None:
    from pipelines.annotations import read_voc

    (tmp / "bl" / "Annotations").mkdir(parents=True)
    (tmp / "bl" / "Annotations" / "a.xml").write_text(BILLION_LAUGHS)
    start = time.perf_counter()
    ann = read_voc(tmp / "bl")
    row("XML entity expansion (billion laughs, 10^9 'lol')", "1 VOC file",
        f"refused by expat's amplification limit in {1000 * (time.perf_counter() - start):.0f} ms; skipped {dict(ann.skipped)}", "n/a")


def unsafe_models(tmp: Path) -> None:
    import keras

    import models
    from models.safe_load import UnsafeModelError, load_keras

    models.build("lenet5", (28, 28, 1), 10).save(tmp / "plain.keras")
    inp = keras.Input((4,))
    keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp)).save(tmp / "lambda.keras")
    models.build("lenet5", (28, 28, 1), 10).save(tmp / "legacy.h5")
    (tmp / "junk.keras").write_bytes(os.urandom(512))
    refused = 0
    for name in ("lambda.keras", "legacy.h5", "junk.keras"):
        try:
            load_keras(tmp / name)
        except (UnsafeModelError, ValueError):
            refused += 1
    load_keras(tmp / "plain.keras")
    row("untrusted model files", "Lambda layer .keras, legacy .h5, random bytes; a plain .keras",
        f"{refused}/3 refused without running code; plain file loads (safe_mode)", "0")


def nan_loss(tmp: Path) -> None:
    import mlflow

    from tasks.core.recipe import load_recipe
    from tasks.core.trainer import TrainingDiverged, train

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'nan.db'}"
    recipe = load_recipe({"data": {"dataset": "digits", "image_size": [16, 16]}, "train": {"epochs": 2, "optimizer": "sgd",
                          "learning_rate": 3e38, "batch_size": 32}, "export": {"enabled": False}})
    try:
        train(recipe, tmp / "nan")
        message = "NOT STOPPED"
    except TrainingDiverged as err:
        message = str(err).split(";")[0]
    status = mlflow.search_runs(search_all_experiments=True, output_format="list")[0].info.status
    row("NaN/inf loss (lr 3e38)", "1 run", f"stopped: '{message}'; MLflow run {status}; resume state kept", "0 finished epochs")
    del os.environ["MLFLOW_TRACKING_URI"]


def killed_export(tmp: Path) -> None:
    from serving.versions import versions

    script = textwrap.dedent("""
        import sys, keras, models
        from pipelines.decode import decode_image
        from serving.export import export_classifier
        keras.utils.set_random_seed(int(sys.argv[2]))
        print(export_classifier(models.build("lenet5", (28, 28, 1), 10), sys.argv[1], "m", list("0123456789"), decode=decode_image), flush=True)
    """)
    run = lambda seed: subprocess.Popen([sys.executable, "-c", script, str(tmp / "exp"), str(seed)], cwd=ROOT, env=ENV,  # noqa: E731
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert run(1).wait(300) == 0
    proc = run(2)
    while not any((tmp / "exp" / "m").glob(".tmp-*/v")) and proc.poll() is None:
        time.sleep(0.01)
    killed = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    loaded = tf.saved_model.load(str(tmp / "exp" / "m" / "1"))
    out = loaded.signatures["serving_default"](images=tf.zeros([1, 28, 28, 1], tf.uint8))["probabilities"].shape
    procs = [run(s) for s in (3, 4, 5)]
    ok = sum(p.wait(300) == 0 for p in procs)
    row("export killed mid-write (kill -9), then 3 concurrent exporters",
        f"1 real Keras SavedModel export killed {'mid-write' if killed else '(finished first)'}; 3 processes export at once",
        f"versions {versions(tmp / 'exp' / 'm')}: no partial folder; v1 loads with tf.saved_model.load ({out}); {ok}/3 writers done",
        "0")


def gallery(tmp: Path) -> None:
    import sqlite3

    from serving.gallery import Gallery

    script = textwrap.dedent("""
        import sys, numpy as np
        from serving.gallery import Gallery
        g, w = Gallery(sys.argv[1]), int(sys.argv[2])
        for i in range(int(sys.argv[3])):
            e = np.random.default_rng(w * 1000 + i).normal(size=(3, 16)).astype(np.float32)
            g.enrol(f"w{w}-{i}", e / np.linalg.norm(e, axis=1, keepdims=True), [f"{w}-{i}-{k}" for k in range(3)], "v1")
            print(i, flush=True)
    """)
    db = tmp / "faces.db"
    Gallery(db).close()
    procs = [subprocess.Popen([sys.executable, "-c", script, str(db), str(w), "40"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for w in range(3)]
    victim = subprocess.Popen([sys.executable, "-c", script, str(db), "9", "100000"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    for _ in range(5):
        victim.stdout.readline()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    for p in procs:
        p.wait(300)
    integrity = sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0]
    persons = dict(Gallery(db).persons())
    torn = sum(n != 3 for n in persons.values())
    writers = sum(n.startswith(("w0-", "w1-", "w2-")) for n in persons)
    row("face gallery: 3 concurrent writers + 1 writer killed -9", "120 enrolments + a killed stream (3 encodings per person)",
        f"integrity_check {integrity}; {writers}/120 enrolled; {torn} half-enrolled persons", f"{120 - writers} enrolments")


def tracking_outage(tmp: Path) -> None:
    import socket

    import mlflow

    from tasks.core.tracking import PENDING_FILE, SafeLogger

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="2")
    mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
    log = SafeLogger(tmp / "spill")
    start = time.perf_counter()
    log("log_metric", "loss", 1.0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(200):
        log("log_metrics", {"loss": float(i), "accuracy": 0.5}, step=i)
    rest = time.perf_counter() - start
    mlflow.set_tracking_uri(None)
    kept = len((tmp / "spill" / PENDING_FILE).read_text().splitlines())
    row("MLflow server unreachable mid-run", "201 tracking calls after the server went away",
        f"1 warning; first failure {1000 * first:.0f} ms, then no network: 200 calls queued in {1000 * rest:.0f} ms; "
        "`convforge sync-runs` replays them (test: real `mlflow server` killed after epoch 1)", f"{201 - kept} calls")


def kill_9_training(tmp: Path) -> None:
    import mlflow

    from tasks.core.recipe import load_recipe
    from tasks.core.trainer import recipe_key

    # a checkpoint every epoch (the default writes one at most every 30 s, longer than this whole run)
    overrides = ["data.dataset=digits", "data.image_size=[16,16]", "train.epochs=6", "train.batch_size=16",
                 "train.backup_interval_s=0", "export.enabled=false"]
    args = [sys.executable, "-m", "tasks.cli.main", "train", "fashion_mnist_lenet5", "--workdir", str(tmp / "k9")]
    for o in overrides:
        args += ["--set", o]
    uri = f"sqlite:///{tmp / 'k9.db'}"
    env = {**ENV, "MLFLOW_TRACKING_URI": uri}
    state = tmp / "k9" / "runs" / recipe_key(load_recipe("fashion_mnist_lenet5", overrides))
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not any((state / "backup").glob("**/*training_metadata*")) and proc.poll() is None:
        time.sleep(0.1)
    if proc.poll() is not None:
        row("kill -9 mid-training, same command rerun", "the run ended before its first checkpoint",
            f"NOT TESTED: training finished (exit {proc.returncode}) before it could be killed", "n/a")
        return
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_id = (state / "mlflow_run_id").read_text().strip()
    client = mlflow.MlflowClient(uri)
    before = len(client.get_metric_history(run_id, "loss"))
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    steps = sorted(m.step for m in client.get_metric_history(run_id, "val_accuracy"))
    same = f"mlflow run id: {run_id}" in out.stdout
    row("kill -9 mid-training, same command rerun", f"killed after {before} of 6 epochs",
        f"resumed {'in the same MLflow run' if same else 'IN A NEW RUN'}; epochs logged {steps}; run {client.get_run(run_id).info.status}",
        f"{6 - len(set(steps))} epochs")


def main() -> None:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for step in (bad_data, graph_bomb, billion_laughs, unsafe_models, tracking_outage, nan_loss, killed_export, gallery,
                     kill_9_training):
            sub = tmp / step.__name__
            sub.mkdir()
            step(sub) if step is not graph_bomb else step()
        (tmp / "probes").mkdir()
        probes.run(tmp / "probes", row)
    tried = [r for r in ROWS if "unguarded" not in r[0]]  # those rows are reference costs, not probes
    held = sum(not any(bad in r[2] for bad in ("FAILED:", "FAILS", "NOT ", "TRACEBACK", "DECODED", "ACCEPTED", "IN A NEW RUN")) for r in tried)
    body = table(["fault", "what was tried", "what survived", "lost"], ROWS)
    body += (f"\n\nMatrix: {len(tried)} rows of faults and probes tried, {held} held. The two unguarded rows are "
             "references: the memory the in-graph decode guard saves per request, and what searching a large photo "
             "for faces on a shrunk copy saves.")
    body += (f"\n\nWhole matrix: {time.perf_counter() - start:.0f} s (load average {os.getloadavg()[0]:.1f} at the end). Tests: `tests/test_reliability_*.py` (the same faults "
             "as assertions, plus hypothesis fuzzing of VOC/COCO/YOLO/CSV/recipes/image bytes/model files through the "
             "readers and the CLI, a real `mlflow server` killed mid-run, and kill -9 inside a transfer schedule).\n")
    write_section("reliability", "Reliability: faults tried, what survived, nothing lost",
                  ".venv/bin/python benchmarks/reliability.py", body)


if __name__ == "__main__":
    main()
