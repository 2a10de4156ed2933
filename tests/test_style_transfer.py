"""Optimising G: a few steps lower J, pixels stay valid, the run is in MLflow, the CLI works."""

import mlflow
import numpy as np
import pytest
from PIL import Image

from tasks.cli.main import main
from tasks.workflows.style_transfer import StyleSettings, load_image, optimise, run_style_transfer

TINY = dict(size=40, content_layer="block3_conv1", style_weights={"block1_conv1": 0.5, "block2_conv1": 0.5})


@pytest.mark.parametrize("optimizer,init", [("adam", "content"), ("lbfgs", "random")])
def test_a_few_steps_lower_j_and_keep_pixels_valid(optimizer, init):
    settings = StyleSettings(steps=4, optimizer=optimizer, init=init, **TINY)
    result = optimise(load_image("coffee"), load_image("starry_night"), settings, verbose=0)
    j = result.history["J"]
    assert len(j) >= 2 and j[-1] < j[0]
    assert result.image.dtype == np.uint8 and result.image.shape == (27, 40, 3)  # coffee is 400x600
    jc, js = result.history["Jc"][-1], result.history["Js"][-1]
    np.testing.assert_allclose(j[-1], settings.alpha * jc + settings.beta * js, rtol=1e-5)


@pytest.mark.slow
def test_run_is_logged_to_mlflow(mlflow_store, workdir):
    settings = StyleSettings(steps=4, **TINY)
    result = run_style_transfer(load_image("chelsea"), load_image("starry_night"), settings,
                                output=workdir / "g.png", image_every=2, verbose=0)
    run = mlflow.get_run(result.run_id)
    assert run.data.params["content_layer"] == "block3_conv1"
    assert run.data.params["style_weight.block1_conv1"] == "0.5"
    history = mlflow.MlflowClient().get_metric_history(result.run_id, "J")
    assert [m.step for m in history] == [1, 2, 3, 4]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id)}
    assert {"generated.png", "content_style_generated.png", "progress"} <= artifacts
    progress = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "progress")}
    assert progress == {"progress/step_00002.png", "progress/step_00004.png"}
    np.testing.assert_array_equal(np.asarray(Image.open(workdir / "g.png")), result.image)


def test_cli_style_writes_the_image(mlflow_store, workdir, tmp_path):
    content = tmp_path / "c.png"
    Image.fromarray(load_image("astronaut")[::8, ::8]).save(content)
    code = main(["style", str(content), "starry_night", "-o", "out.png", "--steps", "2", "--size", "36",
                 "--content-layer", "block2_conv2", "--style-layers", "block1_conv1,block2_conv1",
                 "--style-weights", "0.3,0.7", "--init", "random"])
    assert code == 0
    assert Image.open(workdir / "out.png").size == (36, 36)


@pytest.mark.parametrize("argv,fragment", [
    (["nope.jpg", "starry_night"], "nope.jpg not found"),
    (["chelsea", "starry_night", "--content-layer", "block9_conv9"], "unknown VGG16 layer"),
    (["chelsea", "starry_night", "--style-weights", "1,2"], "one per layer"),
    (["chelsea", "starry_night", "-o", "g.gif"], "must end in .png"),
    (["chelsea", "corrupt.jpg"], "corrupt.jpg cannot be read"),
])
def test_cli_style_refuses_bad_input_in_one_line(argv, fragment, workdir, capsys):
    (workdir / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    if "-o" not in argv:
        argv = [*argv, "-o", "g.png"]
    assert main(["style", *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
