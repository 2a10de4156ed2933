"""Geometry shared by images, boxes and keypoints: one inverse map, applied once.

Conventions (the same everywhere in ``pipelines``):

* Pixel *index* space: ``x`` is the column, ``y`` the row, pixel centres sit
  on integers, ``0 .. W-1`` and ``0 .. H-1``.
* Boxes are **normalised** ``[ymin, xmin, ymax, xmax]`` in ``[0, 1]`` (the
  ``tf.image`` convention) over pixel *edges*: ``x_norm = (x_index + 0.5) / W``.
  Keypoints are normalised ``[x, y]`` in the same frame (the order of the
  scene generator's landmarks and of COCO keypoints).

A geometric augmentation is described by its *inverse* map: for each output
pixel ``p`` the source position ``S(p) = M @ (p + sum_i D_i(p))``, where ``M``
is a 3x3 affine matrix (mirror, crop, rotation and shear composed) and the
``D_i`` optional smooth displacements (elastic, grid distortion) evaluated at
the output pixel. Images are resampled once through ``S`` (bilinear, zero
fill); points move with its inverse (closed form for ``M``, a short
fixed-point iteration for the displacements).

Example:
    >>> m = rotation(tf.constant([30.0]), height=64, width=64)   # [1, 3, 3]
    >>> out = warp_images(images_uint8, m, warps=[])              # float [1, 64, 64, C]
"""

from __future__ import annotations

import math

import tensorflow as tf


# -- affine matrices (inverse maps, output index -> source index), batched [B, 3, 3]
def _matrix(a, b, c, d, e, f) -> tf.Tensor:
    zero, one = tf.zeros_like(a), tf.ones_like(a)
    rows = [tf.stack([a, b, c], -1), tf.stack([d, e, f], -1), tf.stack([zero, zero, one], -1)]
    return tf.stack(rows, -2)


def identity(batch: tf.Tensor) -> tf.Tensor:
    """``[B, 3, 3]`` identity maps."""
    return tf.eye(3, batch_shape=[batch], dtype=tf.float32)


def mirror(flip: tf.Tensor, height, width, vertical: bool = False) -> tf.Tensor:
    """Flip where ``flip`` (``[B]`` of 0/1) is 1: ``x_src = W - 1 - x`` (or ``y`` when vertical)."""
    flip = tf.cast(flip, tf.float32)
    sign = 1.0 - 2.0 * flip
    zero, one = tf.zeros_like(flip), tf.ones_like(flip)
    if vertical:
        return _matrix(one, zero, zero, zero, sign, flip * (tf.cast(height, tf.float32) - 1.0))
    return _matrix(sign, zero, flip * (tf.cast(width, tf.float32) - 1.0), zero, one, zero)


def crop(offset_y, offset_x, crop_h, crop_w, height, width) -> tf.Tensor:
    """Take the window at ``(offset_y, offset_x)`` of size ``(crop_h, crop_w)`` and resize it
    to ``(height, width)``; offsets may be negative or run past the edge (zero padding).
    A window of the full size is a pure integer shift: ``src = p + offset``."""
    sy = crop_h / tf.cast(height, tf.float32)
    sx = crop_w / tf.cast(width, tf.float32)
    zero = tf.zeros_like(sx)
    return _matrix(sx, zero, offset_x + 0.5 * sx - 0.5, zero, sy, offset_y + 0.5 * sy - 0.5)


def _about_centre(m: tf.Tensor, height, width) -> tf.Tensor:
    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0 * tf.ones_like(m[:, 0, 0])
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0 * tf.ones_like(m[:, 0, 0])
    zero, one = tf.zeros_like(cx), tf.ones_like(cx)
    return _matrix(one, zero, cx, zero, one, cy) @ m @ _matrix(one, zero, -cx, zero, one, -cy)


def rotation(degrees: tf.Tensor, height, width) -> tf.Tensor:
    """Turn the picture ``degrees`` counter-clockwise (as seen on screen) about its centre.

    Forward (source -> output, y down): ``x' = c + cos*(x-c) + sin*(y-c)``,
    ``y' = c - sin*(x-c) + cos*(y-c)``; this returns its inverse."""
    t = degrees * (math.pi / 180.0)
    cos, sin = tf.cos(t), tf.sin(t)
    return _about_centre(_matrix(cos, -sin, tf.zeros_like(t), sin, cos, tf.zeros_like(t)), height, width)


