"""TF Serving requests (REST JSON and gRPC protos) for every signature of a real export.

No TF Serving binary exists here, so each request is checked by decoding it the
way TF Serving does (JSON -> tensors with b64 strings; TensorProto ->
ndarray), feeding the decoded tensors to the export's own signature, and
comparing with calling the signature directly.
"""

import base64
import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

import models
from pipelines.catalog import load_arrays
from pipelines.decode import decode_image
from serving.export import export_classifier
from serving.loader import predict_arrays, predict_bytes
from serving.tf_serving_client import grpc_request, rest_body, rest_outputs, rest_url, signature_inputs


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    data = load_arrays("fashion_mnist")
    model = models.build("lenet5", (28, 28, 1), 10)
    path = export_classifier(model, tmp_path_factory.mktemp("exp"), "fashion", data.class_names, decode=decode_image)
    images = data.x_test[:3]
    pngs = [tf.io.encode_png(im).numpy() for im in images]
    return path, tf.saved_model.load(str(path)), images, pngs


def inputs_for(signature, images, pngs):
    return {"images": images} if signature == "serving_default" else {"image_bytes": pngs}


def decode_rest(body, specs):
    """What TF Serving does with a REST body: JSON values -> tensors of the signature's dtypes."""
    def tensor(values, spec):
        if spec.dtype == tf.string:
            return tf.constant([base64.b64decode(v["b64"]) for v in values])
        return tf.constant(np.asarray(values, dtype=spec.dtype.as_numpy_dtype))

    if "inputs" in body:
        return {k: tensor(v, specs[k]) for k, v in body["inputs"].items()}
    (name, spec), = specs.items()
    return {name: tensor(body["instances"], spec)}


def test_signatures_are_read_from_the_export(export):
    path, *_ = export
    specs = signature_inputs(path)
    assert set(specs) == {"serving_default", "serving_bytes"}
    assert specs["serving_default"]["images"].dtype == tf.uint8
    assert specs["serving_default"]["images"].shape.as_list() == [None, None, None, 1]
    assert specs["serving_bytes"]["image_bytes"].dtype == tf.string


def test_rest_url():
    assert rest_url("127.0.0.1", 8501, "fashion") == "http://127.0.0.1:8501/v1/models/fashion:predict"
    assert rest_url("h", 1, "m", 3) == "http://h:1/v1/models/m/versions/3:predict"


@pytest.mark.parametrize("rows", [False, True])
@pytest.mark.parametrize("signature", ["serving_default", "serving_bytes"])
def test_rest_body_feeds_the_signature(export, signature, rows):
    path, served, images, pngs = export
    body = json.loads(json.dumps(rest_body(signature, inputs_for(signature, images, pngs), rows=rows)))
    assert body["signature_name"] == signature
    assert ("instances" in body) == rows
    tensors = decode_rest(body, signature_inputs(path)[signature])
    out = {k: v.numpy() for k, v in served.signatures[signature](**tensors).items()}
    want = predict_arrays(served, images) if signature == "serving_default" else predict_bytes(served, pngs)
    np.testing.assert_array_equal(out["class_id"], want["class_id"])
    np.testing.assert_allclose(out["probabilities"], want["probabilities"], rtol=1e-6)


def test_png_bytes_survive_b64_exactly(export):
    *_, pngs = export
    body = rest_body("serving_bytes", {"image_bytes": pngs + [b"ends with nul\x00\x00"]})
    decoded = [base64.b64decode(v["b64"]) for v in body["inputs"]["image_bytes"]]
    assert decoded == pngs + [b"ends with nul\x00\x00"]


@pytest.mark.parametrize("signature", ["serving_default", "serving_bytes"])
def test_grpc_request_round_trips(export, signature):
    path, served, images, pngs = export
    inputs = inputs_for(signature, images, pngs)
    wire = grpc_request("fashion", signature, inputs, version=1).SerializeToString()
    request = predict_pb2.PredictRequest.FromString(wire)
    assert (request.model_spec.name, request.model_spec.signature_name, request.model_spec.version.value) == ("fashion", signature, 1)
    (name, spec), = signature_inputs(path)[signature].items()
    assert list(request.inputs) == [name]
    tensor = tf.make_ndarray(request.inputs[name])
    if spec.dtype == tf.string:
        assert list(tensor) == pngs
    else:
        assert tensor.dtype == np.uint8
        np.testing.assert_array_equal(tensor, images)
    out = served.signatures[signature](**{name: tf.constant(tensor)})
    np.testing.assert_array_equal(out["class_id"].numpy(), predict_arrays(served, images)["class_id"])


def test_rest_outputs_both_forms():
    columnar = {"outputs": {"class_id": [1, 2], "probabilities": [[0.1, 0.9], [0.8, 0.2]]}}
    rows = {"predictions": [{"class_id": 1, "probabilities": [0.1, 0.9]}, {"class_id": 2, "probabilities": [0.8, 0.2]}]}
    for response in (columnar, rows):
        out = rest_outputs(response)
        np.testing.assert_array_equal(out["class_id"], [1, 2])
        np.testing.assert_allclose(out["probabilities"], [[0.1, 0.9], [0.8, 0.2]])
