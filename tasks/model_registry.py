"""MLflow's model registry for convforge runs: register a run's model, resolve ``models:/`` URIs.

``register_run(run_id, "fashion", alias="champion")`` registers the Keras model
logged by a training run as a new version of registered model ``fashion`` and
points the alias at it. ``export_registered("models:/fashion@champion", root)``
resolves an alias (``models:/NAME@ALIAS``) or a version (``models:/NAME/3``) to
its training run and writes that model as a TF Serving export under ``root``
through the task's own ``export`` hook, so a registered model predicts through
exactly the graph (decoding, resizing, post-processing) TF Serving would run.

Works against any tracking store: a local SQLite file or a team server
(``MLFLOW_TRACKING_URI=http://...``, e.g. the PostgreSQL-backed one of
``mlflow/server.sh``).

Example:
    >>> version = register_run(run_id, "fashion", alias="champion")
    >>> path = export_registered("models:/fashion@champion", "/tmp/serve")
"""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from tasks.errors import UserError

MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def register_run(run_id: str, name: str, alias: str | None = None) -> str:
    """Register ``runs:/<run_id>/model`` as a new version of ``name``; returns the version."""
    try:
        version = mlflow.register_model(f"runs:/{run_id}/model", name).version
        if alias:
            mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    except MlflowException as err:
        raise UserError(f"cannot register run {run_id} as {name!r}: {str(err).splitlines()[0][:200]}") from None
    return str(version)


def resolve_run_id(uri: str) -> str:
    """The training run behind ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    match = MODEL_URI.match(uri)
    if not match:
        raise UserError(f"model URI {uri!r} must look like models:/NAME@ALIAS or models:/NAME/VERSION")
    client = mlflow.MlflowClient()
    try:
        if match["alias"]:
            mv = client.get_model_version_by_alias(match["name"], match["alias"])
        else:
            mv = client.get_model_version(match["name"], match["version"])
    except MlflowException:
        raise UserError(f"{uri} is not in the model registry of {mlflow.get_tracking_uri()}; "
                        "register it with `convforge export RUN_ID --register NAME --alias ALIAS`") from None
    if not mv.run_id:
        raise UserError(f"{uri} has no training run; register models with `convforge export RUN_ID --register NAME`")
    return mv.run_id


def export_registered(uri: str, root: str | Path, workdir: str | Path = ".") -> Path:
    """Write the registered model ``uri`` as a TF Serving export under ``root``; returns the version folder."""
    from tasks.runs import load_run
    from tasks.task import Inputs, get_task_class
    from tasks.tracking import configure

    configure(workdir)
    logged = load_run(resolve_run_id(uri), workdir)
    task = get_task_class(logged.recipe["task"])(logged.recipe)
    inputs = Inputs(None, None, None, logged.input_shape, logged.class_names)
    return task.export(logged.model, inputs, root, MODEL_URI.match(uri)["name"])