def shear(degrees: tf.Tensor, height, width, axis: str = "x") -> tf.Tensor:
    """Lean the vertical axis ``degrees`` to the right (axis ``x``: the top moves right,
    ``x' = x + tan(a) * (cy - y)``), or the horizontal axis down on the right (axis ``y``:
    ``y' = y + tan(a) * (x - cx)``). Returns the inverse map."""
    k = tf.tan(degrees * (math.pi / 180.0))
    zero, one = tf.zeros_like(k), tf.ones_like(k)
    m = _matrix(one, k, zero, zero, one, zero) if axis == "x" else _matrix(one, zero, zero, -k, one, zero)
    return _about_centre(m, height, width)


# -- resampling -------------------------------------------------------------------
def sample_image(images: tf.Tensor, sy: tf.Tensor, sx: tf.Tensor) -> tf.Tensor:
    """Bilinear samples of ``[B, H, W, C]`` at index points ``sy, sx`` ``[B, H', W']`` ->
    float32 ``[B, H', W', C]``; points outside the image read 0.

    A zero border (1 px before, 2 after each axis) and points clipped to ``[-1, size]``
    make every neighbour readable with one flat gather and no masks: a point outside
    the image has all its weight on border zeros, a point on the edge blends with them.
    Pixels are gathered in their own dtype (a uint8 source is a quarter of float's
    memory traffic) and converted after."""
    c = images.shape[-1]
    b, h, w = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    wp = w + 3
    flat = tf.reshape(tf.pad(images, [[0, 0], [1, 2], [1, 2], [0, 0]]), [-1, c])
    sy = tf.clip_by_value(sy, -1.0, tf.cast(h, tf.float32))
    sx = tf.clip_by_value(sx, -1.0, tf.cast(w, tf.float32))
    y0, x0 = tf.floor(sy), tf.floor(sx)
    fy, fx = (sy - y0)[..., None], (sx - x0)[..., None]
    first = tf.reshape(tf.range(b) * (h + 3) * wp + wp + 1, [-1, 1, 1])  # padded index of (0, 0)
    i = tf.cast(y0, tf.int32) * wp + tf.cast(x0, tf.int32) + first
    p00, p01, p10, p11 = (tf.cast(tf.gather(flat, i + d), tf.float32) for d in (0, 1, wp, wp + 1))
    top, bottom = p00 + fx * (p01 - p00), p10 + fx * (p11 - p10)
    return top + fy * (bottom - top)


def _hat(t: tf.Tensor, count) -> tf.Tensor:
    """Linear-interpolation weights ``[..., count]`` of positions ``t`` on a lattice
    ``0 .. count-1`` (clamped to its ends): ``max(0, 1 - |t - i|)``."""
    n = tf.cast(count, tf.float32)
    t = tf.clip_by_value(t, 0.0, n - 1.0)[..., None]
    return tf.nn.relu(1.0 - tf.abs(t - tf.range(n)))


# -- displacement fields: output point -> displacement (dy, dx) in pixels -----------
class Elastic:
    """Random smooth 2-D displacement: control points on a ``grid x grid`` lattice over
    the image get offsets (``[B, grid, grid, 2]``, dy and dx in pixels), interpolated
    bilinearly between them."""

    def __init__(self, offsets: tf.Tensor, height, width):
        self.offsets, self.height, self.width = offsets, height, width

    def _lattice(self, v: tf.Tensor, size) -> tf.Tensor:
        g = tf.shape(self.offsets)[1]
        return _hat(v * tf.cast(g - 1, tf.float32) / tf.maximum(tf.cast(size, tf.float32) - 1.0, 1.0), g)

    def points(self, y: tf.Tensor, x: tf.Tensor):
        d = tf.einsum("bni,bijk,bnj->bnk", self._lattice(y, self.height), self.offsets, self._lattice(x, self.width))
        return d[..., 0], d[..., 1]

    def dense(self):
        """Bilinear upsampling as two small matrix products: ``Wy @ offsets @ Wx^T``."""
        wy = self._lattice(tf.range(self.height, dtype=tf.float32), self.height)
        wx = self._lattice(tf.range(self.width, dtype=tf.float32), self.width)
        d = tf.einsum("hi,bijk,wj->kbhw", wy, self.offsets, wx)
        return d[0], d[1]


