"""Parameter counts of the paper-size nets against keras.applications and the papers' numbers."""

import keras
import numpy as np
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


# Szegedy et al. 2014, "Going Deeper with Convolutions", Table 1, typed from the paper (not from models/inception.py):
# module: (output size, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj, ops in millions)
GOOGLENET_TABLE_1 = {
    "3a": ((28, 28, 256), 64, 96, 128, 16, 32, 32, 128),
    "3b": ((28, 28, 480), 128, 128, 192, 32, 96, 64, 304),
    "4a": ((14, 14, 512), 192, 96, 208, 16, 48, 64, 73),
    "4b": ((14, 14, 512), 160, 112, 224, 24, 64, 64, 88),
    "4c": ((14, 14, 512), 128, 128, 256, 24, 64, 64, 100),
    "4d": ((14, 14, 528), 112, 144, 288, 32, 64, 64, 119),
    "4e": ((14, 14, 832), 256, 160, 320, 32, 128, 128, 170),
    "5a": ((7, 7, 832), 256, 160, 320, 32, 128, 128, 54),
    "5b": ((7, 7, 1024), 384, 192, 384, 48, 128, 128, 71),
}
BRANCHES = (("1x1", 1), ("3x3_reduce", 1), ("3x3", 3), ("5x5_reduce", 1), ("5x5", 5), ("pool_proj", 1))


def test_googlenet_matches_table_1_of_the_paper():
    model = models.build("inception_v1", (224, 224, 3), 1000)
    # stem: conv 7x7/2 64 -> 112x112x64, max pool 3x3/2 -> 56x56x64, conv 1x1 64 + 3x3 192 -> 56x56x192, pool -> 28x28x192
    conv1 = model.get_layer("conv1")
    assert (conv1.kernel_size, conv1.strides, conv1.output.shape[1:]) == ((7, 7), (2, 2), (112, 112, 64))
    assert model.get_layer("pool1").output.shape[1:] == (56, 56, 64)
    assert model.get_layer("conv2_reduce").filters == 64
    assert (model.get_layer("conv2").kernel_size, model.get_layer("conv2").output.shape[1:]) == ((3, 3), (56, 56, 192))
    assert model.get_layer("pool2").output.shape[1:] == (28, 28, 192)
    for name, (size, *widths, ops) in GOOGLENET_TABLE_1.items():
        convs = [model.get_layer(f"inception_{name}_{branch}") for branch, _ in BRANCHES]
        assert [c.filters for c in convs] == widths, name
        assert [c.kernel_size for c in convs] == [(k, k) for _, k in BRANCHES], name
        assert model.get_layer(f"inception_{name}_concat").output.shape[1:] == size, name
        # the ops column: multiply-adds of the module's weights at its output resolution; the paper's figures are
        # rounded (5a is off by 5%: 51.1M computed vs 54M printed), a width off by one table step moves it far more
        computed = sum(int(np.prod(c.kernel.shape)) for c in convs) * size[0] * size[1] / 1e6
        assert computed == pytest.approx(ops, rel=0.06), (name, computed)
    assert model.get_layer("pool4").output.shape[1:] == (14, 14, 480)  # max pool 3x3/2 before 4a
    assert model.get_layer("pool5").output.shape[1:] == (7, 7, 832)  # and before 5a
    assert model.get_layer("main").kernel.shape == (1024, 1000)  # avg pool 7x7 -> 1x1x1024, linear 1000 (1M ops)


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
