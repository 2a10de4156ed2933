"""68 face landmarks on real photos (face-api's CNN and the NumPy tree predictor), checked against dlib's
shape_predictor_68_face_landmarks itself."""

import cv2
import numpy as np
import pytest
import skimage.data
from faces_dlib_reference import dlib_68_points, dlib_68_predictor, dlib_models, landmark_errors, real_face_photos

from models.dlib_shape_predictor import ShapePredictor
from tasks.cli.main import main
from tasks.workflows.face_landmarks import face_landmarks

GOAL = 0.08  # mean point error / inter-ocular distance


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return real_face_photos(tmp_path_factory.mktemp("photos"))


def test_numpy_68_point_predictor_equals_dlibs_in_the_same_box(photos):
    detector = dlib_models()[0]
    ours = ShapePredictor.load(parts=68)
    worst = []  # (px, px / box side) per face
    for image in photos.values():
        for rect in detector(image, 1):
            theirs = np.array([[p.x, p.y] for p in dlib_68_predictor()(image, rect).parts()])
            gap = np.abs(ours(image, (rect.left(), rect.top(), rect.right(), rect.bottom())) - theirs).max()
            worst.append((gap, gap / rect.width()))
    px, relative = np.max(worst, axis=0)
    print(f"{len(worst)} faces: worst point difference {px} px, {relative:.4f} of the box side")
    # a pixel comparison can flip on float rounding of the sampled positions and move a point a pixel or two
    assert len(worst) >= 2 and relative <= 0.02


@pytest.mark.parametrize("method", ["cnn", "dlib"])
def test_mtcnn_pipeline_against_dlibs_68_points(photos, method):
    errors = np.array([e for name, image in photos.items()
                       for e in landmark_errors(face_landmarks(image, name=name, method=method)[1], dlib_68_points(image))])
    print(f"{method}, {len(errors)} faces: mean point error / inter-ocular distance: mean {errors.mean():.4f}, "
          f"median {np.median(errors):.4f}, worst {errors.max():.4f}")
    assert len(errors) >= 2 and errors.mean() <= GOAL


def test_landmarks_command_draws_and_refuses_bad_input_in_one_line(photos, tmp_path, capsys):
    src = tmp_path / "grace.png"
    cv2.imwrite(str(src), photos["grace_hopper.jpg"][..., ::-1])
    out = tmp_path / "out" / "grace_landmarks.png"
    assert main(["faces", "landmarks", str(src), "-o", str(out)]) == 0
    assert "1 face(s), 68 landmarks each (cnn)" in capsys.readouterr().out
    drawn = cv2.imread(str(out))
    assert drawn.shape == photos["grace_hopper.jpg"].shape and np.abs(drawn[..., ::-1].astype(int) - photos["grace_hopper.jpg"]).max() > 100
    coffee = tmp_path / "coffee.png"
    cv2.imwrite(str(coffee), skimage.data.coffee()[..., ::-1])
    assert main(["faces", "landmarks", str(coffee), "-o", str(tmp_path / "c.png")]) == 2
    assert capsys.readouterr().err.startswith("error: no face found in")
    assert main(["faces", "landmarks", str(src), "-o", str(tmp_path / "c.gif")]) == 2
    assert "give a .png or .jpg" in capsys.readouterr().err
