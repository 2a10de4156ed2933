"""Sliding-window detection, both ways: naive crops and the convolutional implementation.

A classifier trained on ``window x window`` crops (object classes plus a
background class) scores every window of a bigger image:

* ``naive_window_scores``: crop every window, run the classifier on the crops;
* ``to_fully_convolutional``: the *same* trained classifier with its dense
  layers turned into equivalent convolutions (the first dense layer after
  ``Flatten`` becomes a conv whose kernel covers the whole feature map; later
  dense layers become 1x1 convs). Run once on the whole image, its output cell
  ``(i, j)`` is the score of the window at ``(i * stride, j * stride)``, where
  ``stride`` is the product of the classifier's pooling/conv strides. The
  windows share their convolutions, which is where the speed comes from.

Example:
    >>> clf = build("window_classifier", (32, 32, 3), 11)       # 10 classes + background
    >>> fcn = to_fully_convolutional(clf)
    >>> dense = fcn(image[None])[0]                  # [rows, cols, 11]
    >>> naive = naive_window_scores(clf, image, window_stride(clf))
    >>> np.abs(dense - naive).max() < 1e-4
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from models.nms import IOU_THRESHOLD, SCORE_THRESHOLD, batched_nms
from models.registry import register


@register("window_classifier")
def build_window_classifier(input_shape, num_classes: int, width: int = 16, dense: int = 64) -> keras.Model:
    """A small classifier of fixed-size windows (three valid convs, two max pools, Flatten, Dense).

    Input uint8 ``[N, h, w, C]``; output softmax ``[N, num_classes]`` (include
    a background class). Built so ``to_fully_convolutional`` can convert it.

    Example:
        >>> build_window_classifier((32, 32, 3), 11).output_shape
        (None, 11)
    """
    inputs = keras.Input(input_shape, dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = keras.layers.Conv2D(width, 5, activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(2 * width, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Conv2D(2 * width, 3, activation="relu", name="conv3")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense, activation="relu", name="fc1")(x)
    out = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="fc2")(x)
    return keras.Model(inputs, out, name="window_classifier")


def window_stride(model: keras.Model) -> int:
    """The step in pixels between neighbouring windows of the converted net (product of strides)."""
    stride = 1
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            stride *= int(layer.strides[0])
    return stride


def to_fully_convolutional(model: keras.Model) -> keras.Model:
    """Convert a chain classifier (conv/pool layers, ``Flatten``, ``Dense``...) to a fully convolutional net.

    The result takes images of any size ``>= window`` and outputs
    ``[N, rows, cols, num_classes]``; weights are copied, not retrained.
    Supported layers: Rescaling, Conv2D, MaxPooling2D, AveragePooling2D,
    Activation, Dropout, Flatten, Dense.
    """
    channels = model.input_shape[-1]
    inputs = keras.Input((None, None, channels), dtype=model.inputs[0].dtype, name="image")
    x = inputs
    feature_shape = None
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.Flatten):
            feature_shape = layer.input.shape[1:]
            continue
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            if feature_shape is not None:  # first dense after Flatten: a conv over the whole map
                h, w, c = feature_shape
                kernel = kernel.reshape(h, w, c, -1)
                feature_shape = None
            else:
                kernel = kernel.reshape(1, 1, *kernel.shape)
            conv = keras.layers.Conv2D(layer.units, kernel.shape[:2], activation=layer.activation,
                                       name=f"{layer.name}_as_conv")
            x = conv(x)
            conv.set_weights([kernel, bias])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D,
                                keras.layers.Rescaling, keras.layers.Activation, keras.layers.Dropout)):
            clone = layer.__class__.from_config(layer.get_config())
            x = clone(x)
            if layer.weights:
                clone.set_weights(layer.get_weights())
        else:
            raise ValueError(f"to_fully_convolutional cannot convert layer {layer.name!r} ({type(layer).__name__})")
    return keras.Model(inputs, x, name=f"{model.name}_fully_convolutional")


def window_origins(image_size: tuple[int, int], window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (rows ``[R]``, cols ``[Q]``) of all windows that fit the image."""
    h, w = image_size
    return np.arange(0, h - window + 1, stride), np.arange(0, w - window + 1, stride)


def naive_window_scores(model: keras.Model, image: np.ndarray, stride: int, batch_size: int = 256) -> np.ndarray:
    """Crop every ``window x window`` window at ``stride`` and classify the crops: ``[R, Q, classes]``."""
    window = model.input_shape[1]
    rows, cols = window_origins(image.shape[:2], window, stride)
    crops = np.stack([image[r : r + window, c : c + window] for r in rows for c in cols])
    scores = []
    for start in range(0, len(crops), batch_size):
        scores.append(model(crops[start : start + batch_size], training=False).numpy())
    return np.concatenate(scores).reshape(len(rows), len(cols), -1)


def window_boxes(image_size: tuple[int, int], window: int, stride: int) -> np.ndarray:
    """Normalised ``[R, Q, 4]`` boxes ``[ymin, xmin, ymax, xmax]`` of the windows."""
    h, w = image_size
    rows, cols = window_origins(image_size, window, stride)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([r / h, c / w, (r + window) / h, (c + window) / w], axis=-1).astype(np.float32)


def dense_window_scores(fcn: keras.Model, images) -> tf.Tensor:
    """Run the fully convolutional net once per image: ``[N, R, Q, classes]``."""
    return fcn(tf.convert_to_tensor(images), training=False)


def window_detections(scores, image_size: tuple[int, int], window: int, stride: int,
                      score_threshold: float = SCORE_THRESHOLD, iou_threshold: float = IOU_THRESHOLD,
                      max_detections: int = 100) -> dict[str, tf.Tensor]:
    """Window scores ``[R, Q, C + 1]`` (last class = background) -> per-class NMS detections.

    Each window votes for its best object class with that class's probability;
    the windows themselves are the boxes. Returns the ``batched_nms`` dict for
    a batch of one image.
    """
    scores = tf.convert_to_tensor(scores, tf.float32)
    num_classes = int(scores.shape[-1]) - 1
    objects = tf.reshape(scores[..., :num_classes], [1, -1, num_classes])
    boxes = tf.reshape(tf.constant(window_boxes(image_size, window, stride)), [1, -1, 4])
    return batched_nms(boxes, tf.reduce_max(objects, -1), tf.argmax(objects, -1, output_type=tf.int32),
                       num_classes, score_threshold, iou_threshold, max_detections)
