"""A TF Serving export as an MLflow pyfunc model, for the registry and ``mlflow models serve``.

``log_export(export_path)`` logs the export folder (``<name>/<version>/``) as the
artifact ``export`` of an MLflow pyfunc model whose ``predict`` calls the
export's ``serving_default`` signature. A served registered model therefore
answers with exactly the export's graph (resizing and post-processing inside),
and checks each request strictly before running it:

- the body must be a batch of images ``[N, H, W, C]`` with the export's C;
- values must be integers in 0..255 (a float batch such as ``x / 255`` is
  refused, never silently truncated to uint8);
- ``N <= MAX_BATCH`` and ``H, W <= MAX_SIDE`` (refuses oversized images).

A refused request gets HTTP 400 with one line saying what was wrong; the
server keeps serving. Request (JSON, TF Serving style, on ``/invocations``)::

    {"inputs": [[[[0], [12], ...]]]}       -> {"predictions": {"probabilities": [[...]], "class_id": [3]}}

Example:
    >>> info = log_export("exports/fashion/1")          # inside an active MLflow run
    >>> model = mlflow.pyfunc.load_model(info.model_uri)
    >>> model.predict(images_uint8)["class_id"]
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

ARTIFACT = "export"
MAX_BATCH = 256
MAX_SIDE = 1024
PIP_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "mlflow==3.17.2"]


def _refuse(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def check_images(value, channels: int, max_batch: int = MAX_BATCH, max_side: int = MAX_SIDE) -> np.ndarray:
    """A request's input -> uint8 ``[N, H, W, channels]``, or an MlflowException naming the problem."""
    if hasattr(value, "to_numpy"):  # a DataFrame: the body was records/split JSON or CSV
        raise _refuse('send images as {"inputs": [N, H, W, C] nested lists of integers 0..255}; '
                      "received a table")
    x = np.asarray(value)
    if x.dtype.kind not in "iu":
        raise _refuse(f"images must be integers 0..255 (uint8); received dtype {x.dtype}")
    if x.ndim != 4 or x.shape[-1] != channels:
        raise _refuse(f"images must have shape [N, H, W, {channels}]; received {list(x.shape)}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise _refuse(f"image values must lie in 0..255; received {x.min()}..{x.max()}")
    if not 0 < x.shape[0] <= max_batch or not (0 < x.shape[1] <= max_side and 0 < x.shape[2] <= max_side):
        raise _refuse(f"at most {max_batch} images of at most {max_side}x{max_side} pixels per request; "
                      f"received {list(x.shape)}")
    return x.astype(np.uint8)


class ExportModel(mlflow.pyfunc.PythonModel):
    """Runs the ``serving_default`` signature of the export stored as artifact ``export``."""

    def load_context(self, context):
        import tensorflow as tf

        self._tf = tf
        self._fn = tf.saved_model.load(context.artifacts[ARTIFACT]).signatures["serving_default"]
        self._channels = int(self._fn.structured_input_signature[1]["images"].shape[-1])

    def predict(self, context, model_input, params=None) -> dict[str, np.ndarray]:
        images = check_images(model_input, self._channels)
        return {k: v.numpy() for k, v in self._fn(images=self._tf.constant(images)).items()}


def log_export(export_path: str | Path, name: str = "serving"):
    """Log ``export_path`` as a pyfunc model ``name`` in the active run; returns its ModelInfo."""
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=ExportModel(),
        artifacts={ARTIFACT: str(export_path)},
        pip_requirements=PIP_REQUIREMENTS,
    )


def export_folder(local_model_dir: str | Path) -> Path:
    """The export folder inside a downloaded pyfunc model logged by ``log_export``."""
    from mlflow.models import Model

    try:
        flavor = Model.load(str(local_model_dir)).flavors["python_function"]
        path = Path(local_model_dir) / flavor["artifacts"][ARTIFACT]["path"]
    except (OSError, KeyError, MlflowException):
        path = None
    if path is None or not (path / "saved_model.pb").is_file():
        raise FileNotFoundError(f"{local_model_dir} holds no convforge export (pyfunc artifact {ARTIFACT!r})")
    return path
