"""The machine's limit: TensorFlow matmul peak in float32 and bfloat16 (GFLOP/s).

    .venv/bin/python benchmarks/peak.py          # ~30 s on 2 cores

A square ``n x n`` matmul costs ``2 n^3`` FLOPs (one multiply and one add per
multiply-accumulate). ``matmul_gflops`` is imported by the training
benchmarks so that every efficiency ratio divides by a peak measured in the
SAME run, interleaved with the training steps (the machine is shared: absolute
figures drift with the load, same-run ratios much less).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tensorflow as tf  # noqa: E402

from benchmarks.machine import table, write_section  # noqa: E402

_FNS: dict = {}


def _matmul(dtype: str, n: int):
    """A traced ``A @ B`` on fixed random operands, returning one scalar (no large copy back)."""
    key = (dtype, n)
    if key not in _FNS:
        a = tf.cast(tf.random.stateless_normal([n, n], seed=[1, 2]), dtype)
        b = tf.cast(tf.random.stateless_normal([n, n], seed=[3, 4]), dtype)
        fn = tf.function(lambda: tf.cast(tf.matmul(a, b)[0, 0], tf.float32))
        fn().numpy()  # trace and warm up
        _FNS[key] = fn
    return _FNS[key]


def matmul_gflops(dtype: str = "float32", n: int = 2048, reps: int = 3) -> float:
    """Median GFLOP/s of ``reps`` timed ``n x n`` matmuls in ``dtype`` (float32 or bfloat16)."""
    fn = _matmul(dtype, n)
    rates = []
    for _ in range(reps):
        start = time.perf_counter()
        fn().numpy()
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def load_note() -> str:
    """The 1-minute load average against the core count (how shared the machine was)."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def main() -> int:
    rounds = {"float32": [], "bfloat16": []}
    for _ in range(5):  # interleaved rounds
        for dtype in rounds:
            rounds[dtype].append(matmul_gflops(dtype))
    f32, bf16 = (statistics.median(v) for v in rounds.values())
    rows = [
        ["float32 matmul 2048^3", f"{f32:.1f}", f"{min(rounds['float32']):.1f}-{max(rounds['float32']):.1f}", "1.00"],
        ["bfloat16 matmul 2048^3", f"{bf16:.1f}", f"{min(rounds['bfloat16']):.1f}-{max(rounds['bfloat16']):.1f}", f"{bf16 / f32:.2f}"],
    ]
    body = (table(["what", "GFLOP/s (median of 5 rounds)", "range", "ratio to float32 (same run)"], rows)
            + f"\n\nMeasured under {load_note()} (shared machine: the absolute GFLOP/s are a share of the cores, "
            "the ratio is the comparable figure). Every training benchmark measures these peaks again in its own run.")
    write_section("peak", "Machine limit: matmul peak (float32, bfloat16)", ".venv/bin/python benchmarks/peak.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
