"""Exported SavedModel latency against a direct Keras call, batch 1 and batch 32.

    .venv/bin/python benchmarks/export_latency.py        # ~1-2 minutes on 2 cores

Models: LeNet-5 (28x28x1, the demo) and a small ResNet-18 (32x32x1, width
0.5), untrained, exported with ``serving.export.export_classifier`` and loaded
with ``tf.saved_model.load``. Compared per call, on the same uint8 batch:

- ``keras``: ``model(x, training=False)`` inside ``tf.function`` (the fastest
  direct Keras call, the reference);
- ``serving_default``: the exported signature (resize check + model + argmax);
- ``keras predict_on_batch``: for scale (what most scripts call).

Calls alternate in rounds of ``--reps`` calls. The machine is shared, so the
goal is judged on the fastest round of each (the least disturbed one, as in
``one_by_one.py``); the median of the per-round ratios is shown next to it.
Goal (issue 10): signature / keras <= 1.15 at batch 1 and 32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import models  # noqa: E402
from benchmarks.machine import table, write_section  # noqa: E402
from benchmarks.peak import load_note  # noqa: E402
from serving.export import export_classifier  # noqa: E402

CASES = [("lenet5", (28, 28, 1), {}), ("resnet18", (32, 32, 1), {"small": True, "width": 0.5})]


def per_call(fn, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def measure(name: str, shape, options: dict, batch: int, rounds: int, reps: int, root: Path) -> dict[str, float]:
    model = models.build(name, shape, 10, **options)
    path = export_classifier(model, root, f"{name}_{batch}", [str(i) for i in range(10)])
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    x = tf.constant(np.random.default_rng(0).integers(0, 256, (batch, *shape), dtype=np.uint8))
    keras_fn = tf.function(lambda images: model(images, training=False))
    fns = {
        "keras": lambda: keras_fn(x).numpy(),
        "serving_default": lambda: served(images=x)["probabilities"].numpy(),
        "keras predict_on_batch": lambda: model.predict_on_batch(x),
    }
    np.testing.assert_allclose(fns["serving_default"](), fns["keras"](), atol=1e-5)  # same function
    for fn in fns.values():
        per_call(fn, 3)  # warm up
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(per_call(fn, reps))
    ratios = [s / k for s, k in zip(times["serving_default"], times["keras"], strict=True)]
    out = {k: min(v) * 1e3 for k, v in times.items()}
    out["ratio"] = out["serving_default"] / out["keras"]
    out["median ratio"] = statistics.median(ratios)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape, options in CASES:
            for batch in (1, 32):
                m = measure(name, shape, options, batch, args.rounds, args.reps, Path(tmp))
                goal = "met" if m["ratio"] <= 1.15 else "NOT met"
                rows.append([name, batch, f"{m['keras']:.2f}", f"{m['serving_default']:.2f}", f"{m['keras predict_on_batch']:.2f}",
                             f"{m['ratio']:.2f}", f"{m['median ratio']:.2f}", f"<= 1.15: {goal}"])
                print(rows[-1], flush=True)
    body = (table(["model", "batch", "keras tf.function ms", "serving_default ms", "keras predict_on_batch ms",
                   "signature / keras (fastest rounds)", "median of per-round ratios", "goal"], rows)
            + f"\n\nms per call in the fastest of {args.rounds} interleaved rounds of {args.reps} calls, under {load_note()}.")
    write_section("export_latency", "Export latency: SavedModel signature against a direct Keras call",
                  ".venv/bin/python benchmarks/export_latency.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
