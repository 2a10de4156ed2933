"""The binary-classification alternative to the triplet loss (Taigman et al., DeepFace 2014).

Two images go through the same encoder f; a logistic unit reads the
element-wise distance of their embeddings:

    yhat = sigmoid(sum_k w_k |f(x1)_k - f(x2)_k| + b)

trained with binary cross-entropy on same (1) / different (0) pairs. The
encoder's weights are shared, so after training ``model.get_layer("face_encoder")``
is the f used for verification and recognition like a triplet-trained one.

Example:
    >>> model = face_siamese((28, 28, 1), 0, embedding_dim=64)
    >>> model({"image_a": a, "image_b": b}).shape      # a, b: uint8 [N, 28, 28, 1]
    TensorShape([N, 1])
"""

from __future__ import annotations

import keras
from keras import layers, ops

from models.embedding import face_encoder
from models.registry import register


@keras.saving.register_keras_serializable(package="convforge")
class AbsoluteDifference(layers.Layer):
    """``[N, D], [N, D] -> [N, D]``: the element-wise ``|a - b|``."""

    def call(self, a, b):
        return ops.abs(a - b)

    def compute_output_shape(self, a_shape, b_shape):
        return a_shape


def siamese_binary(encoder: keras.Model) -> keras.Model:
    """Wrap ``encoder`` into the pair model ``{"image_a", "image_b"} -> yhat [N, 1]``."""
    shape = encoder.input_shape[1:]
    image_a = keras.Input(shape=shape, dtype="uint8", name="image_a")
    image_b = keras.Input(shape=shape, dtype="uint8", name="image_b")
    diff = AbsoluteDifference(name="abs_difference")(encoder(image_a), encoder(image_b))
    same = layers.Dense(1, activation="sigmoid", dtype="float32", name="same_identity")(diff)
    return keras.Model({"image_a": image_a, "image_b": image_b}, same, name="face_siamese")


@register("face_siamese")
def face_siamese(input_shape=(96, 96, 3), num_classes: int = 0, **encoder_options) -> keras.Model:
    """Build ``face_encoder(input_shape, **encoder_options)`` wrapped by ``siamese_binary``."""
    return siamese_binary(face_encoder(input_shape, num_classes, **encoder_options))
