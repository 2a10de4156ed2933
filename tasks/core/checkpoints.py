"""Resume checkpoints whose cost stays a small share of training.

Keras' ``BackupAndRestore`` writes the weights (and a copy of the previous
ones) after every epoch. On a small model whose epoch takes a second that is
~3% of the run; ``IntervalBackup`` writes at the end of an epoch only when at
least ``min_interval_s`` seconds of training passed since the last write, so a
crash loses at most that much work plus one epoch (``train.backup_interval_s``
in a recipe; 0 writes after every epoch, as Keras does).

Example:
    >>> cb = IntervalBackup("runs/abc/backup", min_interval_s=30)
    >>> model.fit(ds, epochs=10, callbacks=[cb])  # doctest: +SKIP
"""

from __future__ import annotations

import time

import keras


class IntervalBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that saves at an epoch end at most every ``min_interval_s`` seconds."""

    def __init__(self, backup_dir: str, min_interval_s: float = 0.0):
        super().__init__(backup_dir)
        self.min_interval_s = float(min_interval_s)
        self._last_save = time.monotonic()

    def with_dir(self, backup_dir: str) -> IntervalBackup:
        """The same policy writing to another folder (one per transfer stage)."""
        return IntervalBackup(backup_dir, self.min_interval_s)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._last_save = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        if time.monotonic() - self._last_save >= self.min_interval_s:
            self._save_model()
            self._last_save = time.monotonic()
