"""Multi-worker training speed relative to one worker (MultiWorkerMirroredStrategy on 127.0.0.1).

Runs the same recipe (LeNet-5 on a Fashion-MNIST slice, global batch 64)
through ``convforge train --distributed`` as a 1-worker cluster and as a
2-worker cluster on this machine, side by side, and reports training
throughput (examples per second of the last epoch's training loop, after
tf.function tracing, read from each worker's epoch lines) and the ratio to
one worker. On one 2-core machine the two workers share the cores and pay for gRPC all-reduces on every step, so expect
little or no gain here: the point of the run is that the path works; real gains
need one worker per machine (or per GPU).

    .venv/bin/python benchmarks/distributed.py [--limit 4096] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EPOCH = re.compile(r"worker \d epoch (\d+)/(\d+) \(([\d.]+) s\)")
TIMEOUT_S = 600


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_cluster(workers: int, threads: int, limit: int, epochs: int) -> tuple[float, float]:
    """(global examples per second in the last epoch's training loop, its seconds on the slowest worker)."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(workers)]}
    args = ["fashion_mnist_lenet5", "--distributed", "--set", f"data.train_limit={limit}", "--set", f"train.epochs={epochs}",
            "--set", "train.batch_size=64", "--set", "data.augment=[]", "--set", "export.enabled=false"]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(ROOT), MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db", TF_CPP_MIN_LOG_LEVEL="2",
                   TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1")
        procs = [subprocess.Popen([sys.executable, "-m", "tasks.cli.main", "train", *args], cwd=tmp, text=True,
                                  env=dict(env, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(workers)]
        try:
            outs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
        finally:
            for p in procs:
                p.kill()
    last = [[m for m in EPOCH.finditer(out) if m[1] == m[2]] for out in outs]
    if not all(last):
        raise RuntimeError("a worker failed:\n" + "\n".join(out[-1500:] for out in outs))
    seconds = max(float(m[-1][3]) for m in last)  # the last epoch: tf.function tracing is done by then
    return limit / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=4096, help="training examples (default 4096)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs (the last one is timed; default 2)")
    args = parser.parse_args()
    configs = [("1 worker, 1 thread", 1, 1), ("1 worker, 2 threads", 1, 2), ("2 workers, 1 thread each", 2, 1)]
    results = [(label, *run_cluster(workers, threads, args.limit, args.epochs)) for label, workers, threads in configs]
    base = results[0][1]
    rows = [[label, f"{rate:,.0f}", f"{seconds:.1f}", f"{rate / base:.2f}x"] for label, rate, seconds in results]
    body = table(["cluster (127.0.0.1)", "examples/s", "last epoch s", "vs 1 worker, 1 thread"], rows)
    body += (f"\n\nLeNet-5, Fashion-MNIST first {args.limit} training images, global batch 64, no augmentation; the "
             f"last of {args.epochs} epochs is timed (after tf.function tracing). Every row runs the same custom loop "
             "(strategy.run + tf.nn.compute_average_loss; one-worker clusters included), so the ratio isolates the "
             "second worker. On one shared 2-core machine the second worker is pure cost: every step waits for "
             "gRPC collectives (gradient all-reduce, loss reduce, all-gather of labels and predictions for the "
             "metrics) between two processes competing for the same cores. The gain needs one worker per machine "
             "or per accelerator; this run shows the path is correct, not fast, here.")
    body += f"\n\nLoad average (1 min) when the run ended: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
    write_section("distributed", "Multi-worker training (tf.distribute, loopback)",
                  f".venv/bin/python benchmarks/distributed.py --limit {args.limit} --epochs {args.epochs}", body)


if __name__ == "__main__":
    main()
