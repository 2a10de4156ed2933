"""Detection scenes with real pixels and exact labels: real objects pasted onto real photos.

No packaged detection set is available offline, so scenes are made: crops of
real photographs bundled with scikit-image / scikit-learn are the backgrounds,
and real object images (Fashion-MNIST items, MNIST-style digits: grayscale with
a black background) are scaled, tinted and alpha-blended onto them. Because
the generator places every object itself, each scene's labels are exact:

* ``boxes``: the tight box of the object's visible ink, normalised
  ``[ymin, xmin, ymax, xmax]`` (the project's box convention);
* ``classes``: the object's label;
* ``landmarks``: ``[M, 5, 2]`` normalised ``(x, y)`` points read from the
  object's mask: ink centroid, top, bottom, left and right extreme points
  (``LANDMARK_NAMES``).

Everything is seeded: the same arguments give the same scenes.

Example:
    >>> data = load_arrays("fashion_mnist")
    >>> scenes = make_scenes(data.x_train, data.y_train, background_photos(), 100, seed=0)
    >>> scenes.images.shape, scenes.boxes[0]      # (100, 128, 128, 3), [[ymin, xmin, ymax, xmax], ...]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from pipelines.flip_pairs import FlipPairs

LANDMARK_NAMES = ("centroid", "top", "bottom", "left", "right")
LANDMARK_FLIP = FlipPairs.from_names(LANDMARK_NAMES)  # image sides: mirrors swap left/right, top/bottom
PHOTO_NAMES = ("astronaut", "camera", "chelsea", "coffee", "rocket", "hubble_deep_field", "coins",
               "brick", "grass", "gravel")


@dataclass
class Scenes:
    """Generated scenes: ``images`` uint8 ``[N, H, W, 3]`` and per-scene label arrays."""

    images: np.ndarray
    boxes: list[np.ndarray]  # each [M, 4] float32, normalised [ymin, xmin, ymax, xmax]
    classes: list[np.ndarray]  # each [M] int64
    landmarks: list[np.ndarray]  # each [M, 5, 2] float32, normalised (x, y)
    class_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> Scenes:
        """The scenes at ``index`` (a slice or integer array)."""
        idx = np.arange(len(self))[index]
        return Scenes(self.images[idx], [self.boxes[i] for i in idx], [self.classes[i] for i in idx],
                      [self.landmarks[i] for i in idx], list(self.class_names))


def background_photos() -> list[np.ndarray]:
    """The real photographs bundled with scikit-image and scikit-learn, as RGB uint8."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = [getattr(skimage.data, name)() for name in PHOTO_NAMES]
    photos += list(load_sample_images().images)
    out = []
    for p in photos:
        p = np.asarray(p)
        if p.ndim == 2:
            p = np.repeat(p[..., None], 3, axis=-1)
        out.append(np.ascontiguousarray(p[..., :3]).astype(np.uint8))
    return out


