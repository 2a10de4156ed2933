"""The demo's figures: LeNet-5 on the full Fashion-MNIST split, test accuracy and wall time.

    .venv/bin/python benchmarks/demo_fashion_mnist.py

Runs the bundled ``fashion_mnist_lenet5`` recipe exactly as ``make demo`` does
(in a temporary working folder), and records accuracy against the >= 89% goal.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import table, write_section  # noqa: E402
from tasks.recipe import load_recipe  # noqa: E402
from tasks.trainer import train  # noqa: E402


def main() -> None:
    recipe = load_recipe("fashion_mnist_lenet5")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        result = train(recipe, tmp)
        minutes = (time.time() - start) / 60
    acc = result.metrics["test_accuracy"]
    body = table(
        ["recipe", "epochs", "test accuracy (10k)", "goal", "wall time"],
        [["fashion_mnist_lenet5", recipe["train"]["epochs"], f"{acc:.4f}", ">= 0.89 " + ("met" if acc >= 0.89 else "NOT met"), f"{minutes:.1f} min"]],
    )
    write_section("demo_fashion_mnist", "Demo: LeNet-5 on Fashion-MNIST (make demo)", "python benchmarks/demo_fashion_mnist.py", body)


if __name__ == "__main__":
    main()
