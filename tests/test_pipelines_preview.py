"""``convforge augment-preview``: the grid of originals and augmented versions."""

import matplotlib.image as mpimg
import pytest

from tasks.cli.main import main


@pytest.mark.slow
def test_preview_grid_for_a_classification_recipe(workdir):
    out = workdir / "grid.png"
    code = main(["augment-preview", "fashion_mnist_lenet5", "-o", str(out), "--rows", "2", "--versions", "3",
                 "--set", "data.augment=[mirror, {rotate: {degrees: 20}}, {random_crop: {padding: 3}}]"])
    assert code == 0
    grid = mpimg.imread(out)
    assert grid.shape[1] > grid.shape[0] and grid.std() > 0.05  # 4 columns by 2 rows, not blank


@pytest.mark.slow
def test_preview_draws_boxes_and_keypoints_on_scenes(workdir):
    from tasks.figures.augment_preview import _augmented, _samples

    data = {"dataset": "scenes:fashion_mnist", "image_size": [64, 64], "channels": None}
    samples = _samples(data, 2, seed=0)
    rows = _augmented(samples, ["mirror", {"shear": {"degrees": 10}}], versions=3, seed=0)
    assert [len(r) for r in rows] == [3, 3]
    assert all(len(e["boxes"]) and e["keypoints"].shape[1] == 2 for r in rows for e in r)
    out = workdir / "scenes.png"
    assert main(["augment-preview", "scenes_yolo", "-o", str(out), "--rows", "2", "--versions", "2",
                 "--set", "data.image_size=[64, 64]"]) == 0
    assert out.stat().st_size > 5000


def test_preview_refuses_a_bad_policy(workdir, capsys):
    assert main(["augment-preview", "fashion_mnist_lenet5", "--set", "data.augment=[wobble]"]) == 2
    assert "unknown transform 'wobble'" in capsys.readouterr().err
