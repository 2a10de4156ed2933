"""1x1 bottleneck: does the measured time drop as much as the multiply count?

    .venv/bin/python benchmarks/one_by_one.py            # ~1 minute on 2 cores

The notes' Inception example on a 28x28x192 volume: a 5x5 conv to 32 channels
(120,422,400 multiplies per example) against a 1x1 conv to 16 channels then
the same 5x5 conv (12,443,648): 9.68x fewer multiplies. Both models run
forward on the same float batch, compiled with ``tf.function``, in interleaved
rounds; the fastest round of each is kept (the machine is shared, the fastest
round is the least disturbed). Goal: the time ratio within 30% of the
multiply ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.machine import table, write_section  # noqa: E402
from models.one_by_one import EXAMPLE_SHAPE, bottleneck_conv_model, cost_example, direct_conv_model  # noqa: E402


def time_rounds(fns: dict, x, rounds: int, reps: int) -> dict[str, float]:
    """Best seconds per call of each function, measured in interleaved rounds."""
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fn(x).numpy()  # trace and warm up
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(reps):
                out = fn(x)
            out.numpy()
            best[name] = min(best[name], (time.perf_counter() - start) / reps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    x = tf.constant(np.random.default_rng(0).normal(size=(args.batch, *EXAMPLE_SHAPE)).astype(np.float32))
    models = {"direct": direct_conv_model(), "bottleneck": bottleneck_conv_model()}
    fns = {name: tf.function(lambda t, m=m: m(t, training=False)) for name, m in models.items()}
    best = time_rounds(fns, x, args.rounds, args.reps)
    cost = cost_example()
    time_ratio = best["direct"] / best["bottleneck"]
    closeness = time_ratio / cost["ratio"]
    rows = [
        ["5x5 conv, 32 filters", f"{cost['direct']:,}", f"{best['direct'] * 1e3 / args.batch:.3f}",
         f"{cost['direct'] * args.batch / best['direct'] / 1e9:.1f}"],
        ["1x1 conv to 16, then 5x5 conv, 32 filters", f"{cost['bottleneck']:,}",
         f"{best['bottleneck'] * 1e3 / args.batch:.3f}",
         f"{cost['bottleneck'] * args.batch / best['bottleneck'] / 1e9:.1f}"],
    ]
    verdict = "met" if 0.7 <= closeness <= 1.3 else "NOT met"
    body = "\n\n".join([
        f"Input 28x28x192, batch {args.batch}, forward pass (tf.function), best of {args.rounds} interleaved "
        f"rounds of {args.reps} calls.",
        table(["model", "multiplies / example", "ms / example", "G multiply-adds / s"], rows),
        f"Multiply ratio **{cost['ratio']:.2f}x**, measured time ratio **{time_ratio:.2f}x** "
        f"(time ratio / multiply ratio = {closeness:.2f}; goal within 30%: {verdict}).",
    ])
    write_section("one_by_one", "1x1 convolution bottleneck: multiplies vs time",
                  "python benchmarks/one_by_one.py", body)


if __name__ == "__main__":
    main()