class GridDistortion:
    """Separable grid distortion (as albumentations' ``GridDistortion``): each axis is cut
    into ``steps`` bands; output band ``i`` reads a source band resized by ``scale[:, i]``
    (renormalised so the bands still span the image). ``scale_y, scale_x``: ``[B, steps]``."""

    def __init__(self, scale_y: tf.Tensor, scale_x: tf.Tensor, height, width):
        self.knots_y = self._knots(scale_y, height)
        self.knots_x = self._knots(scale_x, width)
        self.height, self.width = height, width

    @staticmethod
    def _knots(scales: tf.Tensor, size) -> tf.Tensor:
        widths = scales / tf.reduce_sum(scales, -1, keepdims=True) * (tf.cast(size, tf.float32) - 1.0)
        return tf.pad(tf.cumsum(widths, -1), [[0, 0], [1, 0]])  # [B, steps+1] source positions

    @staticmethod
    def _shift(knots: tf.Tensor, v: tf.Tensor, size) -> tf.Tensor:
        steps = tf.cast(tf.shape(knots)[1] - 1, tf.float32)
        band = tf.maximum(tf.cast(size, tf.float32) - 1.0, 1.0) / steps
        t = tf.clip_by_value(v / band, 0.0, steps)
        i = tf.minimum(tf.floor(t), steps - 1.0)
        lo = tf.gather(knots, tf.cast(i, tf.int32), batch_dims=1)
        hi = tf.gather(knots, tf.cast(i, tf.int32) + 1, batch_dims=1)
        return lo + (t - i) * (hi - lo) - tf.clip_by_value(v, 0.0, steps * band)  # 0 beyond the edges

    def points(self, y: tf.Tensor, x: tf.Tensor):
        return self._shift(self.knots_y, y, self.height), self._shift(self.knots_x, x, self.width)

    def dense(self):
        b = tf.shape(self.knots_y)[0]
        ys = tf.tile(tf.range(self.height, dtype=tf.float32)[None], [b, 1])
        xs = tf.tile(tf.range(self.width, dtype=tf.float32)[None], [b, 1])
        return self._shift(self.knots_y, ys, self.height)[:, :, None], self._shift(self.knots_x, xs, self.width)[:, None, :]


class Masked:
    """A warp switched off for images where ``applied`` (``[B]`` bool) is False."""

    def __init__(self, warp, applied: tf.Tensor):
        self.warp, self.mask = warp, tf.cast(applied, tf.float32)

    def points(self, y, x):
        dy, dx = self.warp.points(y, x)
        return dy * self.mask[:, None], dx * self.mask[:, None]

    def dense(self):
        dy, dx = self.warp.dense()
        m = self.mask[:, None, None]
        return dy * m, dx * m


def _apply_matrix(m: tf.Tensor, y: tf.Tensor, x: tf.Tensor):
    extra = [1] * (len(y.shape) - 1)
    a = lambda i, j: tf.reshape(m[:, i, j], [-1] + extra)  # noqa: E731
    return a(1, 0) * x + a(1, 1) * y + a(1, 2), a(0, 0) * x + a(0, 1) * y + a(0, 2)


def shift_and_flip(images: tf.Tensor, matrices: tf.Tensor) -> tf.Tensor:
    """Exact resampling for maps whose linear part is ``diag(+-1, +-1)`` and whose shift is
    whole pixels (mirrors and padded crops): two row/column gathers, zero outside, any
    dtype; equal to ``warp_images`` for such maps but much cheaper."""
    h, w = tf.shape(images)[1], tf.shape(images)[2]

    def index(i, size):
        grid = tf.range(size, dtype=tf.float32)[None]
        return tf.cast(tf.round(matrices[:, i, i : i + 1] * grid + matrices[:, i, 2:3]), tf.int32)

    rows, cols = index(1, h), index(0, w)
    out = tf.gather(images, tf.clip_by_value(rows, 0, h - 1), axis=1, batch_dims=1)
    out = tf.gather(out, tf.clip_by_value(cols, 0, w - 1), axis=2, batch_dims=1)
    inside = ((rows >= 0) & (rows < h))[:, :, None, None] & ((cols >= 0) & (cols < w))[:, None, :, None]
    return tf.ensure_shape(out * tf.cast(inside, images.dtype), images.shape)


