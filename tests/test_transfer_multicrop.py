"""Multi-crop: the crops are exactly the documented positions (checked against NumPy slicing)."""

import numpy as np
import pytest
import tensorflow as tf

from tasks.evaluation.multicrop import crop_offsets, enlarge, multicrop, multicrop_probabilities


@pytest.fixture
def batch():
    return np.random.default_rng(0).integers(0, 256, size=(3, 10, 12, 2), dtype=np.uint8)


def test_ten_crop_is_four_corners_centre_and_their_mirrors(batch):
    crops = multicrop(batch, (7, 8), "10crop").numpy()
    assert crops.shape == (3, 10, 7, 8, 2)
    five = [batch[:, :7, :8], batch[:, :7, -8:], batch[:, -7:, :8], batch[:, -7:, -8:], batch[:, 1:8, 2:10]]
    for i, expected in enumerate(five):
        np.testing.assert_array_equal(crops[:, i], expected)
        np.testing.assert_array_equal(crops[:, 5 + i], expected[:, :, ::-1])


def test_three_crop_and_one_crop(batch):
    landscape = multicrop(batch, (8, 8), "3crop").numpy()
    for i, x0 in enumerate([0, 2, 4]):
        np.testing.assert_array_equal(landscape[:, i], batch[:, 1:9, x0 : x0 + 8])
    portrait = np.transpose(batch, (0, 2, 1, 3))  # 12 x 10
    crops = multicrop(portrait, (8, 8), "3crop").numpy()
    for i, y0 in enumerate([0, 2, 4]):
        np.testing.assert_array_equal(crops[:, i], portrait[:, y0 : y0 + 8, 1:9])
    np.testing.assert_array_equal(multicrop(batch, (6, 6), "1crop").numpy()[:, 0], batch[:, 2:8, 3:9])
    assert len(crop_offsets(10, 12, 7, 8, "10crop")) == 10
    with pytest.raises(ValueError, match="unknown"):
        crop_offsets(10, 12, 7, 8, "5crop")


def test_probabilities_are_the_mean_over_crops_of_the_enlarged_image(batch):
    weights = np.random.default_rng(1).normal(size=(10 * 12 * 2, 4)).astype(np.float32)

    def predict(x):  # a fixed linear softmax "model" on flattened pixels
        flat = tf.reshape(tf.cast(x, tf.float32) / 255.0, [tf.shape(x)[0], -1])
        return tf.nn.softmax(flat @ weights)

    out = multicrop_probabilities(predict, batch, "10crop", crop_fraction=0.8).numpy()
    big = enlarge(tf.constant(batch), 0.8).numpy()
    assert big.shape[1:3] == (12, 15)
    manual = []
    for top, left, mirrored in crop_offsets(12, 15, 10, 12, "10crop"):
        crop = big[:, top : top + 10, left : left + 12]
        manual.append(predict(crop[:, :, ::-1] if mirrored else crop).numpy())
    np.testing.assert_allclose(out, np.mean(manual, axis=0), atol=1e-6)
    np.testing.assert_allclose(multicrop_probabilities(predict, batch, "single").numpy(), predict(batch).numpy(), atol=1e-7)
