"""Mirroring a landmark dataset swaps its symmetric labels (real Fashion-MNIST items)."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.annotations import Annotated
from pipelines.augment import augment_dataset
from pipelines.catalog import load_arrays
from pipelines.flip_pairs import FlipPairs
from pipelines.scenes import LANDMARK_FLIP, LANDMARK_NAMES, mask_landmarks

SIZE, K = 64, len(LANDMARK_NAMES)
MIRRORS = [{"mirror": {"p": 0.5}}, {"mirror": {"p": 0.5, "vertical": True}}, {"random_crop": {"padding": 3}}]


def test_pairs_from_names_follow_the_naming_convention():
    assert LANDMARK_FLIP.horizontal == ((3, 4),) and LANDMARK_FLIP.vertical == ((1, 2),)
    face = FlipPairs.from_names(["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"])
    assert face.horizontal == ((0, 1), (3, 4)) and face.vertical == ()
    assert face.permutation("horizontal") == [1, 0, 2, 4, 3]
    coco = FlipPairs.from_names(["nose", "left_eye", "right_eye", "Left_Ear", "Right_Ear"], sides="subject")
    assert coco.horizontal == coco.vertical == ((1, 2), (3, 4))  # every mirror changes handedness
    corners = FlipPairs.from_names(["top_left", "top_right", "bottom_left", "bottom_right"])
    assert corners.horizontal == ((0, 1), (2, 3)) and corners.vertical == ((0, 2), (1, 3))
    with pytest.raises(ValueError, match="disjoint index pairs in 0..2"):
        FlipPairs(("a", "b", "c"), horizontal=((0, 3),))
    with pytest.raises(ValueError, match="sides must be one of"):
        FlipPairs.from_names(["left", "right"], sides="viewer")
    ann = Annotated(keypoints=[np.zeros((1, 2, 2), np.float32)], keypoint_names=["left_hand", "right_hand"])
    assert ann.flip_pairs().horizontal == ((0, 1),) and Annotated().flip_pairs() is None


def _two_objects(count=24):
    """Two items per image, one per channel (so each object's ink is known exactly), with
    their five scene landmarks (centroid, top, bottom, left, right) as 2 x 5 keypoints."""
    fm = load_arrays("fashion_mnist")
    rng = np.random.default_rng(1)
    images, points = [], []
    for i in range(count):
        canvas = np.zeros((SIZE, SIZE, 2), np.uint8)
        marks = []
        for c in range(2):
            y, x = rng.integers(5, SIZE - 28 - 5, 2)
            canvas[y : y + 28, x : x + 28, c] = fm.x_test[2 * i + c, :, :, 0]
            marks.append(mask_landmarks(canvas[..., c] > 0) / SIZE)
        images.append(canvas)
        points.append(np.concatenate(marks))
    return np.stack(images), np.stack(points).astype(np.float32)


def _augmented(images, points, visible, flip_pairs):
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "keypoints": points, "keypoint_visible": visible})
    return list(augment_dataset(ds, MIRRORS, seed=6, flip_pairs=flip_pairs).as_numpy_iterator())


def test_mirrored_landmarks_swap_their_labels_and_visibility():
    images, points = _two_objects()
    visible = np.ones(points.shape[:2], bool)
    visible[:, 3] = False  # the first object's "left" point is hidden
    swapped, plain = _augmented(images, points, visible, LANDMARK_FLIP), _augmented(images, points, visible, None)
    mirrored = 0
    for out, raw in zip(swapped, plain, strict=True):
        assert (out["image"] == raw["image"]).all()  # pixels are the same draw either way
        # every label names the landmark it names on the augmented image's own ink
        expected = np.concatenate([mask_landmarks(out["image"][..., c] > 0) for c in range(2)]) / SIZE
        np.testing.assert_allclose(out["keypoints"], expected, atol=1e-5)
        # the hidden point is whichever label now sits on the leftmost ink of object 0
        flipped_h = raw["keypoints"][3, 0] > raw["keypoints"][4, 0]
        assert out["keypoint_visible"].tolist() == [True] * 3 + [bool(flipped_h), not flipped_h] + [True] * 5
        mirrored += not np.allclose(raw["keypoints"], expected, atol=1e-5)
    assert mirrored >= 12  # without flip pairs the mirrored images' labels are wrong
