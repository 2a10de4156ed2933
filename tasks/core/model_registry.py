"""MLflow's model registry for convforge: register an export, fetch it back by alias or version.

``register_export(run_id, export_path, "fashion", alias="champion")`` logs the
TF Serving export into its training run as an MLflow pyfunc model (see
``serving.mlflow_pyfunc``: the export's own ``serving_default`` graph behind a
strict input check), registers it as a new version of ``fashion`` and points
the alias at it. ``fetch_export("models:/fashion@champion", dst)`` downloads
that version and returns its export folder, so a registered model predicts
through exactly the graph TF Serving runs, and ``mlflow models serve -m
models:/fashion@champion`` serves the same graph over HTTP.

Works against any tracking store: a local SQLite file or a team server
(``MLFLOW_TRACKING_URI=http://...``, e.g. the PostgreSQL-backed one of
``mlflow/server.sh``).

Example:
    >>> version = register_export(run_id, "exports/fashion/1", "fashion", alias="champion")
    >>> path = fetch_export("models:/fashion@champion", "/tmp/serve")
"""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from tasks.core.errors import UserError

MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
SERVING_MODEL = "serving"  # the pyfunc model's name inside the training run


def register_export(run_id: str, export_path: str | Path, name: str, alias: str | None = None) -> str:
    """Log ``export_path`` into run ``run_id`` as a pyfunc model and register it as ``name``; returns the version."""
    from serving.mlflow_pyfunc import log_export

    try:
        with mlflow.start_run(run_id=run_id):
            log_export(export_path, SERVING_MODEL)
        version = mlflow.register_model(f"runs:/{run_id}/{SERVING_MODEL}", name).version
        if alias:
            mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    except MlflowException as err:
        raise UserError(f"cannot register run {run_id} as {name!r}: {str(err).splitlines()[0][:200]}") from None
    return str(version)


def fetch_export(uri: str, dst: str | Path) -> Path:
    """Download the registered model ``uri`` (models:/NAME@ALIAS or models:/NAME/VERSION); returns its export folder."""
    from serving.mlflow_pyfunc import export_folder

    if not MODEL_URI.match(uri):
        raise UserError(f"model URI {uri!r} must look like models:/NAME@ALIAS or models:/NAME/VERSION")
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst))
    except MlflowException:
        raise UserError(f"{uri} is not in the model registry of {mlflow.get_tracking_uri()}; "
                        "register it with `convforge export RUN_ID --register NAME --alias ALIAS`") from None
    try:
        return export_folder(local)
    except FileNotFoundError:
        raise UserError(f"{uri} is not a convforge export; register it with `convforge export RUN_ID --register NAME`") from None
