"""Each transform's defining property, on real images (skimage photos, Fashion-MNIST)."""

import math

import numpy as np
import pytest
import tensorflow as tf
from skimage import data
from skimage.transform import resize

from pipelines.augment import augment_dataset
from pipelines.augment_policy import needs_pca, validate_policy
from pipelines.pca_colour import PcaColour, fit_pca


def _photo(name="camera", size=64):
    image = getattr(data, name)()
    image = resize(image, (size, size), anti_aliasing=True, preserve_range=True)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image[..., None] if image.ndim == 2 else image


def _run(images, policy, seed=3, pca=None, labels=None):
    labels = np.arange(len(images)) if labels is None else labels
    ds = augment_dataset(tf.data.Dataset.from_tensor_slices((images, labels)), policy, seed, pca)
    out = list(ds.as_numpy_iterator())
    return np.stack([o[0] for o in out]), np.array([o[1] for o in out])


def test_mirror_is_an_exact_flip_and_labels_pass_through():
    image = _photo("astronaut")
    out, labels = _run(np.stack([image] * 20), [{"mirror": {"p": 1.0}}])
    assert (out == image[:, ::-1]).all()
    assert (labels == np.arange(20)).all()
    half, _ = _run(np.stack([image] * 40), ["mirror"])
    flipped = [(o == image[:, ::-1]).all() for o in half]
    same = [(o == image).all() for o in half]
    assert all(f or s for f, s in zip(flipped, same, strict=True)) and 5 < sum(flipped) < 35


def test_random_crop_windows_lie_inside_and_differ_per_image():
    image = _photo("camera", 40)
    pad = 4
    padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)])
    out, _ = _run(np.stack([image] * 16), [{"random_crop": {"padding": pad}}])  # one micro-batch
    offsets = []
    for o in out:
        hits = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                if (padded[dy : dy + 40, dx : dx + 40] == o).all()]
        assert len(hits) == 1, "every crop is exactly one window of the zero-padded image"
        offsets.append(hits[0])
    assert len(set(offsets)) >= 8


def _marker_position(policy, y, x, size=64):
    """Where a marked pixel of a real photo lands: centroid of (marked - unmarked) outputs."""
    image = _photo("camera", size)
    marked = image.copy()
    marked[y, x] = 255 if image[y, x] < 128 else 0
    out, _ = _run(np.stack([image, marked]), policy, seed=11)
    diff = np.abs(out[1].astype(float) - out[0].astype(float))[..., 0]
    diff[diff < 3] = 0
    ys, xs = np.nonzero(diff)
    w = diff[ys, xs]
    return np.array([(ys * w).sum() / w.sum(), (xs * w).sum() / w.sum()])


@pytest.mark.parametrize("degrees", [30.0, -65.0])
def test_rotation_moves_a_marked_pixel_where_the_matrix_says(degrees):
    y, x, c = 14, 40, (64 - 1) / 2
    t = math.radians(degrees)  # counter-clockwise on screen, y pointing down
    expected = [c - math.sin(t) * (x - c) + math.cos(t) * (y - c), c + math.cos(t) * (x - c) + math.sin(t) * (y - c)]
    got = _marker_position([{"rotate": {"degrees": [degrees, degrees]}}], y, x)
    np.testing.assert_allclose(got, expected, atol=0.5)


def test_shear_moves_a_marked_pixel_where_the_matrix_says():
    y, x, c = 10, 30, (64 - 1) / 2
    k = math.tan(math.radians(20))
    got = _marker_position([{"shear": {"degrees": [20, 20]}}], y, x)
    np.testing.assert_allclose(got, [y, x + k * (c - y)], atol=0.5)  # the top leans right
    k = math.tan(math.radians(-15))
    got = _marker_position([{"shear": {"degrees": [-15, -15], "axis": "y"}}], y, x)
    np.testing.assert_allclose(got, [y + k * (x - c), x], atol=0.5)


