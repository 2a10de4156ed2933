"""Parameter counts of the paper-size nets against keras.applications and the papers' numbers."""

import keras
import pytest

import models


@pytest.mark.slow
def test_vgg16_equals_keras_applications():
    ours = models.build("vgg16", (224, 224, 3), 1000).count_params()
    assert ours == keras.applications.VGG16(weights=None).count_params() == 138_357_544


@pytest.mark.slow
def test_resnet50_equals_keras_applications():
    ours = models.build("resnet50", (224, 224, 3), 1000).count_params()
    assert ours == keras.applications.ResNet50(weights=None).count_params() == 25_636_712


def trainable(model) -> int:
    return sum(int(w.numpy().size) for w in model.trainable_weights)


@pytest.mark.slow
@pytest.mark.parametrize("depth,with_bias,bias_free_trainable", [
    (18, 11_703_912, 11_689_512),
    (34, 21_823_208, 21_797_672),
    (101, 44_707_176, 44_549_160),  # with bias: keras.applications.ResNet101
])
def test_resnet_depths(depth, with_bias, bias_free_trainable):
    """Bias-free trainable counts are the torchvision numbers (BN moving stats are not parameters there)."""
    assert models.build(f"resnet{depth}", (224, 224, 3), 1000).count_params() == with_bias
    assert trainable(models.build(f"resnet{depth}", (224, 224, 3), 1000, use_bias=False)) == bias_free_trainable


def test_alexnet_and_googlenet_counts():
    assert models.build("alexnet", (227, 227, 3), 1000).count_params() == 60_965_224
    googlenet = models.build("inception_v1", (224, 224, 3), 1000)
    assert googlenet.count_params() == 6_998_552
    assert googlenet.get_layer("inception_3a_concat").output.shape[1:] == (28, 28, 256)
    assert googlenet.get_layer("inception_5b_concat").output.shape[1:] == (7, 7, 1024)


def test_info_command_prints_vgg16_and_one_by_one(capsys):
    from tasks.cli.main import main

    assert main(["info", "vgg16", "--input-shape", "224,224,3", "--classes", "1000"]) == 0
    out = capsys.readouterr().out
    assert "parameters: 138,357,544 (Keras count_params: 138,357,544)" in out
    assert "block5_pool" in out and "7x7x512" in out
    assert main(["info", "--one-by-one-example"]) == 0
    out = capsys.readouterr().out
    assert "120,422,400" in out and "12,443,648" in out
    assert main(["info", "resnet18", "--input-shape", "28,28,1", "--opt", "small=true", "--opt", "width=0.25"]) == 0
    assert main(["info", "nope", "--input-shape", "28,28,1"]) == 2
    assert main(["info", "missing.keras"]) == 2
    assert main(["info", "vgg16", "--input-shape", "28,x"]) == 2


def test_info_reads_a_saved_model_file(tmp_path, capsys):
    from tasks.cli.main import main

    model = models.build("alexnet", (28, 28, 1), 10, small=True, width=0.25, fc_units=64)
    model.save(tmp_path / "alexnet.keras")
    assert main(["info", str(tmp_path / "alexnet.keras")]) == 0
    out = capsys.readouterr().out
    assert f"parameters: {model.count_params():,} (Keras count_params: {model.count_params():,})" in out
    assert "norm1" in out and "conv2_gpu2" in out
