"""On-the-fly augmentation: a checked policy rendered as TF graph ops in tf.data's thread pool.

The policy (names, options, validation) is ``pipelines.augment_policy``;
this module renders its checked steps as graph ops: one sampler per transform
(``SAMPLERS``) draws each image's matrix, warp or colour offset.

All geometric steps of an image are fused into one inverse map and one
resampling (affine steps in list order, then the warps; zero fill outside),
so boxes and keypoints move exactly as the pixels do (``pipelines.geometry``).
Colour steps then add their offsets. For fixed-size images this per-pixel work
(resampling, offsets, rounding) is one XLA-compiled function; parameters are
drawn outside it (XLA runs its loops on TF's intra-op thread pool, so one
tf.data thread may keep more than one core busy). Randomness is stateless and comes from a
per-element seed stream: with ``seed`` the same recipe repeats exactly, run
after run (and differs epoch to epoch); without, order is non-deterministic.

Example:
    >>> policy = [ "mirror", {"random_crop": {"padding": 4}} ]
    >>> train = augment_dataset(train, policy, seed=42)   # unbatched (image, label)
"""

from __future__ import annotations

import tensorflow as tf

from pipelines import geometry
from pipelines.augment_policy import Step, validate_policy, whole_pixels
from pipelines.flip_pairs import FlipPairs
from pipelines.pca_colour import PcaColour

MICRO_PIXELS = 1 << 18  # fixed-size images are augmented ~this many pixels at a time (vectorised)
BOX_ALIGNED = ("box_labels",)  # dict fields filtered together with "boxes"


class _Rng:
    """Stateless draws from one seed; each draw folds in a new counter."""

    def __init__(self, seed: tf.Tensor):
        self.seed, self.count = seed, 0

    def _next(self) -> tf.Tensor:
        self.count += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.count)

    def uniform(self, shape, lo=0.0, hi=1.0) -> tf.Tensor:
        return tf.random.stateless_uniform(shape, self._next(), lo, hi)

    def normal(self, shape, std=1.0) -> tf.Tensor:
        return tf.random.stateless_normal(shape, self._next(), stddev=std)


def _range(value) -> tuple[float, float]:
    if isinstance(value, (list, tuple)):
        return float(value[0]), float(value[1])
    return -float(value), float(value)


def _mirror(rng, b, h, w, c, o, pca):
    return geometry.mirror(tf.ones([b]), h, w, vertical=o["vertical"])


def _random_crop(rng, b, h, w, c, o, pca):
    pad = float(o["padding"])
    area = rng.uniform([b], *o["scale"])
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    ch, cw = tf.round(tf.sqrt(area) * hf), tf.round(tf.sqrt(area) * wf)
    oy = -pad + tf.floor(rng.uniform([b]) * (hf + 2 * pad - ch + 1))
    ox = -pad + tf.floor(rng.uniform([b]) * (wf + 2 * pad - cw + 1))
    return geometry.crop(oy, ox, ch, cw, h, w)


def _rotate(rng, b, h, w, c, o, pca):
    return geometry.rotation(rng.uniform([b], *_range(o["degrees"])), h, w)


def _shear(rng, b, h, w, c, o, pca):
    return geometry.shear(rng.uniform([b], *_range(o["degrees"])), h, w, axis=o["axis"])


def _elastic(rng, b, h, w, c, o, pca):
    size = tf.cast(tf.minimum(h, w), tf.float32) * float(o["magnitude"])
    offsets = rng.uniform([b, o["grid"], o["grid"], 2], -1.0, 1.0) * size
    return geometry.Elastic(offsets, h, w)


def _grid_distortion(rng, b, h, w, c, o, pca):
    lo, hi = 1.0 - o["limit"], 1.0 + o["limit"]
    return geometry.GridDistortion(rng.uniform([b, o["steps"]], lo, hi), rng.uniform([b, o["steps"]], lo, hi), h, w)


def _colour_shift(rng, b, h, w, c, o, pca):
    return rng.uniform([b, 1, 1, c], -float(o["shift"]), float(o["shift"]))