def warp_images(images: tf.Tensor, matrices: tf.Tensor, warps: list) -> tf.Tensor:
    """Resample ``[B, H, W, C]`` through ``S(p) = M @ (p + sum_i D_i(p))`` (one
    bilinear resampling, zero outside) -> float32 ``[B, H, W, C]``."""
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    y = tf.reshape(tf.range(h, dtype=tf.float32), [1, -1, 1])
    x = tf.reshape(tf.range(w, dtype=tf.float32), [1, 1, -1])
    for warp in warps:  # [B, H, W] fields, or [B, H, 1] and [B, 1, W] for separable ones
        dy, dx = warp.dense()
        y, x = y + dy, x + dx
    sy, sx = _apply_matrix(matrices, y, x)  # broadcasts to [B, H, W]
    return tf.ensure_shape(sample_image(images, sy, sx), images.shape)


def forward_points(matrices: tf.Tensor, warps: list, y: tf.Tensor, x: tf.Tensor, iterations: int = 12):
    """Where source index points ``y, x`` ``[B, N]`` land in the output: solves ``S(p) = s``.

    Closed form through ``M^-1``; with warps, the fixed point ``p = M^-1 s - D(p)``
    (converges for warps that do not fold the image)."""
    qy, qx = _apply_matrix(tf.linalg.inv(matrices), y, x)
    if not warps:
        return qy, qx

    def step(i, py, px):
        dy, dx = 0.0, 0.0
        for warp in warps:
            wy, wx = warp.points(py, px)
            dy, dx = dy + wy, dx + wx
        return i + 1, qy - dy, qx - dx

    _, py, px = tf.while_loop(lambda i, py, px: i < iterations, step, (0, qy, qx))
    return py, px


def transform_keypoints(keypoints, matrices, warps, height, width):
    """Normalised ``[B, K, 2]`` (x, y) -> normalised output positions and a visibility
    mask ``[B, K]`` (False when a point leaves the image)."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    py, px = forward_points(matrices, warps, keypoints[..., 1] * h - 0.5, keypoints[..., 0] * w - 0.5)
    out = tf.stack([(px + 0.5) / w, (py + 0.5) / h], -1)
    visible = tf.reduce_all((out >= 0.0) & (out <= 1.0), -1)
    return out, visible


def box_outlines(boxes: tf.Tensor, samples: int = 8) -> tf.Tensor:
    """Normalised ``[B, N, 4]`` boxes -> ``[B, N * 4 * samples, 2]`` (x, y) points on their edges."""
    t = tf.linspace(0.0, 1.0, samples)
    ymin, xmin, ymax, xmax = (boxes[..., i : i + 1] for i in range(4))
    ones = tf.ones_like(t)
    ys = tf.concat([ymin * ones, ymax * ones, ymin + (ymax - ymin) * t, ymin + (ymax - ymin) * t], -1)
    xs = tf.concat([xmin + (xmax - xmin) * t, xmin + (xmax - xmin) * t, xmin * ones, xmax * ones], -1)
    return tf.reshape(tf.stack([xs, ys], -1), [tf.shape(boxes)[0], -1, 2])


def boxes_around(outlines: tf.Tensor, count, min_visibility: float = 0.25):
    """Moved outline points ``[B, count * P, 2]`` -> clipped boxes ``[B, count, 4]`` around
    them and a keep mask ``[B, count]`` (False when less than ``min_visibility`` of the
    box stays inside the image, or nothing does)."""
    moved = tf.reshape(outlines, [tf.shape(outlines)[0], count, -1, 2])[..., ::-1]  # (y, x)
    full = tf.concat([tf.reduce_min(moved, 2), tf.reduce_max(moved, 2)], -1)
    clipped = tf.clip_by_value(full, 0.0, 1.0)
    area = (full[..., 2] - full[..., 0]) * (full[..., 3] - full[..., 1])
    kept = (clipped[..., 2] - clipped[..., 0]) * (clipped[..., 3] - clipped[..., 1])
    return clipped, (kept > 0.0) & (kept >= min_visibility * area)

