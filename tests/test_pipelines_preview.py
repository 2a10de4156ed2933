"""``convforge augment-preview``: the grid of originals and augmented versions."""

import matplotlib.image as mpimg
import numpy as np
import pytest

from tasks.cli.main import main

POLICY = "[mirror, {rotate: {degrees: 20}}, {random_crop: {padding: 3}}]"


def _grid(fig) -> dict:
    """``{(row, column): axes}`` from each axes' place in the figure's grid."""
    cells = {}
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        cells[spec.rowspan.start, spec.colspan.start] = ax
    return cells


def _shown(ax) -> np.ndarray:
    assert len(ax.images) == 1
    return np.asarray(ax.images[0].get_array())


def _sources(rows: int) -> list[np.ndarray]:
    """The recipe's first training images, loaded here independently of the preview (seed 42, as the recipe)."""
    from pipelines.splits import load_splits

    return [image[..., 0] for image, _ in load_splits("fashion_mnist", 42, train_limit=rows).train.as_numpy_iterator()]


@pytest.mark.slow
def test_preview_grid_for_a_classification_recipe(workdir):
    from tasks.core.recipe import load_recipe
    from tasks.figures.augment_preview import preview_figure

    rows, versions = 2, 3
    out = workdir / "grid.png"
    code = main(["augment-preview", "fashion_mnist_lenet5", "-o", str(out), "--rows", str(rows), "--versions", str(versions),
                 "--set", f"data.augment={POLICY}"])
    assert code == 0
    png = mpimg.imread(out)
    assert png.std() > 0.05  # not blank
    assert png.shape[1] / png.shape[0] == pytest.approx((versions + 1) / rows, rel=0.02)  # 4 columns by 2 rows

    fig = preview_figure(load_recipe("fashion_mnist_lenet5", [f"data.augment={POLICY}"]), rows, versions)
    cells = _grid(fig)
    assert sorted(cells) == [(r, c) for r in range(rows) for c in range(versions + 1)]  # rows x (versions + 1), no more
    assert cells[0, 0].get_title() == "original"
    assert [cells[0, c].get_title() for c in range(1, versions + 1)] == [f"augmented {c}" for c in range(1, versions + 1)]
    assert [cells[r, 0].get_ylabel() for r in range(rows)] == [f"#{r}" for r in range(rows)]
    assert "mirror" in fig._suptitle.get_text() and "rotate" in fig._suptitle.get_text()
    for r, source in enumerate(_sources(rows)):
        np.testing.assert_array_equal(_shown(cells[r, 0]), source)  # column 0: the source pixels, untouched
        for c in range(1, versions + 1):
            augmented = _shown(cells[r, c])
            assert augmented.shape == source.shape and not np.array_equal(augmented, source)
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.slow
def test_preview_columns_are_draws_of_their_rows_original(workdir):
    """With ``[mirror]`` alone every augmented cell is its row's original or that original mirrored."""
    from tasks.core.recipe import load_recipe
    from tasks.figures.augment_preview import preview_figure

    rows, versions = 3, 6
    fig = preview_figure(load_recipe("fashion_mnist_lenet5", ["data.augment=[mirror]"]), rows, versions)
    cells = _grid(fig)
    flipped = 0
    for r, source in enumerate(_sources(rows)):
        for c in range(1, versions + 1):
            shown = _shown(cells[r, c])
            assert np.array_equal(shown, source) or np.array_equal(shown, source[:, ::-1]), (r, c)
            flipped += not np.array_equal(shown, source)
    assert 0 < flipped < rows * versions  # both outcomes are drawn
    import matplotlib.pyplot as plt

    plt.close(fig)


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
    png = mpimg.imread(out)
    assert png.std() > 0.05 and png.shape[1] / png.shape[0] == pytest.approx(3 / 2, rel=0.02)  # 3 columns by 2 rows


def _rectangles(ax) -> list[tuple[float, float, float, float]]:
    from matplotlib.patches import Rectangle

    return sorted((round(p.get_x(), 3), round(p.get_y(), 3), round(p.get_width(), 3), round(p.get_height(), 3))
                  for p in ax.patches if isinstance(p, Rectangle))


def _box_rectangles(boxes, size: int, mirrored: bool = False) -> list[tuple[float, float, float, float]]:
    """Where [ymin, xmin, ymax, xmax] boxes (fractions) should be drawn on a ``size`` px image (pixel centres)."""
    out = []
    for ymin, xmin, ymax, xmax in np.asarray(boxes).reshape(-1, 4):
        if mirrored:
            xmin, xmax = 1 - xmax, 1 - xmin
        out.append((round(xmin * size - 0.5, 3), round(ymin * size - 0.5, 3), round((xmax - xmin) * size, 3),
                    round((ymax - ymin) * size, 3)))
    return sorted(out)


@pytest.mark.slow
def test_preview_grid_draws_each_rows_boxes_and_keypoints_where_they_are(workdir):
    """scenes_yolo ([mirror]): column 0 shows the scene with its own boxes; every draw shows them, mirrored or not."""
    from tasks.core.recipe import load_recipe
    from tasks.figures.augment_preview import _samples, preview_figure

    rows, versions, size = 2, 4, 64
    recipe = load_recipe("scenes_yolo", [f"data.image_size=[{size}, {size}]"])
    samples = _samples(recipe["data"], rows, seed=recipe["seed"])
    fig = preview_figure(recipe, rows, versions)
    cells = _grid(fig)
    assert sorted(cells) == [(r, c) for r in range(rows) for c in range(versions + 1)]
    flipped = 0
    for r in range(rows):
        np.testing.assert_array_equal(_shown(cells[r, 0]), samples["images"][r])
        assert len(samples["boxes"][r]) >= 1
        assert _rectangles(cells[r, 0]) == _box_rectangles(samples["boxes"][r], size)
        assert len(cells[r, 0].collections) == 1  # the keypoints' scatter
        for c in range(1, versions + 1):
            mirrored = np.array_equal(_shown(cells[r, c]), samples["images"][r][:, ::-1])
            assert mirrored or np.array_equal(_shown(cells[r, c]), samples["images"][r]), (r, c)
            assert _rectangles(cells[r, c]) == _box_rectangles(samples["boxes"][r], size, mirrored), (r, c, mirrored)
            flipped += mirrored
    assert 0 < flipped < rows * versions  # both outcomes drawn, so the boxes were checked mirrored and not
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_preview_refuses_a_bad_policy(workdir, capsys):
    assert main(["augment-preview", "fashion_mnist_lenet5", "--set", "data.augment=[wobble]"]) == 2
    assert "unknown transform 'wobble'" in capsys.readouterr().err
