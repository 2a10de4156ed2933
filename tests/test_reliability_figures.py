"""Figures cost a bounded amount whatever the class count and label length (600 classes used to mean
a 36,000 px canvas and 23.7 GB), and a figure that fails never costs a run its model or export."""

import time

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from reliability_faults import encode, real_images

from tasks.core.recipe import load_recipe
from tasks.core.task import register_task
from tasks.core.trainer import train
from tasks.figures import plots
from tasks.problems.classification import ClassificationTask

MAX_PX = 2500  # at plots.save's 110 dpi


def _predictions(k: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
    return y_true, y_pred


@settings(max_examples=12, deadline=None)
@given(k=st.integers(1, 3000), label_chars=st.integers(1, 6000))
def test_confusion_matrix_canvas_is_bounded(k, label_chars):
    y_true, y_pred = _predictions(k, 4 * k)
    names = [f"class_{i}" for i in range(k)]
    names[k // 2] = "x" * label_chars
    fig = plots.confusion_matrix(y_true, y_pred, names)
    try:
        assert max(fig.get_size_inches()) * 110 <= MAX_PX
        labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        assert len(labels) <= plots.FULL_MATRIX_CLASSES and max(map(len, labels)) <= plots.LABEL_CHARS
    finally:
        plt.close(fig)


def test_600_classes_with_a_5000_char_label_renders_small_and_fast(tmp_path):
    y_true, y_pred = _predictions(600, 3000)
    names = [f"label {i}" for i in range(600)]
    names[7] = "L" * 5000
    names[8] = "$x^{"  # mathtext that does not parse: drawn as text
    y_pred[y_true == 3] = 8  # class 3 is always mistaken for class 8: both are among the most confused
    start = time.perf_counter()
    path = plots.save(plots.confusion_matrix(y_true, y_pred, names), tmp_path / "cm.png")
    assert time.perf_counter() - start < 20
    with Image.open(path) as im:
        assert max(im.size) <= MAX_PX
    shown = plots.most_confused(y_true, y_pred, 600)
    assert 3 in shown and 8 in shown and len(shown) == plots.TOP_CONFUSED


@register_task("classification_failing_figures")
class FailingFigures(ClassificationTask):
    """The classification task with a figure that cannot be written (a NUL byte in its file name)."""

    def log_figures(self, model, inputs, history, out_dir):
        out = super().log_figures(model, inputs, history, out_dir)
        return [*out, plots.save(plots.training_curves(history), out_dir / "bad\0name.png")]


def test_a_failing_figure_keeps_the_model_and_the_export(tmp_path, mlflow_store, capsys):
    recipe = load_recipe({"task": "classification_failing_figures", "data": {"dataset": "digits", "image_size": [16, 16],
                          "train_limit": 200, "test_limit": 50}, "train": {"epochs": 1, "batch_size": 32}})
    result = train(recipe, tmp_path)
    assert (result.export_path / "saved_model.pb").is_file()
    run = mlflow.get_run(result.run_id)
    assert run.info.status == "FINISHED" and "figures_error" in run.data.tags
    assert "warning: figures not written" in capsys.readouterr().err
    assert len(mlflow.search_logged_models(filter_string=f"source_run_id = '{result.run_id}'", output_format="list")) == 1


def test_a_600_label_csv_run_finishes_with_a_bounded_confusion_matrix(tmp_path, mlflow_store):
    images, _ = real_images(1200, 16, seed=5)
    rows = ["path,label"]
    (tmp_path / "img").mkdir()
    for i, im in enumerate(images):
        (tmp_path / "img" / f"{i}.png").write_bytes(encode(im))
        rows.append(f"img/{i}.png,label {i % 600:03d} " + ("long " * 400 if i % 600 == 1 else ""))
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    recipe = {"data": {"dataset": f"csv:{tmp_path / 'm.csv'}", "val_fraction": 0.0}, "train": {"epochs": 1, "batch_size": 64}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    result = train(load_recipe(tmp_path / "r.yaml"), tmp_path)
    assert (result.export_path / "saved_model.pb").is_file()
    local = mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="figures/confusion_matrix.png",
                                                dst_path=str(tmp_path / "dl"))
    with Image.open(local) as im:
        assert max(im.size) <= MAX_PX