def _pca_colour(rng, b, h, w, c, o, pca: PcaColour):
    if c != 3:
        raise ValueError(f"pca_colour needs RGB images (3 channels); the images here have {c}")
    alpha = rng.normal([b, 3], std=float(o["std"]))
    values = tf.constant(pca.eigenvalues, tf.float32)
    vectors = tf.constant(pca.eigenvectors, tf.float32)
    shift = tf.matmul(alpha * values, vectors, transpose_b=True) * 255.0  # sum_i alpha_i lambda_i p_i
    return tf.reshape(shift, [b, 1, 1, 3])


# transform name -> (rng, batch, height, width, channels, options, pca) -> matrix | warp | colour offset
SAMPLERS = {
    "mirror": _mirror,
    "random_crop": _random_crop,
    "rotate": _rotate,
    "shear": _shear,
    "elastic": _elastic,
    "grid_distortion": _grid_distortion,
    "colour_shift": _colour_shift,
    "pca_colour": _pca_colour,
}


def augment_batch(images, seed, steps: list[Step], pca: PcaColour | None = None, boxes=None, keypoints=None,
                  visible=None, flip_pairs: FlipPairs | None = None):
    """Augment uint8 ``[B, H, W, C]`` with one stateless ``seed`` (int64, ``[]`` or ``[2]``); every image
    draws its own parameters. Optional normalised ``boxes`` ``[B, N, 4]`` and ``keypoints``
    ``[B, K, 2]`` (x, y) move with the pixels; ``visible`` ``[B, K]`` bool says which were
    visible before. With ``flip_pairs`` the keypoints are groups of ``len(flip_pairs.names)``
    landmarks whose symmetric labels swap in mirrored images. Returns ``(images, boxes,
    box_keep, keypoints, visible)`` (``None`` for parts not given)."""
    b, h, w = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    c = images.shape[-1]
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros_like(seed)])
    matrix, warps, offset, flips = None, [], None, []
    mirrored = {}  # axis -> [B] bool: an odd number of mirrors on that axis (for flip_pairs)
    # only mirrors move pixels and nothing else moves with them: flip, no index maps at all
    flips_only = boxes is None and keypoints is None and all(s.name == "mirror" for s in steps if s.kind != "colour")
    for index, step in enumerate(steps):
        rng = _Rng(tf.random.experimental.stateless_fold_in(seed, index))
        if flips_only and step.name == "mirror":
            flips.append((rng.uniform([b]) < step.options["p"], 1 if step.options["vertical"] else 2))
            continue
        value = SAMPLERS[step.name](rng, b, h, w, c, step.options, pca)
        applied = rng.uniform([b]) < step.options["p"] if step.options["p"] < 1 else tf.ones([b], tf.bool)
        if step.name == "mirror":
            axis = "vertical" if step.options["vertical"] else "horizontal"
            mirrored[axis] = tf.not_equal(mirrored[axis], applied) if axis in mirrored else applied
        if step.kind == "affine":
            value = tf.where(applied[:, None, None], value, geometry.identity(b))
            matrix = value if matrix is None else matrix @ value
        elif step.kind == "warp":
            warps.append(geometry.Masked(value, applied))
        else:
            value = value * tf.cast(applied, tf.float32)[:, None, None, None]
            offset = value if offset is None else offset + value
    geometric = matrix is not None or bool(warps)
    if geometric and matrix is None:
        matrix = geometry.identity(b)
    exact = geometric and not warps and all(whole_pixels(s) for s in steps if s.kind == "affine")

    def render():
        out, pixels = images, None
        for flip, axis in flips:
            out = tf.where(flip[:, None, None, None], tf.reverse(out, [axis]), out)
        if exact:
            out = geometry.shift_and_flip(images, matrix)  # mirrors and padded crops: exact, no resampling
        elif geometric:
            pixels = geometry.warp_images(images, matrix, warps)
        if offset is not None:
            pixels = (tf.cast(out, tf.float32) if pixels is None else pixels) + offset
        if pixels is not None:
            out = tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)
        return out

    # Fixed-size images: XLA compiles the per-pixel work into a few fused loops (no
    # intermediate full-size tensors), several times faster than running it op by op.
    # Sizes that vary per element run op by op (XLA would compile once per size).
    out = tf.function(render, jit_compile=True)() if images.shape[1:].is_fully_defined() else render()
    keep = None
    if keypoints is not None:
        visible = tf.ones(tf.shape(keypoints)[:2], tf.bool) if visible is None else tf.cast(visible, tf.bool)
    if geometric and (boxes is not None or keypoints is not None):
        parts = [] if boxes is None else [geometry.box_outlines(boxes)]
        parts += [] if keypoints is None else [keypoints]
        moved, inside = geometry.transform_keypoints(tf.concat(parts, 1), matrix, warps, h, w)
        if keypoints is not None:
            k = tf.shape(keypoints)[1]
            keypoints, visible = moved[:, -k:], inside[:, -k:] & visible
            moved = moved[:, :-k]
            if flip_pairs is not None and mirrored:
                keypoints, visible = _swap_sides(flip_pairs, mirrored, keypoints, visible)
        if boxes is not None:
            boxes, keep = geometry.boxes_around(moved, tf.shape(boxes)[1])
    elif boxes is not None:
        keep = tf.ones(tf.shape(boxes)[:2], tf.bool)
    return out, boxes, keep, keypoints, visible


