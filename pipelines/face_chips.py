"""dlib's 150x150 face chips, pixel for pixel, and where to look for dlib's landmarks from MTCNN's.

dlib's face encoder is fed ``get_face_chip(image, shape, size=150,
padding=0.25)``: a similarity transform (rotation, uniform scale, shift;
least squares, Umeyama) maps the five points of dlib's landmark predictor
(outer and inner corner of each eye, image-right eye first, and the base of
the nose) onto a template, the unit face grown by ``padding`` on each side and
scaled to ``size`` px (dlib/image_transforms/interpolation.h,
``get_face_chip_details``). The template at size 150, padding 0.25 (x, y px):

==================  ======  ======
dlib point          x       y
==================  ======  ======
0 right eye outer   110.96  46.35
1 right eye inner   89.61   47.90
2 left eye outer    37.06   46.37
3 left eye inner    58.41   47.91
4 nose base         74.01   87.78
==================  ======  ======

``extract_chip`` then samples exactly as dlib's ``extract_image_chip``: the
chip covers a square of ``size * scale - 1`` px centred on the chip centre's
image, halved through dlib's image pyramid while it is over twice the chip,
sampled bilinearly, truncated to uint8, black outside the photo. Given the
same five points, the chips equal dlib's (tested pixel for pixel).

MTCNN's five points (eye centres, nose tip, mouth corners) are another
definition, and chips aligned on them directly give descriptors ~0.15 away
from dlib's. So convforge runs dlib's own 5-point predictor
(``models.dlib_shape_predictor``) inside a box placed from MTCNN's points the
way dlib's HOG detector frames a face (``face_box``): in the frame where
MTCNN's points sit on dlib's mean face (``MTCNN_TEMPLATE``), HOG's box is
centred at (0.482, 0.474) with side 1.272 (mean over the 21 faces both
detectors find in the sample photos, ``pipelines.sample_faces``; std 0.05,
0.06 and 0.10).

Example:
    >>> box = face_box(face.landmarks)                   # face from pipelines.face_crops.detect_faces
    >>> points = predictor(photo, box)                   # models.dlib_shape_predictor.ShapePredictor
    >>> dlib_chip(photo, points).shape
    (150, 150, 3)
"""

from __future__ import annotations

import numpy as np

CHIP_SIZE = 150
PADDING = 0.25

# dlib's 5-point chip template (unit face): get_face_chip_details.
DLIB_5_POINTS = np.array(
    [[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677], [0.1205750620789, 0.2137274526848],
     [0.3340850613712, 0.2290642403242], [0.4901123135679, 0.6277975316475]],
    np.float64,
)
# dlib's mean 68-point face (unit face) at MTCNN's points: eye centres (mean of points 36-41, 42-47),
# nose tip (30), mouth corners (48, 54); "left" = the image's left.
MTCNN_TEMPLATE = np.array(
    [
        [np.mean([0.121737, 0.187122, 0.265825, 0.334606, 0.260918, 0.182743]),
         np.mean([0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077])],
        [np.mean([0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335]),
         np.mean([0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099])],
        [0.490127, 0.515625],
        [0.254149, 0.780233],
        [0.726104, 0.780233],
    ],
    np.float64,
)
HOG_BOX_CENTRE = (0.482, 0.474)  # dlib's HOG face box in MTCNN_TEMPLATE's frame (measured, see above)
HOG_BOX_SIDE = 1.272


def chip_template(size: int = CHIP_SIZE, padding: float = PADDING, unit: np.ndarray = DLIB_5_POINTS) -> np.ndarray:
    """Template points (default dlib's five) in a ``size`` x ``size`` chip with ``padding``: float64 ``[K, 2]``."""
    return (padding + unit) / (1 + 2 * padding) * size


def face_box(mtcnn_landmarks: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) where dlib's HOG detector would frame the face whose MTCNN points are given."""
    from skimage.transform import SimilarityTransform

    to_unit = SimilarityTransform.from_estimate(np.asarray(mtcnn_landmarks, np.float64), MTCNN_TEMPLATE)
    if not to_unit or not np.all(np.isfinite(to_unit.params)) or to_unit.scale <= 0:
        raise ValueError("the face landmarks are degenerate (all in one place); cannot align")
    cx, cy = to_unit.inverse(np.array([HOG_BOX_CENTRE]))[0]
    half = HOG_BOX_SIDE / to_unit.scale / 2
    return round(cx - half), round(cy - half), round(cx + half), round(cy + half)