def random_background(photos: list[np.ndarray], size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop (30-100 % of the short side) of a random photo, resized to ``size``, maybe mirrored."""
    photo = photos[rng.integers(len(photos))]
    ph, pw = photo.shape[:2]
    side = int(min(ph, pw) * rng.uniform(0.3, 1.0))
    ch, cw = side, int(min(pw, side * size[1] / size[0]))
    y, x = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    crop = cv2.resize(photo[y : y + ch, x : x + cw], (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return crop[:, ::-1].copy() if rng.random() < 0.5 else crop


def mask_landmarks(mask: np.ndarray) -> np.ndarray:
    """``[5, 2]`` pixel ``(x, y)`` points of a boolean mask: centroid, top, bottom, left, right.

    Extreme points are the mean position of the mask's pixels on its first/last
    row (top/bottom) or column (left/right); pixel centres are at ``+0.5``.
    """
    ys, xs = np.nonzero(mask)
    pts = [(xs.mean(), ys.mean())]
    for sel in (ys == ys.min(), ys == ys.max(), xs == xs.min(), xs == xs.max()):
        pts.append((xs[sel].mean(), ys[sel].mean()))
    return np.asarray(pts, np.float32) + 0.5


def paste_object(canvas: np.ndarray, obj: np.ndarray, top: int, left: int, height: int, width: int,
                 tint: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Alpha-blend a grayscale object (black = transparent) into ``canvas`` in place.

    The object is resized to ``height x width`` and coloured by ``tint`` (RGB in
    [0, 1]); its ink (``alpha > 0.5``) defines the exact box and landmarks.
    Returns ``(box_pixels [y0, x0, y1, x1] (y1, x1 exclusive), landmarks_pixels [5, 2])``
    or None when the object has no visible ink.
    """
    small = cv2.resize(obj.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    alpha = np.clip(small / 40.0, 0.0, 1.0)
    mask = alpha > 0.5
    if not mask.any():
        return None
    colour = (0.35 + 0.65 * small / 255.0)[..., None] * (255.0 * tint)
    region = canvas[top : top + height, left : left + width].astype(np.float32)
    blended = alpha[..., None] * colour + (1.0 - alpha[..., None]) * region
    canvas[top : top + height, left : left + width] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    box = np.array([top + ys.min(), left + xs.min(), top + ys.max() + 1, left + xs.max() + 1], np.float32)
    marks = mask_landmarks(mask) + np.array([left, top], np.float32)
    return box, marks


def _overlap(box: np.ndarray, others: list[np.ndarray]) -> float:
    """Largest IoU of ``box`` with ``others`` (pixel boxes)."""
    best = 0.0
    for o in others:
        ih = max(0.0, min(box[2], o[2]) - max(box[0], o[0]))
        iw = max(0.0, min(box[3], o[3]) - max(box[1], o[1]))
        inter = ih * iw
        union = (box[2] - box[0]) * (box[3] - box[1]) + (o[2] - o[0]) * (o[3] - o[1]) - inter
        best = max(best, inter / union if union > 0 else 0.0)
    return best


def make_scenes(
    objects: np.ndarray,
    labels: np.ndarray,
    photos: list[np.ndarray],
    count: int,
    image_size: tuple[int, int] = (128, 128),
    objects_per_scene: tuple[int, int] = (1, 4),
    object_size: tuple[int, int] = (24, 48),
    max_overlap: float = 0.1,
    seed: int | list[int] = 0,
    class_names: list[str] | None = None,
) -> Scenes:
    """Make ``count`` scenes of ``image_size`` with ``objects_per_scene`` (min, max inclusive) objects.

    Args:
        objects: uint8 ``[N, h, w]`` or ``[N, h, w, 1]`` grayscale objects on black.
        labels: ``[N]`` int class ids.
        photos: RGB uint8 backgrounds (``background_photos()``).
        object_size: pasted side length range in pixels (aspect jittered by up to 25 %).
        max_overlap: largest IoU allowed between two objects' boxes of one scene.
    """
    objects = np.asarray(objects)
    if objects.ndim == 4:
        objects = objects[..., 0]
    labels = np.asarray(labels).astype(np.int64)
    rng = np.random.default_rng(seed)
    h, w = image_size
    images = np.empty((count, h, w, 3), np.uint8)
    all_boxes, all_classes, all_marks = [], [], []
    for n in range(count):
        canvas = random_background(photos, image_size, rng)
        boxes, classes, marks = [], [], []
        wanted = rng.integers(objects_per_scene[0], objects_per_scene[1] + 1)
        for _ in range(wanted * 10):
            if len(boxes) == wanted:
                break
            side = rng.uniform(*object_size)
            aspect = rng.uniform(0.8, 1.25)
            oh, ow = int(round(min(side * aspect, h))), int(round(min(side / aspect, w)))
            top, left = rng.integers(0, h - oh + 1), rng.integers(0, w - ow + 1)
            if _overlap(np.array([top, left, top + oh, left + ow], np.float32), boxes) > max_overlap:
                continue
            i = rng.integers(len(objects))
            tint = rng.uniform(0.3, 1.0, 3)
            tint /= tint.max()
            pasted = paste_object(canvas, objects[i], top, left, oh, ow, tint)
            if pasted is None:
                continue
            boxes.append(pasted[0])
            classes.append(labels[i])
            marks.append(pasted[1])
        images[n] = canvas
        scale = np.array([h, w, h, w], np.float32)
        all_boxes.append((np.array(boxes, np.float32).reshape(-1, 4) / scale).astype(np.float32))
        all_classes.append(np.array(classes, np.int64))
        all_marks.append(np.array(marks, np.float32).reshape(-1, 5, 2) / np.array([w, h], np.float32))
    return Scenes(images, all_boxes, all_classes, all_marks, list(class_names or []))


def scene_stream(objects: np.ndarray, labels: np.ndarray, photos: list[np.ndarray], seed: int = 0,
                 chunk: int = 256, **options) -> Iterator[Scenes]:
    """Endless fresh scenes, ``chunk`` at a time (``make_scenes`` options), each chunk seeded by
    ``(seed, chunk number)``: a training set that never shows a scene twice, reproducibly.

    Example:
        >>> stream = scene_stream(data.x_train, data.y_train, background_photos(), seed=42)
        >>> first = next(stream)          # 256 new scenes; the next call makes 256 others
    """
    for i in itertools.count():
        yield make_scenes(objects, labels, photos, chunk, seed=[seed, 1, i], **options)