def _swap_sides(pairs: FlipPairs, mirrored: dict, points: tf.Tensor, visible: tf.Tensor):
    """Relabel mirrored images' keypoints ``[B, N*K, 2]`` and ``visible`` ``[B, N*K]``
    (``N`` objects of ``K`` landmarks): slot ``k`` takes landmark ``order[k]``."""
    k, b = len(pairs.names), tf.shape(points)[0]
    order = tf.tile(tf.range(k)[None], [b, 1])
    for axis, flipped in mirrored.items():
        swapped = tf.gather(order, pairs.permutation(axis), axis=1)
        order = tf.where(flipped[:, None], swapped, order)

    def relabel(t):
        grouped = tf.reshape(t, tf.concat([[b, -1, k], tf.shape(t)[2:]], 0))
        return tf.reshape(tf.gather(grouped, order, axis=2, batch_dims=1), tf.shape(t))

    return relabel(points), relabel(visible)


def _checked_steps(policy, pca: PcaColour | None) -> list[Step]:
    """The validated steps; ValueError if ``pca_colour`` is asked for without a basis."""
    steps = validate_policy(policy)
    if any(s.name == "pca_colour" for s in steps) and pca is None:
        raise ValueError("the policy has pca_colour but no PcaColour was given; fit one with fit_pca(train images)")
    return steps