def dlib_chip(image: np.ndarray, landmarks: np.ndarray, size: int = CHIP_SIZE, padding: float = PADDING,
              template: np.ndarray | None = None) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` and landmarks ``[K, 2]`` -> the aligned chip uint8 ``[size, size, 3]``.

    ``template``: where the landmarks go in the chip, in px (default: dlib's
    five points, ``chip_template()``). Sampled as dlib's ``extract_image_chip`` does.
    """
    from skimage.transform import SimilarityTransform

    target = chip_template(size, padding) if template is None else np.asarray(template, np.float64)
    to_image = SimilarityTransform.from_estimate(target, np.asarray(landmarks, np.float64))  # chip -> image
    if not to_image or not np.all(np.isfinite(to_image.params)):
        raise ValueError("the face landmarks are degenerate (all in one place); cannot align")
    return extract_chip(np.ascontiguousarray(image, np.uint8), to_image.params, size)


def extract_chip(image: np.ndarray, chip_to_image: np.ndarray, size: int) -> np.ndarray:
    """dlib's ``chip_details`` + ``extract_image_chip`` for a similarity ``chip_to_image`` (3x3): uint8 ``[size, size, C]``.

    The chip covers a square of side ``size * scale`` centred on the chip
    centre's image; a pyramid (dlib's 5-tap [1 4 6 4 1] filter, every other
    pixel) shrinks the photo while that square would still be more than twice
    the chip; bilinear sampling, truncated to uint8, zero outside the photo.
    """
    m = chip_to_image
    angle = np.arctan2(m[1, 0], m[0, 0])
    scale = np.hypot(m[0, 0], m[1, 0])
    centre = m[:2, :2] @ np.array([size / 2.0, size / 2.0]) + m[:2, 2]
    half = (size * scale - 1) / 2.0
    rect = np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])  # l, t, r, b
    grow, probe = 2, _rect_down(rect)
    while _area(probe) > size * size:
        probe, grow = _rect_down(probe), grow * 2 + 2
    corners = _rotated_corners(rect, angle)
    h, w = image.shape[:2]
    box = np.concatenate([np.rint(corners.min(0)) - grow, np.rint(corners.max(0)) + grow]).astype(np.int64)
    box = np.maximum(box, [0, 0, 0, 0]).clip(None, [w - 1, h - 1, w - 1, h - 1])
    source = image[box[1] : box[3] + 1, box[0] : box[2] + 1]
    rect = rect - np.array([box[0], box[1], box[0], box[1]], np.float64)
    while _area(_rect_down(rect)) > size * size:
        rect, source = _rect_down(rect), pyramid_down(source)
    tl, tr, bl = _rotated_corners(rect, angle)[:3]
    c, r = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    x = tl[0] + c * (tr[0] - tl[0]) / (size - 1) + r * (bl[0] - tl[0]) / (size - 1)
    y = tl[1] + c * (tr[1] - tl[1]) / (size - 1) + r * (bl[1] - tl[1]) / (size - 1)
    return bilinear(source, x, y)


def _area(rect: np.ndarray) -> float:
    w, h = rect[2] - rect[0] + 1, rect[3] - rect[1] + 1
    return 0.0 if w <= 0 or h <= 0 else float(w * h)


def _rect_down(rect: np.ndarray) -> np.ndarray:
    """A rectangle's corners in the next pyramid level (dlib's ``pyramid_down<2>::point_down``)."""
    return rect / 2.0 - np.array([1.25, 0.75, 1.25, 0.75])


def _rotated_corners(rect: np.ndarray, angle: float) -> np.ndarray:
    """tl, tr, bl, br of ``rect`` rotated by ``angle`` about its centre: ``[4, 2]``."""
    left, top, right, bottom = rect
    centre = np.array([(left + right) / 2.0, (top + bottom) / 2.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (np.array([[left, top], [right, top], [left, bottom], [right, bottom]]) - centre) @ rot.T + centre


def pyramid_down(image: np.ndarray) -> np.ndarray:
    """One level of dlib's ``pyramid_down<2>``: 5-tap [1 4 6 4 1]/16 filter each way, every other pixel, floor."""
    h, w = image.shape[:2]
    if h <= 8 or w <= 8:
        return image[:0, :0]
    x = image.astype(np.uint32)
    n, m = (w - 3) // 2, (h - 3) // 2
    rows = x[:, 0 : 2 * n : 2] + 4 * x[:, 1 : 2 * n + 1 : 2] + 6 * x[:, 2 : 2 * n + 2 : 2] + 4 * x[:, 3 : 2 * n + 3 : 2] + x[:, 4 : 2 * n + 4 : 2]
    out = rows[0 : 2 * m : 2] + 4 * rows[1 : 2 * m + 1 : 2] + 6 * rows[2 : 2 * m + 2 : 2] + 4 * rows[3 : 2 * m + 3 : 2] + rows[4 : 2 * m + 4 : 2]
    return (out // 256).astype(np.uint8)


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample ``image`` at float pixel positions (x, y) (dlib's ``interpolate_bilinear``): 0 where a neighbour is outside."""
    h, w = image.shape[:2]
    left, top = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    inside = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    li, ti = np.where(inside, left, 0), np.where(inside, top, 0)
    fx, fy = (x - left)[..., None], (y - top)[..., None]
    px = image.astype(np.float64)
    if not inside.any():
        return np.zeros((*x.shape, image.shape[2]), np.uint8)
    value = (1 - fy) * ((1 - fx) * px[ti, li] + fx * px[ti, li + 1]) + fy * ((1 - fx) * px[ti + 1, li] + fx * px[ti + 1, li + 1])
    return np.where(inside[..., None], value, 0).astype(np.uint8)


def dlib_chips(image: np.ndarray, landmarks: list[np.ndarray] | np.ndarray, size: int = CHIP_SIZE, padding: float = PADDING) -> np.ndarray:
    """Chips of several faces of one photo: uint8 ``[F, size, size, 3]``."""
    return np.stack([dlib_chip(image, lm, size, padding) for lm in landmarks]) if len(landmarks) else np.zeros((0, size, size, 3), np.uint8)
