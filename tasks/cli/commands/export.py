"""``convforge export RUN_ID [--dir D] [--name N] [--register NAME [--alias A]]``: a logged model -> a TF Serving export.

With ``--register`` the export is also logged into the run as an MLflow pyfunc
model (``serving.mlflow_pyfunc``) and registered as a new version of NAME in
MLflow's model registry; ``--alias champion`` points an alias at it. Then
``convforge predict models:/NAME@champion IMAGE`` and ``mlflow models serve -m
models:/NAME@champion`` both run that export's graph.
"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a logged MLflow model as a SavedModel for TF Serving",
                       description="Write <dir>/<name>/<version>/ (atomically) from the model logged by a training run.")
    p.add_argument("run_id", help="the MLflow run id printed by `convforge train`")
    p.add_argument("--dir", default=None, help="export root (default: the recipe's export.dir)")
    p.add_argument("--name", default=None, help="model name (default: the recipe's export.name)")
    p.add_argument("--workdir", default=".", help="folder holding mlflow.db when MLFLOW_TRACKING_URI is unset")
    p.add_argument("--register", metavar="NAME", default=None,
                   help="also register the export as a new version of NAME in the MLflow model registry")
    p.add_argument("--alias", default=None, help="with --register: point this alias (e.g. champion) at the new version")
    p.set_defaults(func=run)


def run(args) -> int:
    from tasks.core.errors import UserError
    from tasks.core.runs import load_run
    from tasks.core.task import Inputs, get_task_class

    if args.alias and not args.register:
        raise UserError("--alias needs --register NAME (the registered model the alias belongs to)")
    logged = load_run(args.run_id, args.workdir)
    recipe = logged.recipe
    task = get_task_class(recipe["task"])(recipe)
    inputs = Inputs(None, None, None, logged.input_shape, logged.class_names)
    name = args.name or recipe["export"]["name"] or f"{recipe['model']['name']}"
    path = task.export(logged.model, inputs, args.dir or recipe["export"]["dir"], name)
    print(f"export path: {path.resolve()}")
    if args.register:
        from tasks.core.model_registry import register_export

        version = register_export(args.run_id, path, args.register, args.alias)
        target = f"models:/{args.register}@{args.alias}" if args.alias else f"models:/{args.register}/{version}"
        print(f"registered model: {args.register} version {version} ({target})")
    return 0