@pytest.mark.parametrize("warp", [{"elastic": {"magnitude": 0.05}}, {"grid_distortion": {"limit": 0.3}}])
def test_local_warps_move_pixels_smoothly_and_boundedly(warp):
    image = _photo("coins", 64)
    out, _ = _run(np.stack([image] * 4), [warp], seed=5)
    assert all((o != image).mean() > 0.2 for o in out)  # the picture moved
    got = _marker_position([warp], 30, 33)
    bound = 0.05 * 64 if "elastic" in warp else 0.3 * 64  # largest possible displacement
    assert np.abs(got - [30, 33]).max() <= bound + 1


def test_pca_fit_matches_numpy_covariance():
    images = np.stack([_photo(n, 48) for n in ("astronaut", "coffee", "chelsea")])
    pca = fit_pca(images)
    cov = np.cov(images.reshape(-1, 3).astype(np.float64).T / 255.0)
    for i in range(3):
        np.testing.assert_allclose(cov @ pca.eigenvectors[:, i], pca.eigenvalues[i] * pca.eigenvectors[:, i], atol=1e-9)
    np.testing.assert_allclose(pca.eigenvectors.T @ pca.eigenvectors, np.eye(3), atol=1e-9)
    assert pca.eigenvalues[0] >= pca.eigenvalues[1] >= pca.eigenvalues[2] >= 0


