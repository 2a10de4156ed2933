"""Face crops from photos: MTCNN detection, 5-point alignment, a fixed-size crop.

MTCNN (Zhang et al. 2016; the ``mtcnn`` package ships its weights) finds each
face's box and five landmarks (eyes, nose, mouth corners). A similarity
transform (rotation, uniform scale, shift; least squares, Umeyama 1991) maps
the landmarks onto the usual 112x112 template (eyes level, at fixed places),
so every crop shows the face at the same pose and scale before the encoder
sees it. Photos smaller than ``MIN_SIDE`` pixels are upscaled first (MTCNN
does not look for faces under 20 px); photos larger than ``MAX_DETECT_SIDE``
are searched on a shrunk copy (MTCNN's image pyramid on a 25 Mpx photo needs
gigabytes), the faces mapped back and cut from the full-size photo.

Errors (an unreadable file, no face found) raise ``ValueError`` with the
image's name.

Example:
    >>> crops, faces = face_crops(load_rgb("ada.jpg"), size=112, name="ada.jpg")
    >>> crops.shape, faces[0].confidence
    ((1, 112, 112, 3), 0.999)
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The landmark template of a 112x112 aligned face (left eye, right eye, nose,
# left and right mouth corner; "left" = the image's left), as used by ArcFace.
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float64,
)
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
MIN_SIDE = 96
MAX_DETECT_SIDE = 2048


@dataclass(frozen=True)
class Face:
    """One detection: box ``(x, y, w, h)``, confidence, landmarks ``[5, 2]`` (x, y) in image pixels."""

    box: tuple[int, int, int, int]
    confidence: float
    landmarks: np.ndarray


def load_rgb(source: str | os.PathLike | bytes) -> np.ndarray:
    """A photo file (or its bytes) -> uint8 ``[H, W, 3]`` RGB, EXIF rotation applied."""
    from PIL import ImageOps, UnidentifiedImageError

    from pipelines.decode import ImageTooLarge, open_image

    name = "image bytes" if isinstance(source, bytes) else str(source)
    try:
        with open_image(source, name) as im:  # the shared size guard: a bomb is refused before decoding
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"), np.uint8)
    except ImageTooLarge:
        raise
    except FileNotFoundError:
        raise ValueError(f"image {name} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"image {name} cannot be read as a photo ({type(err).__name__}); give a JPEG or PNG file") from None


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (the gallery's source-image hash)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 grey ``[H, W]``/``[H, W, 1]``, RGB or RGBA -> uint8 ``[H, W, 3]``; floats in [0, 1] are scaled."""
    x = np.asarray(image)
    if x.dtype != np.uint8:
        x = np.clip(np.round(x * 255.0 if x.max() <= 1.0 else x), 0, 255).astype(np.uint8)
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.ascontiguousarray(x[..., :3])


@functools.lru_cache(maxsize=1)
def _detector():
    from mtcnn import MTCNN

    return MTCNN()


def detect_faces(image: np.ndarray, min_confidence: float = 0.9) -> list[Face]:
    """MTCNN faces in a uint8 RGB image ``[H, W, 3]`` with confidence >= ``min_confidence``, most confident first."""
    found = _detector().detect_faces(to_rgb(image))
    faces = [
        Face(
            tuple(int(v) for v in f["box"]),
            float(f["confidence"]),
            np.array([f["keypoints"][k] for k in LANDMARKS], np.float64),
        )
        for f in found
        if float(f["confidence"]) >= min_confidence
    ]
    return sorted(faces, key=lambda f: -f.confidence)


def align(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp ``image`` so ``landmarks`` ``[5, 2]`` land on the template scaled to ``size``; uint8 ``[size, size, 3]``."""
    import cv2
    from skimage.transform import SimilarityTransform

    transform = SimilarityTransform.from_estimate(np.asarray(landmarks, np.float64), TEMPLATE_112 * (size / 112.0))
    if not transform:
        raise ValueError("the face landmarks are degenerate (all in one place); cannot align")
    return cv2.warpAffine(to_rgb(image), transform.params[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def find_faces(image: np.ndarray, min_confidence: float = 0.9, name: str = "image") -> tuple[np.ndarray, float, list[Face]]:
    """MTCNN on a photo, upscaled first when smaller than ``MIN_SIDE`` (MTCNN misses faces under ~20 px).

    Returns ``(work, scale, faces)``: the RGB image to cut faces from
    (``image`` times ``scale``), the scale, and the faces in ``work``'s pixels
    (``faces_in_photo`` maps them back). A photo whose longer side exceeds
    ``MAX_DETECT_SIDE`` is searched on a copy shrunk to that side; its faces
    come back in the full photo's pixels (``scale`` 1). ``ValueError`` names
    ``name`` when there is no face.
    """
    import cv2

    rgb = to_rgb(image)
    scale = max(1.0, MIN_SIDE / min(rgb.shape[:2]))
    shrink = min(1.0, MAX_DETECT_SIDE / max(rgb.shape[:2]))
    if shrink < 1:
        small = cv2.resize(rgb, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        work, scale, faces = rgb, 1.0, faces_in_photo(detect_faces(small, min_confidence), shrink)
    else:
        work = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale > 1 else rgb
        faces = detect_faces(work, min_confidence)
    if not faces:
        raise ValueError(f"no face found in {name} (MTCNN confidence >= {min_confidence}); give a photo with a visible face")
    return work, scale, faces


def faces_in_photo(faces: list[Face], scale: float) -> list[Face]:
    """Faces found in a copy scaled by ``scale`` (``find_faces``) -> boxes and landmarks in the photo's pixels."""
    if scale == 1:
        return faces
    return [Face(tuple(int(round(v / scale)) for v in f.box), f.confidence, f.landmarks / scale) for f in faces]


def face_crops(image: np.ndarray, size: int = 112, min_confidence: float = 0.9, name: str = "image") -> tuple[np.ndarray, list[Face]]:
    """Detect and align every face: (crops uint8 ``[F, size, size, 3]``, faces), most confident first.

    Landmarks and boxes are in the coordinates of ``image`` (after any upscaling
    they are mapped back). ``ValueError`` names ``name`` when there is no face.
    """
    work, scale, faces = find_faces(image, min_confidence, name)
    crops = np.stack([align(work, f.landmarks, size) for f in faces])
    return crops, faces_in_photo(faces, scale)



def square_crop(image: np.ndarray, centre: tuple[float, float], side: float, size: int,
                angle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The square of ``side`` px around ``centre`` (x, y) of RGB ``image``, turned by ``angle`` radians, as ``size`` px.

    The square's top edge runs along ``angle`` (0: upright; the angle of a
    face's eye line makes the face upright); black outside the photo.
    Returns (uint8 ``[size, size, 3]``, ``M`` float ``[2, 3]`` mapping crop
    pixels to ``image`` pixels: ``xy_image = xy_crop @ M[:, :2].T + M[:, 2]``).
    """
    import cv2

    c, s = np.cos(angle) * side / size, np.sin(angle) * side / size
    linear = np.array([[c, -s], [s, c]])
    matrix = np.hstack([linear, (np.asarray(centre, np.float64) - linear @ np.array([size / 2, size / 2]))[:, None]])
    crop = cv2.warpAffine(to_rgb(image), matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, matrix
