"""Streamed folder datasets train whole epochs: the schedule, the step count and the data agree.

A folder of real Fashion-MNIST test images (PNG files, one corrupt among them,
skipped and counted) trains LeNet-5 at a cosine-decayed rate:
every epoch is ceil(listed images / batch) steps, the rate is 0 exactly after
the last step, and Keras never reports running out of data; the same with a
``train.steps_per_epoch`` larger than the split holds.
"""

import math
import warnings

import numpy as np
import pytest
import tensorflow as tf

from pipelines.catalog import load_arrays
from tasks.core.recipe import load_recipe
from tasks.core.task import get_task_class

PER_CLASS, CLASSES = 12, (0, 1, 7)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder_ds")
    data = load_arrays("fashion_mnist")
    for c in CLASSES:
        (root / f"class{c}").mkdir()
        for i, idx in enumerate(np.flatnonzero(data.y_test == c)[:PER_CLASS]):
            (root / f"class{c}" / f"{i}.png").write_bytes(tf.io.encode_png(data.x_test[idx]).numpy())
    good = (root / "class0" / "0.png").read_bytes()
    (root / "class0" / "corrupt.png").write_bytes(good[:33] + b"\x00" * (len(good) - 45) + good[-12:])  # header and IEND kept
    return root


def _fit(folder, extra):
    recipe = load_recipe("fashion_mnist_lenet5", [f"data.dataset=folder:{folder}", "data.val_fraction=0.25",
                                                  "data.test_fraction=0.0", "data.augment=[]", "train.batch_size=8",
                                                  "train.epochs=3", "train.schedule=cosine", *extra])
    task = get_task_class("classification")(recipe)
    inputs = task.build_inputs()
    model = task.build_model(inputs)
    task.compile(model, inputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = task.fit(model, inputs, [])
    return task, inputs, model, history, [str(w.message) for w in caught]


def test_folder_epochs_are_whole_and_cosine_ends_at_zero_on_the_last_step(folder):
    task, inputs, model, history, messages = _fit(folder, [])
    n_train = inputs.info["sizes"]["train"]
    steps = math.ceil(n_train / 8)
    assert n_train == round(PER_CLASS * len(CLASSES) * 0.75) and sum(inputs.info["skipped"].values()) == 1
    assert int(inputs.train.cardinality()) < 0  # streamed from files: the length is not known to tf.data
    assert int(model.optimizer.iterations.numpy()) == 3 * steps
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.0, abs=1e-9)
    schedule = model.optimizer._learning_rate
    assert float(schedule(3 * steps - 1)) > 0.0  # the rate is still positive before the last step
    assert not any("ran out of data" in m for m in messages), messages
    assert len(history.history["loss"]) == 3
    assert len(set(np.round(history.history["val_loss"], 6))) == 3  # every epoch trained: no frozen last epoch


def test_steps_per_epoch_beyond_the_split_repeats_the_data(folder):
    _, _, model, history, messages = _fit(folder, ["train.steps_per_epoch=7"])
    assert int(model.optimizer.iterations.numpy()) == 21
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.0, abs=1e-9)
    assert not any("ran out of data" in m for m in messages), messages


def test_transfer_folder_takes_size_channels_and_classes_from_the_data_and_the_backbone(folder):
    recipe = load_recipe("transfer_folder", [f"data.dataset=folder:{folder}"])
    inputs = get_task_class("transfer")(recipe).build_inputs()
    assert inputs.input_shape == (224, 224, 3) and recipe["data"]["image_size"] == [224, 224]
    assert inputs.class_names == [f"class{c}" for c in CLASSES]
    images, _ = next(iter(inputs.train))
    assert images.shape[1:] == (224, 224, 3) and images.dtype == tf.uint8
    grey = images.numpy().astype(int)
    assert np.array_equal(grey[..., 0], grey[..., 2])  # grey PNGs in, RGB out: the channels are copies
