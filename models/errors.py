"""Errors the model builders raise, in one place so callers catch them without importing a particular net.

Example:
    >>> try:
    ...     build("transfer_classifier", (96, 96, 3), 10, backbone="resnet50", weights="imagenet")
    ... except WeightsUnavailableError as err:
    ...     print(err)            # names the fix: a local weights file (--weights PATH)
"""

from __future__ import annotations


class WeightsUnavailableError(OSError):
    """Pretrained weights cannot be found or fetched; the message names the fix."""
