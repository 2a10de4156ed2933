"""Edge detection by convolution: the notes' fixed 1,0,-1 filters, and learning them.

The vertical filter of the notes (a cross-correlation, like every Keras conv)

     1  0 -1
     1  0 -1
     1  0 -1

responds positively where the image goes from light (left) to dark (right)
and negatively from dark to light; its transpose-like horizontal twin

     1  1  1
     0  0  0
    -1 -1 -1

does the same from top to bottom. Sobel (1,2,1 weights) and Scharr (3,10,3)
are the smoother variants. ``edge_detector`` puts a pair into one fixed,
non-trainable Conv2D; ``learn_kernel`` shows the notes' point that the nine
numbers can instead be learned from data.

Example:
    >>> import numpy as np
    >>> image = np.zeros((1, 6, 6, 1), np.uint8); image[:, :, :3] = 255   # light | dark
    >>> maps = edge_detector()(image).numpy()                           # [1, 4, 4, 2]
    >>> maps[0, 0, :, 0]                                                # vertical response
    array([0., 3., 3., 0.], dtype=float32)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

_VERTICAL = {
    "notes": [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
    "sobel": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "scharr": [[3, 0, -3], [10, 0, -10], [3, 0, -3]],
}
KINDS = tuple(_VERTICAL)


def edge_kernels(kind: str = "notes") -> tuple[np.ndarray, np.ndarray]:
    """The (vertical, horizontal) 3x3 float32 kernels of ``kind`` ("notes", "sobel", "scharr")."""
    if kind not in _VERTICAL:
        raise ValueError(f"unknown edge filter {kind!r}; choose one of: {', '.join(KINDS)}")
    vertical = np.array(_VERTICAL[kind], dtype=np.float32)
    return vertical, vertical.T.copy()


def edge_detector(kind: str = "notes", padding: str = "valid") -> keras.Model:
    """Fixed edge filters: uint8 grayscale ``[N, H, W, 1]`` -> ``[N, H', W', 2]`` (vertical, horizontal).

    Pixels are rescaled to [0, 1] first; "valid" padding gives ``H' = H - 2``
    (the notes' n - f + 1), "same" keeps H. The conv is not trainable.
    """
    vertical, horizontal = edge_kernels(kind)
    inputs = keras.Input(shape=(None, None, 1), dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    conv = layers.Conv2D(2, 3, padding=padding, use_bias=False, trainable=False, name=f"{kind}_edges")
    outputs = conv(x)
    conv.set_weights([np.stack([vertical, horizontal], axis=-1)[:, :, None, :]])
    return keras.Model(inputs, outputs, name=f"{kind}_edge_detector")


def learn_kernel(images: np.ndarray, target: np.ndarray, steps: int = 2000, seed: int = 0,
                 learning_rate: float = 0.1, batch_size: int = 8) -> np.ndarray:
    """Train one randomly initialised 3x3 conv to reproduce ``target``'s response; returns its kernel.

    ``images``: float grayscale ``[N, H, W, 1]`` in [0, 1]. The regression
    target is the fixed filter's output on the same images (mean squared
    error, ``steps`` Adam steps with a cosine-decayed step size, no bias).
    Returns the learned ``[3, 3]`` kernel.
    """
    fixed = keras.Sequential([keras.Input((None, None, 1)), layers.Conv2D(1, 3, use_bias=False)])
    fixed.set_weights([target.reshape(3, 3, 1, 1).astype(np.float32)])
    responses = fixed.predict(images, verbose=0)
    learner = keras.Sequential([
        keras.Input((None, None, 1)),
        layers.Conv2D(1, 3, use_bias=False, kernel_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=seed)),
    ])
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    learner.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse", steps_per_execution=50)
    order = np.random.default_rng(seed).integers(0, len(images), steps * batch_size)
    learner.fit(images[order], responses[order], epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    return learner.get_weights()[0][:, :, 0, 0]
