"""Alignment as dlib's encoder expects: dlib's chips pixel for pixel, dlib's landmarks in NumPy, and the whole
convforge pipeline (MTCNN + landmarks + chip + Keras encoder) against dlib's whole pipeline on real photos."""

import numpy as np
import pytest
from faces_dlib_reference import dlib_faces, dlib_models, real_face_photos

from models.dlib_face_resnet import dlib_face_resnet
from models.dlib_shape_predictor import ShapePredictor
from pipelines.face_chips import dlib_chip, pyramid_down
from tasks.workflows.face_alignment import dlib_aligned_faces

MEDIAN_GOAL = 0.10  # the same face through both pipelines; a decision is at 0.6


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Every real face photo available: the bundled ones, plus face-api's group photos when the npm registry gives them."""
    return real_face_photos(tmp_path_factory.mktemp("photos"))


def test_chips_equal_dlibs_pixel_for_pixel_given_dlibs_points(photos):
    n = 0
    for image in photos.values():
        for face in dlib_faces(image):
            np.testing.assert_array_equal(dlib_chip(image, face.landmarks), face.chip)
            n += 1
    assert n >= 3
    odd = np.random.default_rng(0).integers(0, 256, (37, 52, 3), dtype=np.uint8)
    assert pyramid_down(odd).shape == (17, 24, 3)  # dlib's (n - 3) / 2


def test_numpy_landmark_predictor_matches_dlibs(photos):
    detector, predictor, _ = dlib_models()
    ours = ShapePredictor.load()
    errors = []
    for image in photos.values():
        for rect in detector(image, 1):
            theirs = np.array([[p.x, p.y] for p in predictor(image, rect).parts()])
            errors.append(np.abs(ours(image, (rect.left(), rect.top(), rect.right(), rect.bottom())) - theirs).max())
    errors = np.array(errors)
    print(f"{len(errors)} faces: {np.mean(errors == 0):.0%} identical, worst {errors.max()} px")
    assert errors.max() <= 1 and np.mean(errors == 0) >= 0.7  # float rounding may move a point by one pixel


def test_whole_pipeline_against_dlibs_on_every_face(photos):
    encoder = dlib_face_resnet()
    distances = []
    for name, image in photos.items():
        chips, faces = dlib_aligned_faces(image, name=name)
        ours = np.asarray(encoder(chips))
        for face in dlib_faces(image):
            eye_distance = np.linalg.norm(face.landmarks[0] - face.landmarks[2])
            gaps = [np.linalg.norm(f.landmarks[2] - face.landmarks[4]) for f in faces]  # MTCNN nose tip vs dlib nose base
            if min(gaps) > 0.5 * eye_distance:
                continue  # a face one detector finds and the other does not
            distances.append(float(np.linalg.norm(ours[int(np.argmin(gaps))] - face.descriptor)))
    distances = np.array(distances)
    print(f"{len(distances)} faces: convforge vs dlib pipeline distance median {np.median(distances):.4f}, max {distances.max():.4f}")
    assert len(distances) >= 2 and np.median(distances) <= MEDIAN_GOAL and distances.max() < 0.3