def test_pca_colour_shifts_lie_along_stored_eigenvectors(tmp_path):
    photos = np.stack([_photo(n, 32) for n in ("astronaut", "coffee", "chelsea")])
    fitted = PcaColour.load(fit_pca(photos).save(tmp_path / "pca_colour.json"))
    image = (64 + _photo("chelsea", 32) // 2).astype(np.uint8)  # mid-range: no clipping
    batch = np.stack([image] * 48)
    # only the first component has variance: every shift is a multiple of p1
    only_first = PcaColour(fitted.eigenvalues * [1, 0, 0], fitted.eigenvectors, fitted.mean, fitted.pixels)
    out, _ = _run(batch, [{"pca_colour": {"std": 0.5}}], pca=only_first)
    deltas = out.astype(float) - batch
    assert (deltas == deltas[:, :1, :1]).all(), "one shift per image, the same for every pixel"
    d = deltas[:, 0, 0]
    p1 = fitted.eigenvectors[:, 0]
    residual = d - np.outer(d @ p1, p1)
    assert np.abs(residual).max() <= 0.9  # rounding to whole levels only
    # full decomposition: coefficients on p_i, divided by lambda_i, are the alphas ~ N(0, std)
    out, _ = _run(batch, [{"pca_colour": {"std": 0.5}}], pca=fitted, seed=9)
    coeff = (out.astype(float) - batch)[:, 0, 0] @ fitted.eigenvectors / 255.0
    alpha1 = coeff[:, 0] / fitted.eigenvalues[0]
    assert 0.3 < alpha1.std() < 0.7 and abs(alpha1.mean()) < 0.25


def test_colour_shift_is_one_offset_per_channel_within_range():
    image = (40 + _photo("coffee", 32) // 2).astype(np.uint8)
    out, _ = _run(np.stack([image] * 16), [{"colour_shift": {"shift": 30}}])
    deltas = out.astype(int) - image
    per_channel = deltas[:, :1, :1, :]
    assert (deltas == per_channel).all() and np.abs(per_channel).max() <= 30
    assert np.unique(per_channel.reshape(16, 3), axis=0).shape[0] == 16


FULL = ["mirror", {"random_crop": {"padding": 2, "scale": [0.7, 1.0]}}, {"rotate": {"degrees": 15}},
        {"shear": {"degrees": 10}}, "elastic", {"colour_shift": {"shift": 10}}]


def test_seeded_runs_repeat_exactly_and_epochs_differ():
    from pipelines.catalog import load_arrays

    fm = load_arrays("fashion_mnist")
    x, y = fm.x_train[:40], fm.y_train[:40]

    def build(seed):
        return augment_dataset(tf.data.Dataset.from_tensor_slices((x, y)), FULL, seed)

    a, b = build(7), build(7)
    assert a.element_spec == tf.data.Dataset.from_tensor_slices((x, y)).element_spec
    first = np.stack([e[0] for e in a.as_numpy_iterator()])
    again = np.stack([e[0] for e in b.as_numpy_iterator()])
    second_epoch = np.stack([e[0] for e in a.as_numpy_iterator()])
    assert (first == again).all()
    assert (first != second_epoch).any()
    other = np.stack([e[0] for e in build(8).as_numpy_iterator()])
    assert (first != other).any()


def test_unknown_sizes_go_image_by_image_with_the_same_structure():
    images = [_photo("camera", 30), _photo("camera", 44)]
    ds = tf.data.Dataset.from_generator(
        lambda: ((im, i) for i, im in enumerate(images)),
        output_signature=(tf.TensorSpec([None, None, 1], tf.uint8), tf.TensorSpec([], tf.int64)),
    )
    out = augment_dataset(ds, FULL, seed=1)
    assert out.element_spec == ds.element_spec
    assert [e[0].shape for e in out.as_numpy_iterator()] == [(30, 30, 1), (44, 44, 1)]


def test_policy_validation_names_the_bad_entry():
    assert [s.name for s in validate_policy(["flip", {"color_shift": {"shift": 5}}])] == ["mirror", "colour_shift"]
    with pytest.raises(ValueError, match="unknown transform 'blur'"):
        validate_policy(["mirror", "blur"])
    with pytest.raises(ValueError, match=r"step 1 \(rotate\): unknown option 'degree'"):
        validate_policy([{"rotate": {"degree": 3}}])
    with pytest.raises(ValueError, match="option 'p' must be between 0 and 1"):
        validate_policy([{"mirror": {"p": 2}}])
    with pytest.raises(ValueError, match="must be a list"):
        validate_policy("mirror")
    assert needs_pca(["mirror", "pca_colour"]) and not needs_pca(["mirror"])
    with pytest.raises(ValueError, match="no PcaColour"):
        augment_dataset(tf.data.Dataset.from_tensor_slices((np.zeros((2, 8, 8, 3), np.uint8), [0, 1])), ["pca_colour"], 1)


def test_batched_datasets_get_per_image_draws_too():
    from pipelines.augment import augment_batches

    image = _photo("camera", 40)
    batches = tf.data.Dataset.from_tensor_slices((np.stack([image] * 32), np.arange(32))).batch(16)
    flipped = next(augment_batches(batches, [{"mirror": {"p": 1.0}}], seed=1).as_numpy_iterator())[0]
    assert (flipped == image[:, ::-1]).all()
    out = [b[0] for b in augment_batches(batches, [{"random_crop": {"padding": 4}}], seed=1).as_numpy_iterator()]
    again = [b[0] for b in augment_batches(batches, [{"random_crop": {"padding": 4}}], seed=1).as_numpy_iterator()]
    assert all((a == b).all() for a, b in zip(out, again, strict=True))
    assert len({o.tobytes() for o in out[0]}) >= 8  # different windows inside one batch


def test_the_light_list_of_augmentation_names_is_the_implemented_one():
    from pipelines.augment import SAMPLERS
    from pipelines.augment_policy import ALIASES, AUGMENTATIONS, TRANSFORMS

    assert list(AUGMENTATIONS) == list(TRANSFORMS) == list(SAMPLERS)  # every policy name is rendered
    assert set(ALIASES.values()) <= set(TRANSFORMS)


def test_the_policy_checks_without_importing_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from pipelines.augment_policy import validate_policy; "
            "assert [s.kind for s in validate_policy(['flip', 'elastic', 'pca_color'])] == ['affine', 'warp', 'colour']; "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
