"""``convforge train RECIPE [--set key=value]...``"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a recipe (tracked in MLflow, exported as a SavedModel)",
                       description="Train one recipe: one MLflow run, per-epoch metrics, figures, the model and a "
                                   "TF Serving export. Rerunning the same command after a crash resumes it.")
    p.add_argument("recipe", help="a recipe YAML path or the name of a bundled recipe (see `convforge recipes`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--workdir", default=".", help="folder for mlflow.db, exports/ and resume state (default: .)")
    p.add_argument("--distributed", nargs="?", const="multi-worker", choices=["multi-worker", "mirrored"], default=None,
                   help="train with tf.distribute: multi-worker (the default; one process per TF_CONFIG task, "
                        "the chief tracks and exports) or mirrored (all devices of this host, through fit)")
    p.set_defaults(func=run)
    plain = p.format_help
    p.format_help = lambda: plain() + _names()  # the names need the model registry: built only for --help


def _names() -> str:
    """Model, augmentation and dataset names a recipe can use (for ``convforge train --help``)."""
    import textwrap

    from tasks.core.quiet_tensorflow import quiet_tensorflow_import

    quiet_tensorflow_import()  # the registry imports Keras
    from models import names as model_names
    from pipelines.augment_policy import AUGMENTATIONS
    from pipelines.catalog import DATASET_FORMS
    from pipelines.catalog import names as catalog_names

    def wrap(title: str, items) -> str:
        return f"\n{title}:\n" + textwrap.fill(", ".join(items), 100, initial_indent="  ", subsequent_indent="  ") + "\n"

    return (wrap("model.name", model_names()) + wrap("data.augment", AUGMENTATIONS)
            + wrap("data.dataset", [*catalog_names(), *(form for form, _, _ in DATASET_FORMS)])
            + "\nbundled recipes: convforge recipes; a recipe with every field and default: convforge recipe show NAME\n")


def run(args) -> int:
    from tasks.core.recipe import load_recipe
    from tasks.core.trainer import TrainingDiverged, train

    strategy = None
    if args.distributed:  # the strategy must exist before any other TensorFlow work in the process
        from tasks.core.distributed import make_strategy

        strategy = make_strategy(args.distributed)
    recipe = load_recipe(args.recipe, args.overrides)
    try:
        if strategy is None:
            result = train(recipe, args.workdir)
        else:
            from tasks.core.distributed import train_distributed

            result = train_distributed(recipe, strategy, args.workdir)
    except TrainingDiverged as err:
        print(f"error: training diverged: {err}")
        return 1
    for key, value in sorted(result.metrics.items()):
        print(f"{key}: {value:.4f}")
    print(f"mlflow run id: {result.run_id}")
    print(f"export path: {result.export_path}")
    return 0
