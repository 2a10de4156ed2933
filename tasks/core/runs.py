"""Finished runs read back from MLflow: their recipe, input description and model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import yaml

from models.safe_load import UnsafeModelError, load_keras
from tasks.core import tracking
from tasks.core.errors import UserError
from tasks.core.task import RECIPE_ASSET


@dataclass
class LoggedRun:
    run_id: str
    recipe: dict
    class_names: list[str]
    input_shape: tuple[int, ...]
    model: keras.Model


def download_artifact(run_id: str, artifact_path: str) -> Path:
    """One artifact (file or folder) of a finished run, downloaded; MlflowException/OSError when it is not there."""
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path))


def load_run(run_id: str, workdir: str | Path = ".") -> LoggedRun:
    """Load a training run's recipe, class names and Keras model from MLflow."""
    tracking.configure(workdir)
    tracking.check_reachable()  # a dead server is said as such, not as "run not found"
    try:
        mlflow.get_run(run_id)
    except Exception:
        raise UserError(f"MLflow run {run_id!r} not found in {mlflow.get_tracking_uri()}; "
                        "check the id (mlflow ui) or set MLFLOW_TRACKING_URI") from None
    try:
        recipe = yaml.safe_load(Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=RECIPE_ASSET)).read_text())
        info = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="inputs.json")).read_text())
        model = load_keras(next(Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model")).rglob("*.keras")))
    except UnsafeModelError as err:
        raise UserError(f"MLflow run {run_id}: {err}") from None
    except (OSError, StopIteration, mlflow.exceptions.MlflowException) as err:
        raise UserError(f"MLflow run {run_id} has no complete model/recipe ({type(err).__name__}); was it a finished training run?") from None
    return LoggedRun(run_id, recipe, info["class_names"], tuple(info["input_shape"]), model)