def _seed_stream(seed: int | None) -> tf.data.Dataset:
    """One int64 per element: repeatable run after run with ``seed``, new every epoch."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)


def augment_dataset(ds: tf.data.Dataset, policy: list, seed: int | None, pca: PcaColour | None = None,
                    flip_pairs: FlipPairs | None = None) -> tf.data.Dataset:
    """Augment an UNBATCHED dataset on the fly; same structure, dtypes and static shapes.

    Elements are ``(image, label, ...)`` tuples (the image first, the rest passed through),
    a bare image, or a dict with ``image`` and optionally ``boxes`` ``[N, 4]`` (kept rows
    also filter ``box_labels``) and ``keypoints`` ``[K, 2]`` as normalised (x, y)
    (``keypoint_visible`` is set to False for points that leave the image). Images are
    uint8 ``[H, W, C]``. Landmark datasets pass their ``flip_pairs`` (``pipelines.flip_pairs``):
    keypoints are then groups of ``len(flip_pairs.names)`` landmarks, one group per object,
    and mirrored images swap their symmetric labels (``left_eye`` <-> ``right_eye``).

    Fixed-size images are augmented in micro-batches of about ``MICRO_PIXELS`` pixels
    (4 to 64 images: one vectorised op per stage, still per-image parameters, small
    enough to keep every core busy); others one by one. Already batched data can use
    ``augment_batches`` instead (no re-batching).

    Example:
        >>> ds = tf.data.Dataset.from_tensor_slices((x_train, y_train))
        >>> ds = augment_dataset(ds, ["mirror", {"rotate": {"degrees": 10}}], seed=1)
    """
    steps = _checked_steps(policy, pca)
    if not steps:
        return ds
    spec = ds.element_spec
    is_dict = isinstance(spec, dict)
    image_spec = spec["image"] if is_dict else spec[0] if isinstance(spec, tuple) else spec
    if image_spec.dtype != tf.uint8 or image_spec.shape.rank != 3:
        raise ValueError(f"augment_dataset needs uint8 [H, W, C] images; received {image_spec}")
    options = dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)

    if not is_dict and image_spec.shape.is_fully_defined():
        def on_batch(element, seed_pair):
            if isinstance(element, tuple):
                return (augment_batch(element[0], seed_pair, steps, pca)[0],) + element[1:]
            return augment_batch(element, seed_pair, steps, pca)[0]

        h, w = image_spec.shape[:2]
        batched = ds.batch(max(4, min(64, MICRO_PIXELS // (h * w))))
        out = tf.data.Dataset.zip((batched, _seed_stream(seed))).map(on_batch, **options)
        return _one_thread_per_call(out.unbatch())

    def on_element(element, seed_pair):
        if not is_dict:
            parts = element if isinstance(element, tuple) else (element,)
            image = augment_batch(parts[0][None], seed_pair, steps, pca)[0][0]
            return (image,) + parts[1:] if isinstance(element, tuple) else image
        element = dict(element)
        boxes = element["boxes"][None] if "boxes" in element else None
        points = element["keypoints"][None] if "keypoints" in element else None
        was = element["keypoint_visible"][None] if "keypoint_visible" in element else None
        image, boxes, keep, points, visible = augment_batch(element["image"][None], seed_pair, steps, pca, boxes,
                                                            points, was, flip_pairs)
        element["image"] = image[0]
        if boxes is not None:
            element["boxes"] = tf.boolean_mask(boxes[0], keep[0])
            for key in BOX_ALIGNED:
                if key in element:
                    element[key] = tf.boolean_mask(element[key], keep[0])
        if points is not None:
            element["keypoints"] = points[0]
            element["keypoint_visible"] = tf.cast(visible[0], tf.bool if was is None else was.dtype)
        return element

    return _one_thread_per_call(tf.data.Dataset.zip((ds, _seed_stream(seed))).map(on_element, **options))


def augment_batches(ds: tf.data.Dataset, policy: list, seed: int | None, pca: PcaColour | None = None) -> tf.data.Dataset:
    """Like ``augment_dataset`` for an already BATCHED dataset of ``(images [B, H, W, C],
    labels, ...)`` tuples: each image still draws its own parameters; one call per batch
    (the cheapest placement: after ``batch``, before ``prefetch``).

    Example:
        >>> train = augment_batches(train.batch(64), ["mirror"], seed=42).prefetch(2)
    """
    steps = _checked_steps(policy, pca)
    if not steps:
        return ds
    spec = ds.element_spec
    image_spec = spec[0] if isinstance(spec, tuple) else spec
    if image_spec.dtype != tf.uint8 or image_spec.shape.rank != 4:
        raise ValueError(f"augment_batches needs uint8 [B, H, W, C] batches; received {image_spec}")

    def on_batch(element, seed_pair):
        if isinstance(element, tuple):
            return (augment_batch(element[0], seed_pair, steps, pca)[0],) + element[1:]
        return augment_batch(element, seed_pair, steps, pca)[0]

    out = tf.data.Dataset.zip((ds, _seed_stream(seed))).map(
        on_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    return _one_thread_per_call(out)


def _one_thread_per_call(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Each augmentation call on one thread, the calls in parallel: the ops inside a call then stay
    off the intra-op pool that the training step runs on (measured in ``benchmarks/augment.py``)."""
    options = tf.data.Options()
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options)
