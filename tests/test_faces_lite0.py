"""The face encoder on the pretrained EfficientNet-Lite0 trunk: frozen blocks, inference-mode batch norms, export."""

import keras
import numpy as np
import pytest

import models
from models.backbones import backbone_blocks
from models.efficientnet_lite import efficientnet_lite0_features


@pytest.fixture(scope="module")
def encoder():
    return models.build("face_encoder", (28, 28, 1), 0, embedding_dim=16, backbone="efficientnet_lite0", weights="imagenet",
                        resize=32, feature_layer="block6d_add", trainable_blocks=2)


def test_lite0_trunk_is_pretrained_cut_resized_and_only_its_top_blocks_train(encoder):
    trunk = encoder.get_layer("backbone").model
    assert trunk.output.shape[1:] == (1, 1, 192)  # 28 px grey -> 32 px RGB -> block6d (stride 32)
    reference = efficientnet_lite0_features((32, 32, 3), "imagenet", pooling=None)
    np.testing.assert_array_equal(trunk.get_layer("block4a_expand_conv").kernel, reference.get_layer("block4a_expand_conv").kernel)
    blocks = backbone_blocks(trunk, "efficientnet_lite0")
    assert blocks[-1][0].startswith("block6d") and blocks[-2][0].startswith("block6c")
    trainable = {layer.name for layer in trunk.layers if layer.trainable and layer.weights}
    assert trainable == set(blocks[-1] + blocks[-2])
    x = np.random.default_rng(0).integers(0, 256, size=(6, 28, 28, 1), dtype=np.uint8)
    e = np.asarray(encoder(x))
    assert e.shape == (6, 16)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)


def test_a_training_step_keeps_frozen_weights_and_every_trunk_batch_norm_statistic(encoder):
    trunk = encoder.get_layer("backbone").model
    x = np.random.default_rng(1).integers(0, 256, size=(8, 28, 28, 1), dtype=np.uint8)
    features = keras.Model(encoder.inputs, encoder.get_layer("pool").output)
    np.testing.assert_allclose(np.asarray(features(x, training=True)), np.asarray(features(x, training=False)), atol=1e-5)
    before = {w.path: np.array(w) for w in trunk.weights}
    encoder.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    encoder.fit(x, np.ones((8, 16), np.float32) / 4, batch_size=8, epochs=1, verbose=0)
    changed = {w.path for w in trunk.weights if not np.array_equal(np.array(w), before[w.path])}
    top = {layer.name for layer in trunk.layers if layer.trainable and layer.weights}
    assert changed and {p.split("/")[-2] for p in changed} <= top  # gradients reach the top blocks only
    assert not any("moving" in p for p in changed)  # batch norms run in inference mode: statistics fixed


@pytest.mark.slow
def test_lite0_recipe_trains_and_its_export_reloads_with_the_same_embeddings(mlflow_store, workdir):
    import mlflow

    from serving.loader import load_export, predict_arrays, predict_bytes
    from tasks.core.recipe import load_recipe
    from tasks.core.trainer import train

    recipe = load_recipe("faces_fashion_mnist_lite0", [
        "data.train_limit=600", "data.test_limit=200", "model.options.resize=32", "model.options.embedding_dim=16",
        "train.epochs=1", "train.steps_per_epoch=3", "faces.p=4", "faces.k=4", "faces.max_pairs=2000", "faces.one_shot_draws=1",
    ])
    result = train(recipe, workdir)
    assert {"val_auc", "test_auc", "threshold"} <= set(result.metrics)
    x = np.random.default_rng(3).integers(0, 256, size=(4, 28, 28, 1), dtype=np.uint8)
    direct = np.asarray(mlflow.keras.load_model(f"runs:/{result.run_id}/model")(x))
    export = load_export(result.export_path)
    np.testing.assert_allclose(predict_arrays(export, x)["embedding"], direct, atol=1e-5)
    import cv2

    pngs = [cv2.imencode(".png", image)[1].tobytes() for image in x]
    np.testing.assert_allclose(predict_bytes(export, pngs)["embedding"], direct, atol=1e-5)
