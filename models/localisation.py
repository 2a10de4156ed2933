"""Object localisation with landmarks: one object per image, the notes' output vector ``y``.

``y = [pc, bx, by, bw, bh, c1..cC, l1x, l1y, ..., lKx, lKy]``:

* ``pc``: is there an object (sigmoid);
* ``bx, by, bw, bh``: the box's centre and size, normalised to the image (sigmoid);
* ``c1..cC``: class probabilities (softmax);
* ``lkx, lky``: landmark k, normalised ``(x, y)`` (sigmoid).

The loss (``LocalisationLoss``) follows the notes: when ``pc = 0`` only the
``pc`` term counts ("don't care" about the rest); when ``pc = 1``, squared
error on box and landmarks plus cross-entropy on the class.

Example:
    >>> model = build("localiser", (64, 64, 3), 10, landmarks=5)
    >>> model.output_shape                      # (None, 1 + 4 + 10 + 2 * 5)
    (None, 25)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from models.boxes import corners_from_midpoint, midpoint_from_corners
from models.registry import register


def encode_localisation(box, cls, landmarks, num_classes: int, num_landmarks: int) -> np.ndarray:
    """One target vector. ``box`` normalised ``[ymin, xmin, ymax, xmax]`` or None (no object).

    ``landmarks`` is ``[K, 2]`` normalised ``(x, y)``.
    """
    y = np.zeros(5 + num_classes + 2 * num_landmarks, np.float32)
    if box is None:
        return y
    y[0], y[1:5] = 1.0, midpoint_from_corners(np.asarray(box, np.float32))
    y[5 + int(cls)] = 1.0
    y[5 + num_classes :] = np.asarray(landmarks, np.float32).reshape(-1)
    return y


def decode_localisation(y, num_classes: int) -> dict[str, np.ndarray]:
    """Split ``[N, 5 + C + 2K]`` outputs: ``pc [N]``, ``boxes [N, 4]`` (ymin, xmin, ymax, xmax),
    ``classes [N]``, ``class_scores [N]``, ``landmarks [N, K, 2]`` (x, y)."""
    y = np.asarray(y, np.float32)
    probs = y[:, 5 : 5 + num_classes]
    return {
        "pc": y[:, 0],
        "boxes": corners_from_midpoint(y[:, 1:5]),
        "classes": probs.argmax(axis=1),
        "class_scores": probs.max(axis=1),
        "landmarks": y[:, 5 + num_classes :].reshape(len(y), -1, 2),
    }


@keras.saving.register_keras_serializable(package="convforge")
class LocalisationLoss(keras.losses.Loss):
    """``BCE(pc) + pc * (box_weight * SSE(box) + CE(class) + landmark_weight * SSE(landmarks))``."""

    def __init__(self, num_classes: int, box_weight: float = 5.0, landmark_weight: float = 5.0,
                 name: str = "localisation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.box_weight = box_weight
        self.landmark_weight = landmark_weight

    def call(self, y_true, y_pred):
        y_pred = tf.cast(y_pred, tf.float32)
        eps = 1e-7
        c = self.num_classes
        pc_true, pc_pred = y_true[:, 0], tf.clip_by_value(y_pred[:, 0], eps, 1 - eps)
        bce = -(pc_true * tf.math.log(pc_pred) + (1 - pc_true) * tf.math.log(1 - pc_pred))
        box = tf.reduce_sum(tf.square(y_true[:, 1:5] - y_pred[:, 1:5]), axis=-1)
        ce = -tf.reduce_sum(y_true[:, 5 : 5 + c] * tf.math.log(tf.clip_by_value(y_pred[:, 5 : 5 + c], eps, 1.0)), -1)
        marks = tf.reduce_sum(tf.square(y_true[:, 5 + c :] - y_pred[:, 5 + c :]), axis=-1)
        return bce + pc_true * (self.box_weight * box + ce + self.landmark_weight * marks)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "box_weight": self.box_weight, "landmark_weight": self.landmark_weight}


@register("localiser")
def build_localiser(input_shape, num_classes: int, landmarks: int = 5, width: int = 16, dense: int = 128) -> keras.Model:
    """A conv net with the localisation + landmarks head (``y`` above).

    Input: uint8 ``[N, H, W, C]`` (rescaled inside). Output ``[N, 5 + C + 2 * landmarks]``.
    The heads read a flattened feature map, so positions stay known.

    Example:
        >>> build_localiser((64, 64, 3), 10).output_shape
        (None, 25)
    """
    inputs = keras.Input(input_shape, dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    filters = width
    for i in range(4):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"stage{i + 1}_conv")(x)
        x = keras.layers.MaxPooling2D(2, name=f"stage{i + 1}_pool")(x)
        filters *= 2
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense, activation="relu", name="fc")(x)
    pc = keras.layers.Dense(1, activation="sigmoid", name="pc")(x)
    box = keras.layers.Dense(4, activation="sigmoid", name="box")(x)
    cls = keras.layers.Dense(num_classes, activation="softmax", name="classes")(x)
    parts = [pc, box, cls]
    if landmarks:
        parts.append(keras.layers.Dense(2 * landmarks, activation="sigmoid", name="landmarks")(x))
    out = keras.layers.Concatenate(name="y", dtype="float32")(parts)
    return keras.Model(inputs, out, name="localiser")
