"""The default face path on real photos: no --model, no training; dlib's encoder, threshold 0.6, distances printed;
bad input is one error line (exit code 2); the TF Serving export gives the built-in encoder's descriptors."""

import shutil

import cv2
import numpy as np
import pytest
import skimage.data

from pipelines.face_crops import load_rgb
from pipelines.sample_faces import bundled_photos, face_api_photos, person_photos
from tasks.cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    files = {k: str(v) for k, v in [*bundled_photos(d).items(), *person_photos().items()]}
    files["coffee"] = str(d / "coffee.png")
    cv2.imwrite(files["coffee"], skimage.data.coffee()[..., ::-1])
    files["broken"] = str(d / "broken.jpg")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return files


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_enrol_and_identify_with_no_model_and_no_training(photos, capsys, tmp_path):
    """Enrol one real photo per person, identify other real shots of them (obama2, obama3) and a stranger (biden)."""
    g = ["--gallery", str(tmp_path / "faces.db")]
    code, out, _ = _run(capsys, "faces", "enrol", "eileen", photos["astronaut"], *g)
    assert code == 0 and "encoder dlib_face_resnet@55533b28a95800a5" in out
    assert _run(capsys, "faces", "enrol", "grace", photos["grace_hopper"], *g)[0] == 0
    assert _run(capsys, "faces", "enrol", "barack", photos["obama"], *g)[0] == 0
    code, out, _ = _run(capsys, "faces", "identify", photos["obama2"], photos["obama3"], photos["biden"], photos["grace_hopper"], *g)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4, out
    for line in lines[:2]:
        assert ": barack (distance 0." in line and "threshold 0.600)" in line
        assert float(line.split("distance ")[1].split(",")[0]) < 0.45  # the same person in another photo
    assert ": not recognised (distance 0." in lines[2]
    assert float(lines[2].split("distance ")[1].split(",")[0]) > 0.7  # nobody enrolled is Joe Biden
    assert ": grace (distance 0.000" in lines[3]
    code, out, _ = _run(capsys, "faces", "verify", photos["biden"], "--as", "barack", *g)
    assert code == 1 and "is NOT barack (distance" in out
    assert _run(capsys, "faces", "verify", photos["obama2"], "--as", "barack", *g)[0] == 0
    code, out, _ = _run(capsys, "faces", "identify", str(face_api_photos()[0]), *g)
    assert code == 0 and out.count("not recognised (distance") == len(out.splitlines()) >= 3  # strangers


def test_bad_input_is_one_error_line_and_exit_code_2(photos, capsys, tmp_path):
    g = ["--gallery", str(tmp_path / "faces.db")]
    for argv, expected in [
        (["enrol", "mug", photos["coffee"]], "no face found in"),
        (["enrol", "x", photos["broken"]], "cannot be read as a photo"),
    ]:
        code, _, err = _run(capsys, "faces", *argv, *g)
        assert code == 2 and err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    code, _, err = _run(capsys, "faces", "enrol", "crowd", str(face_api_photos()[0]), *g)
    assert code == 2 and "faces; enrol 'crowd' from photos of them alone" in err and err.count("\n") == 1
    assert _run(capsys, "faces", "list", *g)[1].startswith("0 person(s)")  # nothing was written

    from models.dlib_face_resnet import package_weights_path

    corrupt = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    data = bytearray(package_weights_path().read_bytes())
    data[1000] ^= 0x01
    corrupt.write_bytes(bytes(data))
    code, _, err = _run(capsys, "faces", "enrol", "eileen", photos["astronaut"], "--model", str(corrupt), *g)
    assert code == 2 and "is corrupt" in err and "SHA-256" in err and err.count("\n") == 1


def test_export_is_consumed_like_the_builtin_encoder_and_galleries_refuse_another_encoder(photos, capsys, tmp_path):
    from serving.face_encoder import DlibFaceEncoder, FaceEncoder
    from serving.loader import load_export, predict_bytes
    from tasks.workflows.face_alignment import dlib_aligned_faces

    code, out, _ = _run(capsys, "faces", "export", "--export-dir", str(tmp_path / "exports"))
    assert code == 0 and "dlib_face_resnet/1" in out
    export = FaceEncoder(tmp_path / "exports" / "dlib_face_resnet")
    assert (export.threshold, export.distance, export.alignment) == (0.6, "euclidean", "dlib_chip_150")
    chips = np.concatenate([dlib_aligned_faces(load_rgb(photos[k]))[0] for k in ("astronaut", "grace_hopper")])
    builtin = DlibFaceEncoder().encode(chips)
    np.testing.assert_allclose(export.encode(chips), builtin, atol=1e-5)
    pngs = [cv2.imencode(".png", c[..., ::-1])[1].tobytes() for c in chips]
    np.testing.assert_allclose(predict_bytes(load_export(export.path), pngs)["embedding"], builtin, atol=1e-5)

    g = ["--gallery", str(tmp_path / "faces.db")]
    assert _run(capsys, "faces", "enrol", "grace", photos["grace_hopper"], *g)[0] == 0
    code, _, err = _run(capsys, "faces", "identify", photos["grace_hopper"], "--model", str(export.path.parent), *g)
    assert code == 2 and "run `convforge faces reencode`" in err
    assert _run(capsys, "faces", "reencode", "--model", str(export.path.parent), *g)[0] == 0
    code, out, _ = _run(capsys, "faces", "identify", photos["grace_hopper"], *g)  # the gallery now names the export
    assert code == 0 and ": grace (distance 0.000" in out
    shutil.rmtree(tmp_path / "exports")
