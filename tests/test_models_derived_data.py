"""Sequences and clips derived from real images, and the conv arithmetic of the 1D/3D nets built on them."""

import numpy as np
import pytest

import models
from models.conv_arithmetic import layer_table
from pipelines.catalog import load_arrays
from pipelines.derived import derive


@pytest.fixture(scope="module")
def images():
    data = load_arrays("fashion_mnist")
    return data.x_test[:8], data.y_test[:8]


def test_rows_and_raster_keep_every_pixel_in_order(images):
    x, y = images
    seq, labels = derive("rows", x, y)
    assert seq.shape == (8, 28, 28) and labels is y
    np.testing.assert_array_equal(seq[3, 5], x[3, 5, :, 0])  # step 5 = image row 5
    raster, _ = derive("raster", x, y)
    assert raster.shape == (8, 784, 1)
    np.testing.assert_array_equal(raster[2, 28 * 7 + 9, 0], x[2, 7, 9, 0])


def test_clip_slides_the_real_image(images):
    x, y = images
    clip, _ = derive({"clip": {"frames": 5, "step": 3}}, x, y)
    assert clip.shape == (8, 5, 28, 28, 1) and clip.dtype == np.uint8
    np.testing.assert_array_equal(clip[:, 2], x)  # the middle frame is the image where it was
    np.testing.assert_array_equal(clip[:, 3, :, 3:], x[:, :, :-3])  # one frame later: 3 px to the right
    np.testing.assert_array_equal(clip[:, 0, :, :-6], x[:, :, 6:])  # first frame: 6 px to the left
    assert not clip[:, 4, :, :6].any()  # vacated pixels are zero
    with pytest.raises(ValueError, match="unknown derivation"):
        derive("columns", x, y)


@pytest.mark.parametrize("name,spec,options", [
    ("convnet1d", "rows", {}),
    ("resnet1d", "raster", {"width": 0.125}),
    ("convnet3d", {"clip": {"frames": 4}}, {}),
    ("resnet3d", {"clip": {"frames": 4}}, {"width": 0.125}),
])
def test_1d_3d_arithmetic_matches_keras(name, spec, options, images):
    x, _ = derive(spec, *images)
    model = models.build(name, x.shape[1:], 10, **options)
    rows = layer_table(model)  # asserts every conv/pool formula against the built layer
    assert sum(r.params for r in rows) == model.count_params()
    assert any(r.kind in ("Conv1D", "Conv3D") and r.multiplies > 0 for r in rows)
