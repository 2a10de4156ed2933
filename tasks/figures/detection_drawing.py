"""Drawing detections: boxes, labels with scores, landmarks, on a copy of the image.

Used by the detection figures logged to MLflow and by ``convforge detect``.
Small images are enlarged first (nearest neighbour) so labels stay readable.

Example:
    >>> picture = draw_detections(image, boxes, classes, scores, class_names)
    >>> cv2.imwrite("out.png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def colour_of(class_id: int) -> tuple[int, int, int]:
    """A stable RGB colour per class."""
    return PALETTE[int(class_id) % len(PALETTE)]


def enlarge(image: np.ndarray, min_side: int = 384) -> np.ndarray:
    """RGB uint8 image scaled up (nearest) so its short side is at least ``min_side``."""
    image = np.asarray(image)
    if image.ndim == 2 or image.shape[-1] == 1:
        image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=-1)
    factor = max(1, int(np.ceil(min_side / min(image.shape[:2]))))
    if factor == 1:
        return image.copy()
    return cv2.resize(image, (image.shape[1] * factor, image.shape[0] * factor), interpolation=cv2.INTER_NEAREST)


def draw_detections(image, boxes, classes, scores=None, class_names=None, landmarks=None,
                    colour=None, thickness: int = 2, min_side: int = 384, labels: bool = True) -> np.ndarray:
    """Boxes (normalised ``[ymin, xmin, ymax, xmax]``) with ``name score`` labels; returns RGB uint8.

    ``landmarks``: optional ``[M, K, 2]`` normalised ``(x, y)``. ``colour``
    forces one colour (e.g. white for ground truth), else one per class;
    ``labels=False`` draws the boxes alone.
    """
    out = enlarge(image, min_side)
    h, w = out.shape[:2]
    for i, box in enumerate(np.asarray(boxes).reshape(-1, 4)):
        cls = int(np.asarray(classes).reshape(-1)[i])
        col = colour or colour_of(cls)
        y0, x0, y1, x1 = (np.clip(box, 0, 1) * [h - 1, w - 1, h - 1, w - 1]).round().astype(int)
        cv2.rectangle(out, (x0, y0), (x1, y1), col, thickness)
        if landmarks is not None:
            for x, y in np.asarray(landmarks)[i]:
                cv2.circle(out, (int(round(x * (w - 1))), int(round(y * (h - 1)))), 3, col, -1)
        if not labels:
            continue
        name = class_names[cls] if class_names and cls < len(class_names) else str(cls)
        label = name if scores is None else f"{name} {float(np.asarray(scores).reshape(-1)[i]):.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        ty = y0 - 3 if y0 - th - base - 3 >= 0 else min(y0 + th + 3, h - 1)
        cv2.rectangle(out, (x0, ty - th - 2), (x0 + tw + 2, ty + base - 1), col, -1)
        cv2.putText(out, label, (x0 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def tile(images: list[np.ndarray], columns: int = 4) -> np.ndarray:
    """Lay same-size RGB images out in a grid (blank cells at the end)."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // columns)
    canvas = np.full((rows * h, min(columns, len(images)) * w, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = cv2.resize(im, (w, h))
    return canvas


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
    return path
