"""Batch normalisation on TensorFlow's fused kernel: the same layer, weights and maths, less work per step.

Keras 3's ``BatchNormalization`` computes the batch moments and the
normalisation as separate graph ops (and, under ``mixed_bfloat16``, casts every
activation to float32 and back around them), forward and backward. On the
TensorFlow backend this subclass runs one ``FusedBatchNormV3`` op instead
(oneDNN on CPU, cuDNN on GPU), which takes bfloat16/float16 activations
directly and keeps its statistics in float32. Measured on ResNet-50 training
steps (``benchmarks/training_efficiency.py``) it removes most of the time spent
outside the convolutions.

Everything else is the parent's: the weights (``gamma``, ``beta``,
``moving_mean``, ``moving_variance``, in that order, so converted checkpoints
load unchanged), the config, inference mode when ``trainable`` is False
(frozen layers keep their statistics), and the moving averages of the *biased*
batch variance. Cases the fused op does not cover (another backend, a mask,
renorm, synchronised statistics, inputs that are not 4-D channels-last) fall
back to the parent's ops.

Shapes: ``[N, H, W, C]`` in and out.

Example:
    >>> import numpy as np
    >>> bn = FusedBatchNormalization()
    >>> bn(np.ones((2, 4, 4, 3), "float32"), training=True).shape
    (2, 4, 4, 3)
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="convforge")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed by ``tf.nn.fused_batch_norm`` where it applies."""

    def _fusable(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.renorm
                and not self.synchronized and len(inputs.shape) == 4 and self.axis in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = inputs if inputs.dtype in (tf.float16, tf.bfloat16, tf.float32) else tf.cast(inputs, tf.float32)
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        moving_mean = tf.cast(self.moving_mean, tf.float32)
        moving_variance = tf.cast(self.moving_variance, tf.float32)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
            count = tf.cast(tf.size(x) // channels, tf.float32)
            # the op returns the unbiased variance; Keras averages the biased one
            variance = tf.where(count > 1.0, variance * (count - 1.0) / tf.maximum(count, 1.0), tf.zeros_like(variance))
            self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=moving_mean, variance=moving_variance, epsilon=self.epsilon,
                data_format="NHWC", is_training=False)
        return tf.cast(y, self.compute_dtype)
