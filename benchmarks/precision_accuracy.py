"""Accuracy under mixed_bfloat16 against float32 on the Fashion-MNIST recipe (LeNet-5).

    .venv/bin/python benchmarks/precision_accuracy.py      # ~6-10 minutes on 2 cores (4 short runs)

The bundled ``fashion_mnist_lenet5`` recipe through ``convforge train``
(``tasks.core.trainer.train``), on a FIXED 10,000-image training slice
(``data.train_limit=10000``, the seeded split) for 3 epochs (cosine schedule,
mirror augmentation, batch 64), tested on the full 10,000-image test set;
export off. Each precision runs with seeds 1 and 2, alternating, so the seed
spread shows the noise the precision difference is compared with. "Equal
within noise": |mean bf16 - mean fp32| <= the largest seed-to-seed difference
of either precision (or 0.5 points, whichever is larger).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import table, write_section  # noqa: E402
from benchmarks.peak import load_note  # noqa: E402
from tasks.core.recipe import load_recipe  # noqa: E402
from tasks.core.trainer import train  # noqa: E402

OVERRIDES = ["data.train_limit=10000", "train.epochs=3", "export.enabled=false"]
PRECISIONS = ("float32", "mixed_bfloat16")
SEEDS = (1, 2)


def main() -> int:
    acc = {p: [] for p in PRECISIONS}
    secs = {p: [] for p in PRECISIONS}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        for seed in SEEDS:
            for precision in PRECISIONS:
                recipe = load_recipe("fashion_mnist_lenet5", [*OVERRIDES, f"seed={seed}", f"train.precision={precision}"])
                start = time.perf_counter()
                result = train(recipe, tmp)
                secs[precision].append(time.perf_counter() - start)
                acc[precision].append(result.metrics["test_accuracy"])
                print(precision, seed, acc[precision][-1], f"{secs[precision][-1]:.0f}s", flush=True)
    mean = {p: statistics.mean(v) for p, v in acc.items()}
    noise = max(0.005, *(max(v) - min(v) for v in acc.values()))
    diff = mean["mixed_bfloat16"] - mean["float32"]
    rows = [[p, ", ".join(f"{a:.4f}" for a in acc[p]), f"{mean[p]:.4f}", f"{statistics.median(secs[p]):.0f}"] for p in PRECISIONS]
    verdict = "equal within noise" if abs(diff) <= noise else "NOT equal within noise"
    body = (table(["precision", f"test accuracy (seeds {', '.join(map(str, SEEDS))})", "mean", "run s (median)"], rows)
            + f"\n\nbf16 - fp32 = {diff * 100:+.2f} points; noise bound {noise * 100:.2f} points: **{verdict}**. "
            "Fixed 10k training slice, 3 epochs, full 10k test set (the recipe's other settings unchanged). "
            f"Run times are whole `convforge train` runs under {load_note()}; they include fixed costs "
            "and are not a speed comparison (see training_efficiency for bfloat16 speed).")
    write_section("precision_accuracy", "Mixed precision: Fashion-MNIST accuracy, float32 against mixed_bfloat16",
                  ".venv/bin/python benchmarks/precision_accuracy.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
