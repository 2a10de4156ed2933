"""``make demo``: train LeNet-5 on the real Fashion-MNIST split, then serve a few test images.

Trains the bundled ``fashion_mnist_lenet5`` recipe (60k/10k, tracked in MLflow
under ./mlflow.db, exported to ./exports), writes a few real test images as PNG
files, classifies them through the exported SavedModel's ``serving_bytes``
signature, and prints the test accuracy, the MLflow run id, the export path and
how to open the MLflow UI.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from tasks.cli import quiet_tensorflow_import  # also quiets MLflow's start-up log lines

    quiet_tensorflow_import()
    import tensorflow as tf

    from pipelines.catalog import load_arrays
    from serving.export import read_class_names
    from serving.loader import load_export, predict_bytes
    from tasks.errors import UserError
    from tasks.recipe import load_recipe
    from tasks.trainer import train

    start = time.time()
    try:
        recipe = load_recipe("fashion_mnist_lenet5", argv or [])
        data = load_arrays("fashion_mnist")
    except (UserError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = train(recipe, ".")
    minutes = (time.time() - start) / 60

    samples = Path("exports") / "demo_images"
    samples.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(6):
        path = samples / f"test_{i}.png"
        path.write_bytes(tf.io.encode_png(data.x_test[i]).numpy())
        files.append(path)
    served = load_export(result.export_path)
    names = read_class_names(result.export_path)
    probs = predict_bytes(served, [p.read_bytes() for p in files])["probabilities"]

    print("\n=== convforge demo ===")
    print("predictions of the exported SavedModel on real Fashion-MNIST test images:")
    for path, p, label in zip(files, probs, data.y_test[:6], strict=True):
        print(f"  {path}: {names[p.argmax()]} ({p.max():.2f})   true: {names[label]}")
    print(f"test accuracy:  {result.metrics['test_accuracy']:.4f}  (10,000 test images)")
    print(f"MLflow run id:  {result.run_id}")
    print(f"export path:    {result.export_path}")
    print(f"wall time:      {minutes:.1f} min")
    print("look at it:     .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db  ->  http://127.0.0.1:5000")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
