"""``convforge export RUN_ID [--dir D] [--name N]``: a logged model -> a TF Serving export."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a logged MLflow model as a SavedModel for TF Serving",
                       description="Write <dir>/<name>/<version>/ (atomically) from the model logged by a training run.")
    p.add_argument("run_id", help="the MLflow run id printed by `convforge train`")
    p.add_argument("--dir", default=None, help="export root (default: the recipe's export.dir)")
    p.add_argument("--name", default=None, help="model name (default: the recipe's export.name)")
    p.add_argument("--workdir", default=".", help="folder holding mlflow.db when MLFLOW_TRACKING_URI is unset")
    p.set_defaults(func=run)


def run(args) -> int:
    from tasks.runs import load_run
    from tasks.task import Inputs, get_task_class

    logged = load_run(args.run_id, args.workdir)
    recipe = logged.recipe
    task = get_task_class(recipe["task"])(recipe)
    inputs = Inputs(None, None, None, logged.input_shape, logged.class_names)
    name = args.name or recipe["export"]["name"] or f"{recipe['model']['name']}"
    path = task.export(logged.model, inputs, args.dir or recipe["export"]["dir"], name)
    print(f"export path: {path.resolve()}")
    return 0
