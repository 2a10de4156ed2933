"""Boxes and keypoints move with the pixels (real Fashion-MNIST items on a black canvas)."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.augment import augment_dataset
from pipelines.catalog import load_arrays

SIZE = 96
GEOMETRIC = [{"mirror": {"p": 0.5}}, {"random_crop": {"padding": 8, "scale": [0.6, 1.0]}},
             {"rotate": {"degrees": 30}}, {"shear": {"degrees": 15}}, {"elastic": {"magnitude": 0.04}},
             {"grid_distortion": {"limit": 0.2}}]


def _scenes(count=12):
    fm = load_arrays("fashion_mnist")
    rng = np.random.default_rng(0)
    images, boxes, points = [], [], []
    for i in range(count):
        item = fm.x_test[i, :, :, 0]
        canvas = np.zeros((SIZE, SIZE, 1), np.uint8)
        y, x = rng.integers(4, SIZE - 32, 2)
        canvas[y : y + 28, x : x + 28, 0] = item
        ys, xs = np.nonzero(canvas[..., 0] > 0)
        boxes.append([[ys.min() / SIZE, xs.min() / SIZE, (ys.max() + 1) / SIZE, (xs.max() + 1) / SIZE]])
        # the keypoint: the centre of the brightest pixel
        py, px = np.unravel_index(np.argmax(canvas[..., 0]), canvas.shape[:2])
        points.append([[(px + 0.5) / SIZE, (py + 0.5) / SIZE]])  # (x, y)
        images.append(canvas)
    return np.stack(images), np.array(boxes, np.float32), np.array(points, np.float32)


def _dataset(images, boxes, points):
    return tf.data.Dataset.from_tensor_slices({
        "image": images, "boxes": boxes, "box_labels": np.arange(len(images))[:, None],
        "keypoints": points,
    })


@pytest.mark.slow
def test_object_pixels_stay_inside_the_transformed_box():
    images, boxes, points = _scenes()
    out = list(augment_dataset(_dataset(images, boxes, points), GEOMETRIC, seed=4).as_numpy_iterator())
    checked = 0
    for e in out:
        assert e["image"].shape == (SIZE, SIZE, 1)
        assert len(e["boxes"]) == len(e["box_labels"])
        if not len(e["boxes"]):
            continue
        ymin, xmin, ymax, xmax = e["boxes"][0] * SIZE
        ys, xs = np.nonzero(e["image"][..., 0] > 25)
        # pixel centres (index + 0.5) of the object inside the box, bilinear spread of 1 px allowed
        assert ((ys + 0.5 >= ymin - 1) & (ys + 0.5 <= ymax + 1) & (xs + 0.5 >= xmin - 1) & (xs + 0.5 <= xmax + 1)).all()
        # and it is the box of the moved outline, not the whole image
        object_area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert (ymax - ymin) * (xmax - xmin) < 3 * object_area
        checked += 1
    assert checked >= 8


def test_keypoints_follow_the_marked_pixel():
    images, boxes, points = _scenes()
    marks = np.zeros_like(images)
    for i, (p,) in enumerate(points):  # one bright pixel where the keypoint is
        marks[i, int(p[1] * SIZE), int(p[0] * SIZE), 0] = 255
    out = list(augment_dataset(_dataset(marks, boxes, points), GEOMETRIC, seed=8).as_numpy_iterator())
    visible = 0
    for e in out:
        img = e["image"][..., 0].astype(float)
        if not e["keypoint_visible"][0] or img.sum() < 50:
            continue
        ys, xs = np.nonzero(img)
        w = img[ys, xs]
        centre = np.array([(xs * w).sum() / w.sum() + 0.5, (ys * w).sum() / w.sum() + 0.5])
        np.testing.assert_allclose(e["keypoints"][0] * SIZE, centre, atol=1.0)
        visible += 1
    assert visible >= 8


def test_boxes_that_leave_the_image_are_dropped_with_their_labels():
    images, boxes, points = _scenes(16)
    far = [{"random_crop": {"scale": [0.1, 0.1]}}]  # a tenth of the area: most objects fall outside
    out = list(augment_dataset(_dataset(images, boxes, points), far, seed=2).as_numpy_iterator())
    kept = [len(e["boxes"]) for e in out]
    assert 0 in kept and all(len(e["box_labels"]) == k for e, k in zip(out, kept, strict=True))
    for e in out:
        if not e["keypoint_visible"][0]:
            assert not ((e["keypoints"][0] >= 0) & (e["keypoints"][0] <= 1)).all()
        for box in e["boxes"]:
            assert (box >= 0).all() and (box <= 1).all() and box[2] > box[0] and box[3] > box[1]


def test_whole_pixel_maps_take_the_exact_shortcut():
    from pipelines import geometry

    fm = load_arrays("fashion_mnist")
    images = tf.constant(fm.x_test[:6])
    flips = tf.constant([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    m = geometry.mirror(flips, 28, 28) @ geometry.crop(tf.constant([-3.0, 2.0, 0.0, 4.0, -1.0, 0.0]),
                                                       tf.constant([1.0, -4.0, 3.0, 0.0, 2.0, -2.0]), tf.fill([6], 28.0), tf.fill([6], 28.0), 28, 28)
    exact = geometry.shift_and_flip(images, m).numpy()
    resampled = geometry.warp_images(images, m, []).numpy()
    np.testing.assert_array_equal(exact, np.round(resampled).astype(np.uint8))
    # image 1: crop offset (y 2, x -4), then mirror: out[y, x] = img[y + 2, 31 - x], zero outside
    img, expected = fm.x_test[1, ..., 0], np.zeros((28, 28), np.uint8)
    for y in range(28):
        for x in range(28):
            if y + 2 <= 27 and 0 <= 31 - x <= 27:
                expected[y, x] = img[y + 2, 31 - x]
    np.testing.assert_array_equal(exact[1, ..., 0], expected)
