"""Real 1D sequences and 3D clips derived from image datasets, for the 1D/3D nets.

Every derivation maps uint8 images ``x [N, H, W, C]`` and labels ``y [N]`` to
new arrays with the same labels; the pixels stay real, only their layout
changes:

* ``rows``:   each image read top to bottom as a sequence of H steps with
  ``W*C`` channels -> ``[N, H, W*C]`` (a multichannel signal);
* ``raster``: each image read pixel by pixel, row after row, as one long
  signal -> ``[N, H*W, C]``;
* ``clip``:   each image moving across the frame, ``frames`` frames shifted by
  ``step`` pixels each (zero-filled) -> ``[N, frames, H, W, C]`` (a short video
  volume; a Conv3D filter sees the motion across frames).

Example:
    >>> import numpy as np
    >>> x, y = np.zeros((5, 28, 28, 1), np.uint8), np.arange(5)
    >>> derive("rows", x, y)[0].shape
    (5, 28, 28)
    >>> derive({"clip": {"frames": 4}}, x, y)[0].shape
    (5, 4, 28, 28, 1)
"""

from __future__ import annotations

import numpy as np


def rows(x: np.ndarray) -> np.ndarray:
    """``[N, H, W, C] -> [N, H, W*C]``: rows as time steps."""
    n, h, w, c = x.shape
    return x.reshape(n, h, w * c)


def raster(x: np.ndarray) -> np.ndarray:
    """``[N, H, W, C] -> [N, H*W, C]``: the raster scan as one signal."""
    n, h, w, c = x.shape
    return x.reshape(n, h * w, c)


def clip(x: np.ndarray, frames: int = 8, step: int = 2) -> np.ndarray:
    """``[N, H, W, C] -> [N, frames, H, W, C]``: the image sliding right, ``step`` px a frame.

    The shifts run from ``-(frames-1)*step/2`` to ``+(frames-1)*step/2`` so the
    middle of the clip shows the image where it was; vacated pixels are 0.
    """
    if frames < 1 or step < 0:
        raise ValueError(f"clip needs frames >= 1 and step >= 0; received frames={frames}, step={step}")
    n, h, w, c = x.shape
    out = np.zeros((n, frames, h, w, c), dtype=x.dtype)
    start = -((frames - 1) * step) // 2
    for t in range(frames):
        shift = start + t * step
        if shift >= 0:
            out[:, t, :, shift:] = x[:, :, : w - shift]
        else:
            out[:, t, :, :shift] = x[:, :, -shift:]
    return out


DERIVATIONS = {"rows": rows, "raster": raster, "clip": clip}


def derive(spec: str | dict, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the derivation ``spec``: a name (``"rows"``) or ``{name: {options}}``.

    Returns ``(derived x, y)``. Raises ``ValueError`` naming the known
    derivations for an unknown one.
    """
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise ValueError(f"a derivation is one name or {{name: options}}; received {spec!r}")
        (name, options), = spec.items()
        options = options or {}
    else:
        name, options = spec, {}
    if name not in DERIVATIONS:
        raise ValueError(f"unknown derivation {name!r}; choose one of: {', '.join(DERIVATIONS)}")
    return DERIVATIONS[name](x, **options), y
