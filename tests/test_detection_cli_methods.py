"""``convforge detect --method windows|rcnn``: the notes' first detectors run on picture files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from models.sliding_windows import naive_window_scores, window_stride
from pipelines.catalog import load_arrays
from pipelines.scenes import background_photos, make_scenes
from tasks.cli.main import main
from tasks.workflows import region_classifier as rc


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    data = load_arrays("fashion_mnist")
    scenes = make_scenes(data.x_test[:50], data.y_test[:50], background_photos(), 2, seed=7)
    folder = tmp_path_factory.mktemp("scenes")
    paths = []
    for i, image in enumerate(scenes.images):
        paths.append(folder / f"scene{i}.png")
        Image.fromarray(image).save(paths[-1])
    return scenes, paths


@pytest.mark.parametrize("method", rc.METHODS)
def test_detect_method_draws_what_the_workflow_finds(method, scene_files, tmp_path, capsys):
    scenes, paths = scene_files
    clf, names = rc.train_region_classifier(method, scenes=40, epochs=1)
    saved = rc.save_classifier(clf, names, tmp_path / f"{method}.keras")
    reloaded, reloaded_names = rc.load_classifier(saved)
    assert reloaded_names == names and len(names) == 10

    found = rc.detect_regions(method, reloaded, scenes.images[0], len(names), score_threshold=0.0)
    assert found.boxes.shape == (len(found.scores), 4) and np.all(np.diff(found.scores) <= 1e-6)
    if method == "windows":  # the convolutional pass scores the very windows the naive loop crops
        naive = naive_window_scores(reloaded, scenes.images[0], window_stride(reloaded))
        assert found.notes["windows"] == naive.shape[0] * naive.shape[1]
        assert found.notes["max_score_difference"] < 1e-4

    out = tmp_path / "drawn.png"
    code = main(["detect", "--method", method, "--classifier", str(saved), "--threshold", "0.0",
                 str(paths[0]), str(paths[1]), "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.count("detection(s)") == 2 and f"{paths[0]}: {len(found.scores)} detection(s)" in printed
    drawn = np.asarray(Image.open(out))
    assert drawn.ndim == 3 and drawn.shape[1] > drawn.shape[0]  # two pictures side by side


def test_detect_refuses_an_export_without_images(tmp_path, capsys):
    assert main(["detect", str(tmp_path)]) == 2
    assert "give an export folder then at least one image" in capsys.readouterr().err
