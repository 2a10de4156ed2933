"""The whole face path on real photos: detect, align, encode, enrol, identify, "not recognised".

A small encoder is trained here from scratch through ``convforge train`` (task ``faces``, recipe
``faces_identities`` with its pretrained trunk switched off) on an
identity folder of real faces: the aligned MTCNN crops of scikit-image's LFW
faces, each face one identity seen through a few small pose/light changes.
The people enrolled and identified afterwards (the astronaut Eileen Collins,
Grace Hopper, the cameraman) are not in that training set.
"""

import os
import shutil

import cv2
import matplotlib.cbook
import numpy as np
import pytest
import skimage.data

from pipelines.face_crops import face_crops, load_rgb
from tasks.cli.main import main

pytestmark = pytest.mark.slow

GRACE = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


def _jitter(image, rng, degrees=6, scale=0.08, shift=3, light=18):
    """A slightly different 'photo': rotated, scaled, shifted, brighter or darker."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-degrees, degrees), 1 + rng.uniform(-scale, scale))
    m[:, 2] += rng.uniform(-shift, shift, 2) * w / 112
    out = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    return np.clip(out + rng.uniform(-light, light), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    astronaut = skimage.data.astronaut()
    files = {"astronaut": d / "astronaut.png", "grace": d / "grace.jpg", "camera": d / "camera.png",
             "astronaut_later": d / "astronaut_later.jpg", "coffee": d / "coffee.png", "broken": d / "broken.jpg"}
    cv2.imwrite(str(files["astronaut"]), astronaut[..., ::-1])
    shutil.copy(GRACE, files["grace"])
    cv2.imwrite(str(files["camera"]), skimage.data.camera())
    later = cv2.resize(_jitter(astronaut, rng, degrees=8, light=20), None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(files["astronaut_later"]), later[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
    cv2.imwrite(str(files["coffee"]), skimage.data.coffee()[..., ::-1])
    files["broken"].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return {k: str(v) for k, v in files.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train a tiny encoder on an identity folder of real LFW face crops; returns (workdir, export, run id)."""
    from tasks.core.recipe import load_recipe
    from tasks.core.trainer import train

    work = tmp_path_factory.mktemp("faces_train")
    root = work / "identities"
    rng = np.random.default_rng(1)
    lfw = skimage.data.lfw_subset()[:100]  # the first 100 are faces
    people = 0
    for i, face in enumerate(lfw):
        try:
            crop = face_crops(face, size=64, min_confidence=0.9)[0][0]
        except ValueError:
            continue
        people += 1
        (root / f"lfw{i:03d}").mkdir(parents=True)
        for v in range(6):
            cv2.imwrite(str(root / f"lfw{i:03d}" / f"{v}.png"), crop if v == 0 else _jitter(crop, rng))
    assert people >= 60
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    try:
        recipe = load_recipe("faces_identities", [
            f"data.dataset=folder:{root}", "data.image_size=[32, 32]", "data.channels=1", "data.val_fraction=0.15",
            "model.options.backbone=null", "model.options.weights=null", "faces.stages=[]",  # a small CNN from scratch
            "model.options.widths=[16, 32, 64]", "model.options.embedding_dim=32",
            "train.epochs=3", "train.steps_per_epoch=40", "faces.p=12", "faces.k=3",
        ])
        result = train(recipe, work)
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
    return work, result


def test_mtcnn_finds_and_aligns_the_faces_and_refuses_photos_without_one(photos):
    for key in ("astronaut", "grace", "camera", "astronaut_later"):
        crops, faces = face_crops(load_rgb(photos[key]), size=112, name=key)
        assert crops.shape == (1, 112, 112, 3) and faces[0].confidence > 0.95
        left_eye, right_eye = faces[0].landmarks[:2]
        assert left_eye[0] < right_eye[0]
    with pytest.raises(ValueError, match="no face found in coffee"):
        face_crops(load_rgb(photos["coffee"]), name="coffee")
    with pytest.raises(ValueError, match="cannot be read"):
        load_rgb(photos["broken"])


