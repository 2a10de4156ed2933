"""``convforge evaluate SOURCE [--split test]``: accuracy of a run or an export on a dataset split."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a run id or an export folder on a dataset split",
                       description="Evaluate a trained model on the recipe's dataset (or --set data.dataset=...). "
                                   "SOURCE is an MLflow run id or an export folder; run results are logged to that run.")
    p.add_argument("source", help="an MLflow run id or an export folder")
    p.add_argument("--split", choices=["test", "val", "train"], default="test")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the recipe's data settings, e.g. --set data.test_limit=1000")
    p.add_argument("--workdir", default=".", help="folder holding mlflow.db when MLFLOW_TRACKING_URI is unset")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    import tensorflow as tf
    import yaml

    from pipelines.splits import batch
    from tasks.core.data_splits import load_splits_for
    from tasks.core.errors import UserError, first_line
    from tasks.core.recipe import load_recipe
    from tasks.core.task import RECIPE_ASSET
    from tasks.problems.classification import classification_metrics, collect_predictions

    is_export = Path(args.source).exists()
    if is_export:
        from serving.loader import predict_arrays
        from tasks.cli.commands.predict import load_export_or_fail

        path, served = load_export_or_fail(args.source)
        recipe_file = path / "assets" / RECIPE_ASSET
        if not recipe_file.is_file():
            raise UserError(f"export {path} carries no recipe; evaluate its MLflow run id instead")
        raw = yaml.safe_load(recipe_file.read_text())
    else:
        from tasks.core.runs import load_run

        logged = load_run(args.source, args.workdir)
        raw = logged.recipe
    recipe = load_recipe(raw, args.overrides, check_services=False)
    data = recipe["data"]
    splits = load_splits_for(data, recipe["seed"], test_fraction=data.get("test_fraction", 0.1))
    ds = getattr(splits, args.split)
    if ds is None:
        raise UserError(f"the dataset has no {args.split} split")
    if is_export:
        images, labels = map(np.concatenate, zip(*[(x, y) for x, y in batch(ds, 512).as_numpy_iterator()], strict=True))
        try:  # image exports take uint8 images, 1D/3D exports their float tensors (predict_arrays reads which)
            probs = predict_arrays(served, images)["probabilities"]
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as err:
            raise UserError(f"export {path} does not accept the {args.split} split of {data['dataset']!r} "
                            f"(shape {list(images.shape[1:])}): {first_line(err)}; evaluate it on the data it was trained on") from None
    else:
        labels, probs = collect_predictions(logged.model, batch(ds, 256))
    metrics = classification_metrics(labels, probs, prefix=f"eval_{args.split}_")
    if not is_export:
        from tasks.core import tracking

        log = tracking.SafeLogger(tracking.spill_dir(args.workdir, "evaluate"))  # queued for sync-runs in an outage
        with log.run(run_id=args.source):
            log("log_metrics", metrics)
    for key, value in metrics.items():
        print(f"{key}: {value:.4f}")
    return 0
