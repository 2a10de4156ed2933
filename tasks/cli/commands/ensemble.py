"""``convforge ensemble RUN_ID... [--mode 10crop] [--export]``: average N trained runs' probabilities."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("ensemble", help="evaluate (and export) the probability average of several trained runs",
                       description="Average the output probabilities (never the weights) of N finished training runs, "
                                   "evaluate every member and the ensemble on the first run's test split, log the "
                                   "result as a new MLflow run, and optionally export one SavedModel that averages inside.")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="MLflow run ids of finished training runs (same classes and input size)")
    p.add_argument("--mode", default="single", choices=["single", "1crop", "3crop", "10crop"],
                   help="test-time crops per image (default: single)")
    p.add_argument("--crop-fraction", type=float, default=0.875, help="crop side / enlarged image side (default 0.875)")
    p.add_argument("--export", action="store_true", help="export the averaging model as a SavedModel (TF Serving layout)")
    p.add_argument("--export-dir", default="exports", help="export root folder (default: exports)")
    p.add_argument("--name", default=None, help="export model name (default: <dataset>_ensemble<N>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the first run's data settings, e.g. --set data.test_limit=1000")
    p.add_argument("--workdir", default=".", help="folder holding mlflow.db when MLFLOW_TRACKING_URI is unset")
    p.set_defaults(func=run)


def run(args) -> int:
    from tasks.core.errors import UserError
    from tasks.workflows.ensemble import evaluate_runs, export_ensemble, tag_run

    if not 0.0 < args.crop_fraction <= 1.0:
        raise UserError(f"--crop-fraction must be in (0, 1]; received {args.crop_fraction}")
    result = evaluate_runs(args.run_ids, args.mode, args.overrides, args.workdir, args.crop_fraction)
    print(result.markdown(args.mode))
    for key, value in sorted(result.metrics.items()):
        print(f"ensemble {key}: {value:.4f}")
    if args.export:
        name = args.name or f"{result.recipe['data']['dataset']}_ensemble{len(args.run_ids)}".replace(":", "_").replace("/", "_")
        result.export_path = export_ensemble(result, args.export_dir, name, args.mode, args.crop_fraction).resolve()
        tag_run(result, "export_path", str(result.export_path))
        print(f"export path: {result.export_path}")
    print(f"mlflow run id: {result.run_id}")
    return 0
