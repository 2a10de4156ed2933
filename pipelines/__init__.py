"""Data in: sources -> decode -> augment -> batch, all as tf.data pipelines."""
