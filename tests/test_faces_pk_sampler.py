"""P x K batches: P distinct identities, K distinct images each, seeded and repeatable."""

import numpy as np
import pytest

from pipelines.pk_sampler import eligible_classes, pk_batches, pk_indices


def test_every_batch_has_p_identities_with_k_distinct_images():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 9, size=300)
    labels[labels == 8] = 7  # identity 8 absent
    labels[:2] = 8  # ... except two images: too few for k=3, never sampled
    for idx in pk_indices(labels, p=4, k=3, seed=5).take(50):
        idx = idx.numpy()
        assert idx.shape == (12,) and len(set(idx)) == 12
        groups = labels[idx].reshape(4, 3)
        assert (groups == groups[:, :1]).all()  # identity-major: K of the same identity together
        assert len(set(groups[:, 0])) == 4 and 8 not in groups
    assert 8 not in eligible_classes(labels, 3)


def test_sampling_is_repeatable_and_covers_all_identities():
    labels = np.repeat(np.arange(6), 5)
    a = np.stack([i.numpy() for i in pk_indices(labels, 2, 2, seed=1).take(40)])
    b = np.stack([i.numpy() for i in pk_indices(labels, 2, 2, seed=1).take(40)])
    c = np.stack([i.numpy() for i in pk_indices(labels, 2, 2, seed=2).take(40)])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(labels[a.ravel()]) == set(range(6)) and len(set(a.ravel())) == 30


def test_batches_gather_images_in_memory_and_from_files(tmp_path):
    import tensorflow as tf

    labels = np.repeat(np.arange(3), 2)
    images = (np.arange(6, dtype=np.uint8)[:, None, None, None] * 40 * np.ones((1, 4, 4, 1), np.uint8))
    x, y = next(iter(pk_batches(images, labels, p=2, k=2, seed=0)))
    assert x.shape == (4, 4, 4, 1) and x.dtype == tf.uint8
    np.testing.assert_array_equal(x.numpy()[:, 0, 0, 0] // 40 // 2, y.numpy())  # each image matches its label
    paths = []
    for i, im in enumerate(images):
        p = tmp_path / f"{i}.png"
        p.write_bytes(tf.io.encode_png(im).numpy())
        paths.append(str(p))
    x2, y2 = next(iter(pk_batches(np.array(paths), labels, p=2, k=2, seed=0, channels=1, image_size=(8, 8))))
    assert x2.shape == (4, 8, 8, 1)
    np.testing.assert_array_equal(y2.numpy(), y.numpy())
    np.testing.assert_array_equal(x2.numpy()[:, 0, 0, 0], x.numpy()[:, 0, 0, 0])


def test_too_few_identities_is_a_clear_error():
    with pytest.raises(ValueError, match="needs 4 identities"):
        pk_indices(np.repeat(np.arange(3), 5), p=4, k=2)
