"""Hostile-user probes for the reliability matrix (``benchmarks/reliability.py`` calls ``run``).

Each probe gives one row: what was tried, what held (refused in one line,
counted, or working), and for the bomb and size cases the peak memory the
probe needed above its set-up (the ``ru_maxrss`` high-water mark of a fresh
child process, measured before and after the probe). The same probes are
assertions in ``tests/test_reliability_{decode_guard,figures,recipe_limits,
gallery_files,folder_inputs}.py``; the tracking-outage rows run the tests
of ``tests/test_tracking_{outage,resilience}.py`` (a real ``mlflow server``
killed mid-run, queues synced from another folder, a replay cut half-way, a
lost store) and report each one's result and time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = textwrap.dedent(f"""
    import json, resource, sys, time
    sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
    def rss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
""")

PEAK_PROBES = {
    "serving_bytes, guarded": ("a 20000x20000 RGB PNG (1.2 MB, all there) sent to a 3-channel export", """
        import keras, models, tensorflow as tf
        from pipelines.decode import decode_image
        from serving.export import export_classifier
        from serving.loader import load_export, predict_bytes
        from reliability_faults import encode, real_images, real_png_bomb
        path = export_classifier(models.build("lenet5", (28, 28, 3), 10), sys.argv[1], "m", list("0123456789"), decode=decode_image)
        served = load_export(path); predict_bytes(served, [encode(real_images(1, 28)[0][0])])
        bomb = real_png_bomb(20000, 20000, grey=False)
        base = rss(); start = time.perf_counter()
        try:
            predict_bytes(served, [bomb]); result = "DECODED"
        except tf.errors.InvalidArgumentError as err:
            import re
            result = "refused in the graph: " + re.search(r"image header claims more than \\d+ pixels", err.message)[0]
    """),
    "same bomb, unguarded tf.io.decode_image": ("the same bytes through tf.io.decode_image (what exports did before)", """
        import tensorflow as tf
        from reliability_faults import real_png_bomb
        bomb = real_png_bomb(20000, 20000, grey=False)
        base = rss(); start = time.perf_counter()
        result = "decoded " + str(tf.io.decode_image(bomb, channels=3, expand_animations=False).shape)
    """),
    "tf.data (TFRecord/file bytes)": ("the same bomb in a tf.data decode map (64 Mpx to 2^31 px range)", """
        import tensorflow as tf
        from pipelines.decode import decode_image
        from reliability_faults import real_png_bomb
        bomb = real_png_bomb(20000, 20000, grey=False)
        ds = tf.data.Dataset.from_tensors(bomb).map(lambda d: decode_image(d, 3, (28, 28))).ignore_errors()
        base = rss(); start = time.perf_counter()
        result = f"{sum(1 for _ in ds)} images out (bomb dropped before decoding)"
    """),
    "Pillow (faces, style): 200 Mpx": ("a 20000x10000 grey PNG to the faces loader (Pillow's DecompressionBombError range)", """
        from pipelines.decode import ImageTooLarge
        from pipelines.face_crops import load_rgb
        from reliability_faults import real_png_bomb
        bomb = real_png_bomb(20000, 10000)
        base = rss(); start = time.perf_counter()
        try:
            load_rgb(bomb); result = "DECODED"
        except ImageTooLarge as err:
            result = "ImageTooLarge, one line"
    """),
    "Pillow: 81 Mpx (over 64 Mpx, under Pillow's own 179 Mpx)": ("a 9000x9000 PNG as the style-transfer content image", """
        from pipelines.decode import ImageTooLarge
        from tasks.workflows.style_transfer import load_image
        from tasks.core.errors import UserError
        from reliability_faults import real_png_bomb
        open(sys.argv[1] + "/mid.png", "wb").write(real_png_bomb(9000, 9000))
        base = rss(); start = time.perf_counter()
        try:
            load_image(sys.argv[1] + "/mid.png"); result = "DECODED"
        except UserError as err:
            result = "one error line: ..." + str(err)[str(err).index(" is "):][:45] + "..."
    """),
    "faces on a 25 Mpx photo": ("the astronaut photo enlarged to 5000x5000, every face found and cut (face_crops)", """
        import cv2, skimage.data
        from pipelines.face_crops import face_crops
        photo = cv2.resize(skimage.data.astronaut(), (5000, 5000), interpolation=cv2.INTER_CUBIC)
        face_crops(skimage.data.astronaut())  # MTCNN loaded and traced: the peak below is the photo's own
        base = rss(); start = time.perf_counter()
        crops, faces = face_crops(photo); result = f"{len(faces)} face(s), searched on a 2048 px copy"
    """),
    "same photo, unguarded: MTCNN at full size": ("the same photo searched at 5000 px (what face_crops did before)", """
        import cv2, skimage.data
        import pipelines.face_crops as fc
        fc.MAX_DETECT_SIDE = 10 ** 9
        photo = cv2.resize(skimage.data.astronaut(), (5000, 5000), interpolation=cv2.INTER_CUBIC)
        fc.face_crops(skimage.data.astronaut())
        base = rss(); start = time.perf_counter()
        crops, faces = fc.face_crops(photo); result = f"{len(faces)} face(s), searched at full size"
    """),
    "confusion matrix: 600 classes, one 5000-char label": ("3000 predictions over 600 classes rendered and saved", """
        import numpy as np
        from PIL import Image
        from tasks.figures import plots
        rng = np.random.default_rng(0); y = rng.integers(0, 600, 3000); p = np.where(rng.random(3000) < 0.6, y, rng.integers(0, 600, 3000))
        names = [f"label {i}" for i in range(600)]; names[7] = "L" * 5000
        base = rss(); start = time.perf_counter()
        out = plots.save(plots.confusion_matrix(y, p, names), sys.argv[1] + "/cm.png")
        result = "PNG %dx%d px" % Image.open(out).size
    """),
    "YAML alias bomb, 9 levels (9^9 leaves) in model.options": ("a 9-line recipe fragment expanding to 387 million leaves", """
        from tasks.core.errors import UserError
        from tasks.core.recipe import load_recipe
        lines = ["l0: &l0 [" + ", ".join(["lol"] * 9) + "]"] + [f"l{i}: &l{i} [" + ", ".join([f"*l{i-1}"] * 9) + "]" for i in range(1, 9)]
        open(sys.argv[1] + "/bomb.yaml", "w").write("model:\\n  options:\\n" + "".join("    " + l + "\\n" for l in lines))
        base = rss(); start = time.perf_counter()
        try:
            load_recipe(sys.argv[1] + "/bomb.yaml"); result = "ACCEPTED"
        except UserError as err:
            result = f"one line of {len(str(err))} chars"
    """),
}


def peak_probe(name: str, tmp: Path) -> tuple[str, float, float]:
    """Run one peak probe in a fresh process: (result, seconds, peak MB above its set-up)."""
    code = PRELUDE + textwrap.dedent(PEAK_PROBES[name][1]) + (
        "\nprint(json.dumps({'result': result, 's': time.perf_counter() - start, 'mb': rss() - base}))\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NO_ALBUMENTATIONS_UPDATE": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode:
        return f"FAILED: {out.stderr.strip().splitlines()[-1][:80]}", 0.0, 0.0
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got["result"], got["s"], got["mb"]


def _cli(*args: str) -> tuple[int, list[str]]:
    """``convforge ARGS`` in this process: (exit code, stderr lines)."""
    from tasks.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(args))
    return code, err.getvalue().strip().splitlines()


def _one_line(code: int, lines: list[str]) -> bool:
    return code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) < 400


RANGES = ["train.epochs=0", "train.epochs=-1", "train.batch_size=0", "data.val_fraction=1", "data.val_fraction=-0.1",
          "data.train_limit=0", "data.channels=7", "seed=-1", "mlflow.experiment=", "data.image_size=[5000,5000]",
          "train.learning_rate=-1", "train.learning_rate=.nan", "train.early_stopping=-1", "train.steps_per_epoch=0"]


def cli_probes(tmp: Path, row) -> None:
    """The one-line-error and it-works probes, in process."""
    import numpy as np
    from reliability_faults import encode, real_images

    ok = sum(_one_line(*_cli("train", "fashion_mnist_lenet5", "--set", o, "--workdir", str(tmp))) for o in RANGES)
    conflict = _one_line(*_cli("train", "fashion_mnist_lenet5", "--set", "train=5", "--set", "train.epochs=1"))
    row("recipe values out of range", f"{len(RANGES)} values (epochs 0/-1, batch 0, fractions, limits, channels 7, seed -1, "
        "empty experiment, 5000x5000 images, lr -1/nan, ...) + `--set train=5 --set train.epochs=1`",
        f"{ok}/{len(RANGES)} one `error:` line before anything runs; conflicting --set {'one line' if conflict else 'TRACEBACK'}", "-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    code, lines = _cli("train", "fashion_mnist_lenet5", "--set", f"data.service={{dispatcher: 'grpc://127.0.0.1:{port}'}}")
    row("unreachable data.service dispatcher", "a closed port", f"{'one line' if _one_line(code, lines) else 'NOT ONE LINE'} "
        f"in {time.perf_counter() - start:.2f} s (3 s timeout for a silent host)", "-")

    import keras
    from PIL import Image

    import models
    from pipelines.decode import decode_image
    from serving.export import export_classifier

    keras.utils.set_random_seed(0)
    export = export_classifier(models.build("lenet5", (28, 28, 1), 10), tmp / "exp", "grey", list("0123456789"), decode=decode_image)
    image = real_images(1, 28)[0][0]
    worked = 0
    for fmt in ("GIF", "BMP"):
        path = tmp / f"digit.{fmt.lower()}"
        Image.fromarray(image).save(path, fmt)
        worked += _cli("predict", str(export), str(path))[0] == 0
        worked += _cli("edges", str(path), "-o", str(tmp / "edges.png"))[0] == 0
    row("GIF and BMP on a 1-channel model", "predict and edges with a GIF and a BMP (serving_bytes inside)",
        f"{worked}/4 work", "-")
    (tmp / "tiny.png").write_bytes(encode(np.zeros((1, 1, 3), np.uint8)))
    probes = [("edges", str(tmp / "tiny.png"), "-o", str(tmp / "e.png")), ("edges", str(path), "-o", str(tmp)),
              ("edges", str(path), "-o", str(tmp / "x.txt"))]
    ok = sum(_one_line(*_cli(*p)) for p in probes)
    data = bytearray(encode(real_images(1, 64, seed=3)[0][0]))
    data[60:-20] = bytes(len(data) - 80)
    (tmp / "damaged.png").write_bytes(bytes(data))
    ok += _one_line(*_cli("predict", str(export), str(tmp / "damaged.png")))
    row("edges 1x1, -o a folder, -o x.txt; predict a damaged-body image", "4 commands", f"{ok}/4 one `error:` line", "-")


def gallery_probes(tmp: Path, row) -> None:
    import sqlite3

    import numpy as np

    from serving.gallery import Gallery

    def unit(seed):
        e = np.random.default_rng(seed).normal(size=(2, 16)).astype(np.float32)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    db = tmp / "faces.db"
    with Gallery(db) as g:
        for i in range(300):
            g.enrol(f"p{i}", unit(i), [f"{i}a", f"{i}b"], "v1", crops=[b"\x89PNG" * 200] * 2)
        g._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        owners = g.owners(["0a"])
    con = sqlite3.connect(db)
    size, root = con.execute("PRAGMA page_size").fetchone()[0], con.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'encodings_person'").fetchone()[0]
    con.close()
    raw = bytearray(db.read_bytes())
    raw[(root - 1) * size : root * size] = os.urandom(size)
    db.write_bytes(bytes(raw))
    (tmp / "empty.db").write_bytes(b"")
    ok = _one_line(*_cli("faces", "list", "--gallery", str(db))) + _one_line(*_cli("faces", "list", "--gallery", str(tmp / "empty.db")))
    names = ["x" * 100_000, "eve\nmallory", "\x1b[2J\x1b[31mroot"]
    ok += sum(_one_line(*_cli("faces", "enrol", n, "photo.jpg", "--gallery", str(tmp / "new.db"))) for n in names)
    row("face gallery files and names", "a corrupted page, a zero-byte faces.db; names of 100,000 chars, with a newline, "
        "with ANSI escapes", f"{ok}/5 one `error:` line; the same photo under a 2nd name is reported ({owners})", "0")


def folder_probes(tmp: Path, row) -> None:
    from reliability_faults import encode, real_images

    from pipelines.sources import csv_manifest, image_folder
    from pipelines.splits import load_splits

    images = real_images(8, 16)[0]
    root = tmp / "data"
    for c in ("a", "b", "empty"):
        (root / c).mkdir(parents=True)
    for i in range(8):
        (root / "ab"[i % 2] / f"{i}.png").write_bytes(encode(images[i]))
    with open(os.path.join(os.fsencode(root / "a"), b"caf\xe9.png"), "wb") as f:
        f.write(encode(images[0]))
    data = bytearray(encode(real_images(1, 64, seed=3)[0][0]))
    data[60:-20] = bytes(len(data) - 80)
    (root / "b" / "damaged.png").write_bytes(bytes(data))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        files = image_folder(root)
        splits = load_splits(f"folder:{root}", 0, 0.0, 0.0, image_size=(16, 16))
    seen = sum(1 for _ in splits.train)
    (root / "m.csv").write_bytes(b"\xef\xbb\xbfpath,label\r\n" + b"".join(f"a/{i}.png,a\r\n".encode() for i in (0, 2)))
    warned = "'empty' stays a model output" in err.getvalue() and "caf\\udce9.png" in err.getvalue()
    row("folder/CSV dataset: non-UTF-8 file name, damaged body, empty class, UTF-8-BOM CSV",
        "8 good images, 1 Latin-1 file name, 1 image damaged after a valid header, 1 empty class folder; an Excel CSV",
        f"name skipped+counted {dict(files.skipped)} and named; {seen}/8 decoded, damaged one counted in a warning line; "
        f"empty class {'warned' if warned else 'NOT WARNED'}; BOM CSV read ({len(csv_manifest(root / 'm.csv').paths)} rows)", "0")


def export_1d_probe(tmp: Path, row) -> None:
    import mlflow

    from tasks.core.recipe import load_recipe
    from tasks.core.trainer import train

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'rows.db'}"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    result = train(load_recipe({"data": {"dataset": "digits", "derive": "rows", "train_limit": 300, "test_limit": 60},
                                "model": {"name": "convnet1d", "options": {"filters": [8, 16]}}, "train": {"epochs": 1},
                                "export": {"name": "rows"}}), tmp)
    image = tmp / "digit.png"
    from reliability_faults import encode, real_images

    image.write_bytes(encode(real_images(1, 16)[0][0]))
    predict = _one_line(*_cli("predict", str(result.export_path), str(image)))
    evaluate = _cli("evaluate", str(result.export_path))[0] == 0
    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    row("1D export through the image commands", "`predict` and `evaluate EXPORT` on a 1D conv net export",
        f"predict: {'one line (takes tensors)' if predict else 'NOT ONE LINE'}; evaluate: {'works' if evaluate else 'FAILS'}", "0")


TRACKING_TESTS = {
    "test_server_killed_mid_transfer_run_then_sync_uploads_the_nested_stage_runs":
        ("MLflow server killed mid transfer run", "a real `mlflow server` killed after stage 1's first epoch; restarted; "
         "sync-runs twice"),
    "test_sync_runs_from_another_folder_finds_the_queued_files":
        ("sync-runs from another folder", "a queue written in one folder, `sync-runs --workdir` run from another"),
    "test_failed_replay_is_resumed_and_never_marks_the_run_failed":
        ("replay cut half-way", "the server fails during sync-runs; a second sync"),
    "test_lost_store_after_a_crash_starts_a_new_run_and_still_resumes_training":
        ("resume after the tracking store changed", "kill -9, mlflow.db deleted, the same command rerun"),
}


def tracking_probes(tmp: Path, row) -> None:
    """An unreachable server at start, in process; the outage tests as probes, in one pytest run."""
    import xml.etree.ElementTree as ET

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = url
    try:
        start = time.perf_counter()
        code, lines = _cli("train", "fashion_mnist_lenet5", "--workdir", str(tmp), "--set", "train.epochs=1")
        seconds = time.perf_counter() - start
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI") if saved is None else os.environ.update(MLFLOW_TRACKING_URI=saved)
    left = any((tmp / "runs").glob("*")) if (tmp / "runs").exists() else False
    row("MLflow server unreachable at start", "`train` with MLFLOW_TRACKING_URI on a closed port (was: 4 min 13 s of "
        "retries, then a traceback)", f"{'one `error:` line' if _one_line(code, lines) else 'NOT ONE LINE'} in "
        f"{seconds:.1f} s; {'state left behind' if left else 'nothing left behind'}", "-")
    report = tmp / "tracking.xml"
    tests = [f"tests/test_tracking_{'outage' if 'killed' in name else 'resilience'}.py::{name}" for name in TRACKING_TESTS]
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *tests],
                   cwd=ROOT, capture_output=True, text=True)
    cases = {c.get("name"): c for c in ET.parse(report).getroot().iter("testcase")} if report.is_file() else {}
    for name, (fault, tried) in TRACKING_TESTS.items():
        case = cases.get(name)
        held = case is not None and not any(case.find(k) is not None for k in ("failure", "error", "skipped"))
        seconds = f" ({float(case.get('time')):.0f} s)" if case is not None else ""
        row(fault, tried, f"its test passed{seconds}" if held else f"FAILED: its test failed{seconds}", "0")


def run(tmp: Path, row) -> None:
    """Every probe; ``row(fault, tried, survived, lost)`` adds a line to the matrix."""
    for name in PEAK_PROBES:
        sub = tmp / f"peak{list(PEAK_PROBES).index(name)}"
        sub.mkdir()
        result, seconds, mb = peak_probe(name, sub)
        row(f"size probe: {name}", PEAK_PROBES[name][0], f"{result} in {seconds:.2f} s; peak +{mb:,.0f} MB above set-up", "-")
    for step in (cli_probes, gallery_probes, export_1d_probe, folder_probes, tracking_probes):
        sub = tmp / step.__name__
        sub.mkdir()
        step(sub, row)
