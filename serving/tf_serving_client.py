"""Requests for TensorFlow Serving: REST JSON and gRPC ``PredictRequest`` for every exported signature.

A convforge export (``<root>/<name>/<version>/``) has two signatures,
``serving_default`` (``images``: uint8 ``[N, H, W, C]``) and ``serving_bytes``
(``image_bytes``: encoded images ``[N]``). ``signature_inputs`` reads them from
the SavedModel itself, so the builders work for any export.

REST (port 8501): ``POST /v1/models/<name>[/versions/<v>]:predict`` with either
the row format ``{"signature_name": s, "instances": [...]}`` or the columnar
format ``{"signature_name": s, "inputs": {...}}``; binary strings travel as
``{"b64": "..."}`` (TF Serving's REST rule).

gRPC (port 8500): ``tensorflow_serving.apis.predict_pb2.PredictRequest`` sent to
``PredictionService/Predict`` (install ``tensorflow-serving-api`` with
``--no-deps``: it pins the full ``tensorflow`` wheel).

Example:
    >>> body = rest_body("serving_bytes", {"image_bytes": [open("shoe.png", "rb").read()]})
    >>> requests.post(rest_url("127.0.0.1", 8501, "fashion"), json=body).json()["predictions"]
    >>> request = grpc_request("fashion", "serving_default", {"images": batch_uint8})
    >>> outputs = grpc_predict("127.0.0.1:8500", request)          # {"probabilities": ..., "class_id": ...}
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import tensorflow as tf


def signature_inputs(export_path: str | Path) -> dict[str, dict[str, tf.TensorSpec]]:
    """``{signature_name: {input_name: TensorSpec}}`` of an export version folder."""
    served = tf.saved_model.load(str(export_path))
    return {name: dict(fn.structured_input_signature[1]) for name, fn in served.signatures.items()}


def rest_url(host: str, port: int, model: str, version: int | None = None) -> str:
    """``http://host:port/v1/models/<model>[/versions/<version>]:predict``."""
    path = f"/v1/models/{model}" + (f"/versions/{int(version)}" if version is not None else "")
    return f"http://{host}:{int(port)}{path}:predict"


def as_array(value) -> np.ndarray:
    """Numbers -> their array; bytes -> an object array (numpy's "S" dtype would drop trailing NUL bytes)."""
    if isinstance(value, np.ndarray) and value.dtype.kind not in "SO":
        return value
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) and isinstance(value[0], bytes):
        return np.array(list(value), dtype=object)
    return np.asarray(value)


def _json_value(value) -> list:
    array = as_array(value)
    if array.dtype == object:  # bytes: TF Serving's REST API wants {"b64": ...}
        return [{"b64": base64.b64encode(v).decode("ascii")} for v in array.reshape(-1)]
    return array.tolist()


def rest_body(signature: str, inputs: dict[str, np.ndarray | list], rows: bool = False) -> dict:
    """The JSON body of a ``:predict`` call for ``signature``.

    ``rows=False`` gives the columnar ``inputs`` form (one entry per input
    name); ``rows=True`` the ``instances`` form (one entry per example; with a
    single input the examples are the bare values).
    """
    columns = {name: _json_value(value) for name, value in inputs.items()}
    if not rows:
        return {"signature_name": signature, "inputs": columns}
    if len(columns) == 1:
        return {"signature_name": signature, "instances": next(iter(columns.values()))}
    n = len(next(iter(columns.values())))
    return {"signature_name": signature, "instances": [{k: v[i] for k, v in columns.items()} for i in range(n)]}


def rest_outputs(response: dict) -> dict[str, np.ndarray] | np.ndarray:
    """The ``predictions`` (row form) or ``outputs`` (columnar form) of a response as numpy."""
    if "outputs" in response:
        out = response["outputs"]
        return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out)
    preds = response["predictions"]
    if preds and isinstance(preds[0], dict):
        return {k: np.asarray([p[k] for p in preds]) for k in preds[0]}
    return np.asarray(preds)


def grpc_request(model: str, signature: str, inputs: dict[str, np.ndarray | list], version: int | None = None):
    """A ``PredictRequest`` proto for ``signature`` with one ``TensorProto`` per input."""
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(as_array(value)))
    return request


def grpc_predict(target: str, request, timeout: float = 10.0) -> dict[str, np.ndarray]:
    """Send ``request`` to ``PredictionService/Predict`` at ``target`` (``host:port``); outputs as numpy."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
