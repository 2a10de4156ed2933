"""Importing TensorFlow without its C++ start-up chatter (used by the CLI and ``make demo``)."""

from __future__ import annotations

import os
import sys


def quiet_tensorflow_import() -> None:
    """Import TensorFlow with the C++ start-up chatter (oneDNN, CUDA probes) silenced.

    tensorflow 2.21 prints those lines before its log level is read, so fd 2 is
    pointed at /dev/null for the import only; Python errors still surface.
    """
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.get_logger().setLevel("ERROR")  # retracing and deprecation notices are not the user's to act on
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
