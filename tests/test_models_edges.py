"""Edge filters against a NumPy cross-correlation, the learned-filter claim, and `convforge edges`."""

import keras
import numpy as np
import pytest
import skimage.data

from models.edges import edge_detector, edge_kernels, learn_kernel


def correlate_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Plain NumPy 'valid' cross-correlation (what a conv layer computes)."""
    h, w = image.shape
    out = np.zeros((h - 2, w - 2))
    for i in range(3):
        for j in range(3):
            out += kernel[i, j] * image[i : i + h - 2, j : j + w - 2]
    return out


def test_notes_kernels_and_sign():
    vertical, horizontal = edge_kernels("notes")
    np.testing.assert_array_equal(vertical, [[1, 0, -1]] * 3)
    np.testing.assert_array_equal(horizontal, [[1, 1, 1], [0, 0, 0], [-1, -1, -1]])
    light_dark = np.zeros((1, 6, 6, 1), np.uint8)
    light_dark[:, :, :3] = 255  # light left half, dark right half
    maps = np.asarray(edge_detector()(light_dark))
    assert maps.shape == (1, 4, 4, 2)  # n - f + 1
    np.testing.assert_allclose(maps[0, :, :, 0], [[0, 3, 3, 0]] * 4)  # light -> dark: positive
    dark_light = 255 - light_dark
    np.testing.assert_allclose(np.asarray(edge_detector()(dark_light))[0, :, :, 0], [[0, -3, -3, 0]] * 4)
    np.testing.assert_allclose(maps[..., 1], 0)  # no horizontal edge


@pytest.mark.parametrize("kind", ["notes", "sobel", "scharr"])
def test_fixed_filters_match_numpy_on_a_photo(kind):
    camera = skimage.data.camera()[100:164, 200:280]
    model = edge_detector(kind)
    assert not model.trainable_weights
    maps = np.asarray(model(camera[None, :, :, None]))[0]
    vertical, horizontal = edge_kernels(kind)
    image = camera.astype(np.float64) / 255
    np.testing.assert_allclose(maps[..., 0], correlate_valid(image, vertical), atol=1e-4)
    np.testing.assert_allclose(maps[..., 1], correlate_valid(image, horizontal), atol=1e-4)


def real_patches(n_per_image: int = 8, size: int = 48) -> np.ndarray:
    """Grayscale float patches from real photos and textures bundled with scikit-image."""
    rng = np.random.default_rng(0)
    out = []
    for image in (skimage.data.camera(), skimage.data.brick(), skimage.data.gravel(), skimage.data.grass()):
        image = image.astype(np.float32) / 255
        for _ in range(n_per_image):
            i, j = rng.integers(0, image.shape[0] - size), rng.integers(0, image.shape[1] - size)
            out.append(image[i : i + size, j : j + size])
    return np.stack(out)[..., None]


@pytest.mark.slow
def test_a_random_3x3_conv_learns_the_vertical_filter():
    target = edge_kernels("notes")[0]
    start = np.asarray(keras.initializers.RandomNormal(stddev=0.5, seed=0)((3, 3, 1, 1)))[:, :, 0, 0]
    learned = learn_kernel(real_patches(), target, seed=0)
    assert np.abs(start - target).max() > 0.5  # learn_kernel's own random start is far from the answer
    assert np.abs(learned - target).max() < 0.1, np.round(learned, 3)


def test_edges_command_writes_the_figure(workdir):
    from tasks.cli.main import main

    skimage.io.imsave(workdir / "chelsea.png", skimage.data.chelsea())
    assert main(["edges", str(workdir / "chelsea.png"), "-o", str(workdir / "edges.png")]) == 0
    figure = skimage.io.imread(workdir / "edges.png")
    assert figure.shape[1] > 3 * figure.shape[0]  # four panels side by side
    assert main(["edges", str(workdir / "missing.jpg"), "-o", "x.png"]) == 2
