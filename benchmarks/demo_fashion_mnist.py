"""The demo's figures: ``make demo``'s main job as it runs, its own table and wall time.

    .venv/bin/python benchmarks/demo_fashion_mnist.py [--quick-too]

Runs ``python -m tasks.workflows.demo`` (what ``make demo`` runs after installing) in a
temporary working folder, and records the table and the wall time the demo
itself prints: each member at 1 and 10 crops, the ensemble at 1 and 10 crops,
on the full 10,000 test images. ``--quick-too`` also runs the LeNet-5 variant
(``make demo DEMO_ARGS=--quick``). The README's demo figures (between its
``results:demo_fashion_mnist`` markers) are copied from the recorded result
by ``benchmarks/readme_blocks.py``, never typed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import table, write_section  # noqa: E402
from benchmarks.readme_blocks import sync_readme  # noqa: E402


def run_demo(extra: list[str]) -> str:
    """The demo's stdout (raises with its stderr if it fails)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{Path(tmp) / 'mlflow.db'}"}
        done = subprocess.run([sys.executable, "-m", "tasks.workflows.demo", "--workdir", tmp, *extra], cwd=tmp, env=env,
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the demo failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick-too", action="store_true", help="also run the LeNet-5 variant")
    args = parser.parse_args(argv)
    before = load_average()
    out = run_demo([])
    rows = [line for line in out.splitlines() if line.startswith("|")]
    minutes = re.search(r"^wall time:\s+([\d.]+) min", out, re.M).group(1)
    gain = re.search(r"vs the best member at 1 crop: ([+-][\d.]+) points", out).group(1)
    body = "\n".join([
        "`make demo`: three EfficientNet-Lite0 transfer members (seeds 1-3; 600 labels: 500 train + 100 validation, "
        "64 px RGB; head on cached activations, then the top 2 blocks, then all layers, cosine-decayed), their "
        "ensemble, 1 crop and 10 crops (crop fraction 0.96), test accuracy on the full 10,000 test images; the table "
        "is the one the demo prints.",
        "", *rows, "",
        f"Ensemble + 10-crop vs the best member at 1 crop: {gain} points. Wall time of the whole demo "
        f"(training, evaluation, export, serving a few test images): **{minutes} min** (load average {before} "
        f"before, {load_average()} after).",
    ])
    if args.quick_too:
        quick = run_demo(["--quick"])
        acc = re.search(r"^test accuracy:\s+([\d.]+)", quick, re.M).group(1)
        quick_min = re.search(r"^wall time:\s+([\d.]+) min", quick, re.M).group(1)
        body += "\n\n" + table(["variant", "test accuracy (10k)", "wall time"],
                               [["`make demo DEMO_ARGS=--quick` (LeNet-5, 60k/10k)", acc, f"{quick_min} min"]])
    write_section("demo_fashion_mnist", "Demo: the main job (make demo)", "python benchmarks/demo_fashion_mnist.py"
                  + (" --quick-too" if args.quick_too else ""), body)
    sync_readme()


if __name__ == "__main__":
    main()