def test_enrol_identify_remove_not_recognised_through_the_cli(trained, photos, capsys, tmp_path):
    work, result = trained
    db = str(tmp_path / "faces.db")
    g = ["--gallery", db]
    assert main(["faces", "enrol", "eileen", photos["astronaut"], "--model", str(result.export_path), *g]) == 0
    assert main(["faces", "enrol", "grace", photos["grace"], *g]) == 0  # the gallery remembers the encoder
    assert main(["faces", "enrol", "camera man", photos["camera"], *g]) == 0
    capsys.readouterr()

    assert main(["faces", "identify", photos["astronaut_later"], photos["grace"], *g]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert ": eileen (distance" in lines[0] and ": grace (distance" in lines[1]
    assert main(["faces", "verify", photos["astronaut_later"], "--as", "eileen", *g]) == 0
    assert main(["faces", "verify", photos["astronaut_later"], "--as", "grace", *g]) == 1

    assert main(["faces", "remove", "eileen", *g]) == 0
    capsys.readouterr()
    assert main(["faces", "identify", photos["astronaut_later"], "--index", "faiss", *g]) == 0
    assert ": not recognised (distance" in capsys.readouterr().out
    assert main(["faces", "list", *g]) == 0
    listing = capsys.readouterr().out
    assert "2 person(s)" in listing and "camera man: 1" in listing and "eileen" not in listing

    # a photo without a face: one clear line, exit code 2, the gallery untouched
    assert main(["faces", "enrol", "mug", photos["coffee"], *g]) == 2
    assert "error: no face found in" in capsys.readouterr().err
    assert main(["faces", "verify", photos["grace"], "--as", "nobody", *g]) == 2


def test_another_encoder_is_refused_until_reencode(trained, photos, capsys, tmp_path):
    work, result = trained
    db = str(tmp_path / "faces.db")
    assert main(["faces", "enrol", "grace", photos["grace"], "--model", str(result.export_path), "--gallery", db]) == 0
    other = work / "exports" / "faces_other" / "1"
    shutil.copytree(result.export_path, other)  # a different export (name/version) of an encoder
    capsys.readouterr()
    assert main(["faces", "identify", photos["grace"], "--model", str(other), "--gallery", db]) == 2
    assert "run `convforge faces reencode`" in capsys.readouterr().err
    assert main(["faces", "reencode", "--model", str(other), "--gallery", db]) == 0
    capsys.readouterr()
    assert main(["faces", "identify", photos["grace"], "--gallery", db]) == 0
    assert ": grace (distance" in capsys.readouterr().out


def test_exported_encoder_reloads_and_returns_the_same_embeddings(trained, photos):
    import mlflow

    from serving.face_encoder import FaceEncoder
    from serving.loader import load_export, predict_arrays, predict_bytes
    from serving.verification import read_verification

    work, result = trained
    meta = read_verification(result.export_path)
    assert 0 < meta["threshold"] < 4 and meta["embedding_dim"] == 32 and meta["input_shape"] == [32, 32, 1]
    assert result.metrics["val_auc"] > 0.9 and result.metrics["test_auc"] > 0.8
    crops = np.concatenate([face_crops(load_rgb(photos[k]), size=112)[0] for k in ("astronaut", "grace")])
    served = FaceEncoder(result.export_path).encode(crops)  # RGB, any size: grey and resized inside
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, rtol=1e-5)

    grey = np.stack([cv2.resize(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA) for c in crops])[..., None]
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    try:
        keras_model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    finally:
        mlflow.set_tracking_uri(None)
    direct = np.asarray(keras_model(grey))
    export = load_export(result.export_path)
    np.testing.assert_allclose(predict_arrays(export, grey)["embedding"], direct, atol=1e-5)
    pngs = [cv2.imencode(".png", g)[1].tobytes() for g in grey]
    np.testing.assert_allclose(predict_bytes(export, pngs)["embedding"], direct, atol=1e-5)


def test_crop_command_turns_an_identity_folder_of_photos_into_aligned_crops(photos, tmp_path, capsys):
    src = tmp_path / "photos"
    (src / "eileen").mkdir(parents=True)
    (src / "mug").mkdir()
    shutil.copy(photos["astronaut"], src / "eileen" / "a.png")
    shutil.copy(photos["coffee"], src / "mug" / "c.png")
    assert main(["faces", "crop", str(src), str(tmp_path / "crops"), "--size", "64"]) == 0
    assert "skipped {'no_face_or_unreadable': 1}" in capsys.readouterr().out
    crop = cv2.imread(str(tmp_path / "crops" / "eileen" / "a.png"))
    assert crop.shape == (64, 64, 3) and not (tmp_path / "crops" / "mug").exists()


def test_a_gallery_that_is_not_a_database_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "faces.db"
    bad.write_bytes(b"this is not SQLite" * 100)
    assert main(["faces", "list", "--gallery", str(bad)]) == 2
    assert "cannot be opened" in capsys.readouterr().err


def test_a_large_photo_is_searched_shrunk_and_cut_at_full_size():
    from pipelines.face_crops import MAX_DETECT_SIDE, find_faces

    astronaut = skimage.data.astronaut()
    big = cv2.resize(astronaut, None, fx=5, fy=5, interpolation=cv2.INTER_CUBIC)  # 2560 px: over the detection side
    assert max(big.shape[:2]) > MAX_DETECT_SIDE
    work, scale, faces = find_faces(big)
    assert work.shape == big.shape and scale == 1.0  # faces come back in the full photo's pixels
    reference = find_faces(astronaut)[2][0]
    assert len(faces) == 1 and np.abs(faces[0].landmarks / 5 - reference.landmarks).max() < 3
    crop_big, crop_small = face_crops(big)[0][0], face_crops(astronaut)[0][0]
    assert np.abs(crop_big.astype(float) - crop_small).mean() < 20  # the same face, cut at full size
