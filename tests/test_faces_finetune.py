"""Fine-tuning from dlib's pretrained encoder: the faces_identities recipe on an identity folder of real face
chips, the projection first (trunk frozen), then the top blocks; the export keeps dlib's alignment."""

import cv2
import numpy as np
import pytest

from pipelines.face_api_package import FaceApiUnavailable
from pipelines.face_crops import load_rgb
from pipelines.sample_faces import bundled_photos, face_api_photos
from tasks.workflows.face_alignment import dlib_aligned_faces

pytestmark = pytest.mark.slow


def _jitter(chip, rng):
    m = cv2.getRotationMatrix2D((75, 75), rng.uniform(-6, 6), 1 + rng.uniform(-0.05, 0.05))
    m[:, 2] += rng.uniform(-3, 3, 2)
    out = cv2.warpAffine(chip, m, (150, 150), borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    return np.clip(out * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    """One identity per real face of the sample photos (faces within a group photo are different people), 4 shots each."""
    try:
        paths = list(bundled_photos(tmp_path_factory.mktemp("photos")).values()) + face_api_photos()
    except FaceApiUnavailable as err:
        pytest.skip(f"too few identities without face-api's group photos: {err}")
    root, rng, n = tmp_path_factory.mktemp("identities"), np.random.default_rng(0), 0
    for p in paths:
        for chip in dlib_aligned_faces(load_rgb(p))[0]:
            (root / f"id{n:02d}").mkdir()
            for v in range(4):
                cv2.imwrite(str(root / f"id{n:02d}" / f"{v}.png"), (chip if v == 0 else _jitter(chip, rng))[..., ::-1])
            n += 1
    assert n >= 20
    return root


def test_two_stage_fine_tuning_from_dlibs_encoder(identities, tmp_path, mlflow_store, capsys):
    import keras

    from serving.face_encoder import FaceEncoder
    from tasks.core.recipe import load_recipe
    from tasks.core.trainer import train

    recipe = load_recipe("faces_identities", [
        f"data.dataset=folder:{identities}", "data.val_fraction=0.25", "faces.unseen_fraction=0.25",
        "faces.p=5", "faces.k=3", "train.steps_per_epoch=2", "faces.max_pairs=2000", "faces.one_shot_draws=1",
        "faces.stages=[{train: head, epochs: 1, learning_rate: 0.001}, {train: top_k, k: 2, epochs: 1, learning_rate: 0.0001}]",
    ])
    from models import build

    start = build("face_encoder", (150, 150, 3), 0, backbone="dlib_face_resnet", weights="dlib")
    before = {w.path: np.array(w) for w in start.weights}
    result = train(recipe, tmp_path)
    out = capsys.readouterr().out
    assert "stage 1/2: train head (0 trunk layers)" in out and "stage 2/2: train top_k 2" in out
    assert result.metrics["test_auc"] > 0.9  # unseen identities, starting from dlib's descriptor
    import mlflow

    tuned = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    changed = {w.path.split("/")[-2] for w in tuned.weights if not np.allclose(np.array(w), before.get(w.path, np.array(w)))}
    assert {"projection", "level0_block1_conv2"} <= changed <= {"projection", "level1_block3_conv1", "level1_block3_conv2",
                                                           "level0_block1_conv1", "level0_block1_conv2"}, changed
    assert isinstance(tuned.get_layer("embedding"), keras.layers.UnitNormalization)
    encoder = FaceEncoder(result.export_path)
    assert (encoder.alignment, encoder.distance) == ("dlib_chip_150", "squared_l2")
    chip = dlib_aligned_faces(load_rgb(next(identities.glob("id00/0.png"))))[0]
    np.testing.assert_allclose(np.linalg.norm(encoder.encode(chip), axis=1), 1.0, rtol=1e-5)
