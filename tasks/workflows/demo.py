"""``make demo``: the main job of convforge, end to end, on real Fashion-MNIST.

1. Three members of the bundled ``demo_transfer_lite0`` recipe (seeds 1, 2, 3):
   600 labels (1% of Fashion-MNIST), the ImageNet EfficientNet-Lite0 backbone
   that works offline, mirrored random crops made on the fly in tf.data, the
   head trained on cached frozen activations, then a staged unfreeze (top 2
   blocks, then all layers) at cosine-decayed rates.
2. The ensemble (the mean of the members' probabilities) and 10-crop
   evaluation, every member and the ensemble at 1 and 10 crops, on the full
   10,000 test images.
3. One MLflow parent run holding the members (each with its stage runs) and
   the ensemble evaluation nested under it; the parent carries the comparison
   table (``comparison.md``), the ensemble's confusion matrix and metrics.
4. The ensemble with 10-crop inside exported as one SavedModel in the TF
   Serving layout (``exports/fashion_mnist_demo_ensemble/<version>``), then a
   few real test images classified through its ``serving_bytes`` signature.

``--quick`` trains LeNet-5 on the full 60k/10k split instead (about 2 minutes).

Example:
    $ python -m tasks.workflows.demo                      # or: make demo
    $ python -m tasks.workflows.demo --quick              # or: make demo DEMO_ARGS=--quick
    $ python -m tasks.workflows.demo --members 2 --set data.test_limit=2000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEMO_RECIPE = "demo_transfer_lite0"
QUICK_RECIPE = "fashion_mnist_lenet5"
EXPORT_NAME = "fashion_mnist_demo_ensemble"
SAMPLES = 6
UI = "look at it:  .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db  ->  http://127.0.0.1:5000"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tasks.workflows.demo", description=__doc__.split("\n\n")[0],
                                epilog="Everything stays in the working folder: mlflow.db, mlruns/, exports/.")
    p.add_argument("--quick", action="store_true", help=f"train {QUICK_RECIPE} (LeNet-5) instead of the main job")
    p.add_argument("--members", type=int, default=3, help="ensemble members, one seed each (default 3)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the member recipe, e.g. --set data.test_limit=2000")
    p.add_argument("--workdir", default=".", help="folder for mlflow.db, mlruns/, exports/ (default: here)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.start = time.time()
    from tasks.core.quiet_tensorflow import quiet_tensorflow_import  # also quiets MLflow's start-up log lines

    quiet_tensorflow_import()
    from tasks.core.errors import UserError

    try:
        if args.members < 1:
            raise UserError(f"--members must be at least 1; received {args.members}")
        return (quick if args.quick else main_job)(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def main_job(args) -> int:
    from tasks.core import tracking
    from tasks.core.recipe import load_recipe
    from tasks.core.trainer import train
    from tasks.workflows.ensemble import evaluate_runs, export_ensemble

    start, workdir = args.start, Path(args.workdir)
    seeds = list(range(1, args.members + 1))
    recipes = [load_recipe(DEMO_RECIPE, [*args.overrides, f"seed={s}"]) for s in seeds]  # every error before any work
    mode, fraction = "10crop", recipes[0]["evaluation"]["crop_fraction"]
    tracking.configure(workdir)
    log = tracking.SafeLogger(tracking.spill_dir(workdir, "demo"))  # the parent run: outage-safe like its children
    with log.run(run_name=f"demo-{time.strftime('%Y%m%d-%H%M%S')}", experiment=recipes[0]["mlflow"]["experiment"]) as parent_id:
        log("log_params", {"demo.recipe": DEMO_RECIPE, "demo.members": args.members, "demo.seeds": ",".join(map(str, seeds)),
                           "evaluation.mode": mode, "evaluation.crop_fraction": fraction})
        log("log_dict", recipes[0], "member_recipe.yaml")
        members = []
        for i, recipe in enumerate(recipes, start=1):
            print(f"\n=== member {i}/{len(recipes)} (seed {recipe['seed']}) ===", flush=True)
            members.append(train(recipe, workdir))
        print(f"\n=== ensemble of {len(members)} + {mode} on the test split ===", flush=True)
        ens = evaluate_runs([m.run_id for m in members], mode, args.overrides, workdir, fraction)
        table = ens.markdown(mode)
        log("log_text", table + "\n", "comparison.md")
        log("log_metrics", {f"ensemble_{k}": v for k, v in ens.metrics.items()})
        for i, m in enumerate(ens.member_metrics, start=1):
            log("log_metrics", {f"member{i}_{k}": v for k, v in m.items()})
        _log_confusion(ens, log)
        export = export_ensemble(ens, workdir / "exports", EXPORT_NAME, mode, fraction).resolve()
        log("set_tag", "export_path", str(export))
        served = _serve_samples(export, workdir)
        minutes = (time.time() - start) / 60
        log("log_metric", "demo_wall_minutes", minutes)

    test_n = len(ens.labels)
    print(f"\n=== convforge demo: transfer learning on 1% of Fashion-MNIST, test accuracy on {test_n:,} test images ===")
    print(table)
    print(f"\nensemble + {mode} vs the best member at 1 crop: "
          f"{100 * (ens.metrics['test_accuracy'] - max(r[1] for r in ens.table(mode)[:-1])):+.2f} points")
    print(f"\nthe exported ensemble ({mode} inside) on real test images, through its serving_bytes signature:")
    for line in served:
        print(f"  {line}")
    print(f"\nMLflow parent run: {parent_id} (experiment {recipes[0]['mlflow']['experiment']!r}; "
          f"members {', '.join(m.run_id[:8] for m in members)} and ensemble {ens.run_id[:8]} nested)")
    print(f"export path:       {export}")
    print(f"signatures:        .venv/bin/saved_model_cli show --dir {export} --all")
    print(f"wall time:         {minutes:.1f} min")
    print(UI)
    return 0


def _log_confusion(ens, log) -> None:
    import tempfile

    from tasks.figures import plots

    with tempfile.TemporaryDirectory() as tmp:
        fig = plots.confusion_matrix(ens.labels, ens.probabilities.argmax(axis=1), ens.class_names)
        log("log_artifact", str(plots.save(fig, Path(tmp) / "ensemble_confusion_matrix.png")), "figures")


def _serve_samples(export: Path, workdir: Path) -> list[str]:
    """Classify the first test images, written as PNG files, through the export's ``serving_bytes``."""
    import tensorflow as tf

    from pipelines.catalog import load_arrays
    from serving.export import read_class_names
    from serving.loader import load_export, predict_bytes

    data = load_arrays("fashion_mnist")
    samples = workdir / "exports" / "demo_images"
    samples.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(SAMPLES):
        path = samples / f"test_{i}.png"
        path.write_bytes(tf.io.encode_png(data.x_test[i]).numpy())
        files.append(path)
    names = read_class_names(export)
    out = predict_bytes(load_export(export), [p.read_bytes() for p in files])
    probs = out.get("multicrop_probabilities", out["probabilities"])
    return [f"{path}: {names[p.argmax()]} ({p.max():.2f})   true: {names[label]}"
            for path, p, label in zip(files, probs, data.y_test[:SAMPLES], strict=True)]


def quick(args) -> int:
    """LeNet-5 on the full 60k/10k split: one run, one export, a few test images served."""
    from tasks.core.recipe import load_recipe
    from tasks.core.trainer import train

    start, workdir = args.start, Path(args.workdir)
    result = train(load_recipe(QUICK_RECIPE, args.overrides), workdir)
    served = _serve_samples(result.export_path, workdir)
    print("\n=== convforge demo (quick): LeNet-5 on Fashion-MNIST ===")
    print("predictions of the exported SavedModel on real Fashion-MNIST test images:")
    for line in served:
        print(f"  {line}")
    print(f"test accuracy:  {result.metrics['test_accuracy']:.4f}  (10,000 test images)")
    print(f"MLflow run id:  {result.run_id}")
    print(f"export path:    {result.export_path}")
    print(f"wall time:      {(time.time() - start) / 60:.1f} min")
    print(UI)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
