"""Object localisation with landmarks: at most one object per image, the notes' ``y`` vector.

Data: scenes (``pipelines.scenes``) holding zero or one real object on a real
photo, with its exact box and five landmarks read from its mask (centroid,
top, bottom, left, right); with ``scenes.fresh`` (default) every epoch draws
``scenes.train`` new ones. Model ``localiser`` outputs ``[pc, bx, by, bw, bh,
classes..., l1x, l1y, ...]``; the loss only looks at ``pc`` when there is no
object.

Evaluation on held-out scenes: ``pc`` accuracy (object present iff
``pc > localisation.pc_threshold``), class accuracy, mean box IoU and the share
with IoU >= 0.5, and the mean landmark error (fraction of the image side), on
the images that hold an object. Export: ``detection_*`` outputs (at most one
box) plus ``landmarks`` ``[N, 1, K, 2]``, so ``convforge detect`` draws them too.

``data.augment`` transforms each training scene's box and landmarks with its
pixels (``pipelines.augment``); a mirror also swaps the landmarks whose names
say a side (``LANDMARK_FLIP``: left <-> right, top <-> bottom), and an object
whose box leaves the image becomes a scene without one (``pc = 0``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
import yaml

from models.boxes import corners_from_midpoint, iou_np
from models.localisation import LocalisationLoss, decode_localisation, encode_localisation
from pipelines.augment import augment_dataset
from pipelines.augment_policy import validate_policy
from pipelines.decode import decode_image
from pipelines.scene_data import scene_element_dataset, scenes_fingerprint
from pipelines.scenes import LANDMARK_FLIP, LANDMARK_NAMES, Scenes
from serving.export import CLASS_NAMES_FILE, export_image_model
from tasks.core.errors import UserError
from tasks.core.task import RECIPE_ASSET, Inputs, Task, register_task
from tasks.figures import plots
from tasks.figures.detection_drawing import draw_detections, tile, write_png
from tasks.problems.detection import fit_scenes, fresh_scene_stream, load_scene_splits


def scene_target(boxes, classes, landmarks, num_classes: int) -> np.ndarray:
    """The ``[5 + C + 2K]`` target of one scene with zero or one object: ``boxes [M, 4]``, ``classes [M]``,
    ``landmarks`` ``[M, K, 2]`` or ``[M * K, 2]`` (normalised (x, y)); no box means no object (``pc = 0``)."""
    k = len(LANDMARK_NAMES)
    if len(boxes) == 0:
        return encode_localisation(None, 0, None, num_classes, k)
    return encode_localisation(boxes[0], classes[0], np.asarray(landmarks).reshape(-1, 2)[:k], num_classes, k)


def localisation_targets(scenes: Scenes, num_classes: int) -> np.ndarray:
    """``[N, 5 + C + 2K]`` targets of scenes with zero or one object each."""
    return np.stack([scene_target(b, c, m, num_classes)
                     for b, c, m in zip(scenes.boxes, scenes.classes, scenes.landmarks, strict=False)])


def augmented_targets(elements: tf.data.Dataset, policy: list, seed: int | None, num_classes: int) -> tf.data.Dataset:
    """``(image, target)`` pairs of augmented scene elements (``pipelines.scene_data.scene_elements`` with
    keypoints): the box and landmarks move with the pixels, a mirror swaps the sided landmarks, a box that
    left the image means no object."""
    k = len(LANDMARK_NAMES)

    def target(boxes, labels, points):
        return scene_target(boxes, labels, points, num_classes)

    def encode(e):
        y = tf.numpy_function(target, [e["boxes"], e["box_labels"], e["keypoints"]], tf.float32)
        return e["image"], tf.ensure_shape(y, [5 + num_classes + 2 * k])

    ds = augment_dataset(elements, policy, seed, flip_pairs=LANDMARK_FLIP)
    return ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)


def localisation_metrics(scenes: Scenes, outputs: np.ndarray, num_classes: int, pc_threshold: float) -> dict:
    """pc accuracy, class accuracy, mean IoU, IoU >= 0.5 rate and landmark error on held-out scenes."""
    d = decode_localisation(outputs, num_classes)
    has = np.array([len(b) > 0 for b in scenes.boxes])
    pos = np.nonzero(has)[0]
    ious = np.array([iou_np(d["boxes"][i], scenes.boxes[i][0]) for i in pos])
    err = np.array([np.linalg.norm(d["landmarks"][i] - scenes.landmarks[i][0], axis=-1).mean() for i in pos])
    classes = np.array([scenes.classes[i][0] for i in pos])
    return {
        "pc_accuracy": float(np.mean((d["pc"] > pc_threshold) == has)),
        "class_accuracy": float(np.mean(d["classes"][pos] == classes)) if len(pos) else 0.0,
        "mean_iou": float(ious.mean()) if len(pos) else 0.0,
        "iou50_rate": float(np.mean(ious >= 0.5)) if len(pos) else 0.0,
        "landmark_error": float(err.mean()) if len(pos) else 0.0,
    }


@register_task("localisation")
class LocalisationTask(Task):
    """Localisation + landmarks (``model.name: localiser``)."""

    defaults = {
        "data": {"dataset": "scenes:fashion_mnist", "image_size": [64, 64]},
        "model": {"name": "localiser"},
        "scenes": {"train": 3000, "val": 300, "test": 500, "fresh": True, "objects_per_scene": [0, 1],
                   "object_size": [20, 40], "max_overlap": 0.0},
        "localisation": {"box_weight": 5.0, "landmark_weight": 5.0, "pc_threshold": 0.6},
    }

    def build_inputs(self) -> Inputs:
        data = self.recipe["data"]
        try:
            validate_policy(data["augment"])
        except ValueError as err:
            raise UserError(f"data.augment: {err}") from None
        if self.recipe["scenes"]["objects_per_scene"][1] > 1:
            raise UserError("scenes.objects_per_scene: localisation takes at most one object per image; use [0, 1]")
        if not data["dataset"].startswith("scenes:"):
            raise UserError(f"data.dataset {data['dataset']!r}: localisation trains on generated scenes "
                            "(scenes:fashion_mnist or scenes:digits), which carry the five landmarks")
        image_size = data["image_size"] or [64, 64]
        train, val, self.test_scenes = load_scene_splits(data["dataset"], image_size, self.recipe["scenes"],
                                                         self.recipe["seed"])
        self.num_classes = len(train.class_names)
        bs = self.recipe["train"]["batch_size"]

        def ds(s: Scenes, shuffle: bool) -> tf.data.Dataset:
            out = tf.data.Dataset.from_tensor_slices((s.images, localisation_targets(s, self.num_classes)))
            if shuffle:
                out = out.shuffle(min(len(s), data["shuffle_buffer"]), seed=self.recipe["seed"])
            return out.batch(bs).prefetch(tf.data.AUTOTUNE)

        if data["augment"]:
            train_ds = self._augmented_stream(train, image_size, bs)
        else:
            train_ds = self._fresh_stream(image_size, bs) if self.recipe["scenes"]["fresh"] else ds(train, True)
        return Inputs(
            train=train_ds,
            val=ds(val, False), test=ds(self.test_scenes, False),
            input_shape=(int(image_size[0]), int(image_size[1]), 3), class_names=train.class_names,
            info={"fingerprint": scenes_fingerprint(train, val, self.test_scenes),
                  "sizes": {"train": len(train), "val": len(val), "test": len(self.test_scenes)}},
        )

    def _fresh_chunks(self, image_size) -> Iterator[Scenes]:
        """New scenes every epoch (one endless seeded stream, continued across epochs): nothing to memorise."""
        return fresh_scene_stream(self.recipe["data"]["dataset"], image_size, self.recipe["scenes"], self.recipe["seed"])

    def _fresh_stream(self, image_size, batch_size: int) -> tf.data.Dataset:
        k, stream = self.num_classes, self._fresh_chunks(image_size)

        def scenes():
            for chunk in stream:
                yield from zip(chunk.images, localisation_targets(chunk, k), strict=True)

        h, w = (int(v) for v in image_size)
        ds = tf.data.Dataset.from_generator(scenes, output_signature=(
            tf.TensorSpec([h, w, 3], tf.uint8), tf.TensorSpec([5 + k + 2 * len(LANDMARK_NAMES)], tf.float32)))
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def _augmented_stream(self, train: Scenes, image_size, batch_size: int) -> tf.data.Dataset:
        """Fresh (or the fixed, reshuffled) training scenes through ``data.augment``."""
        fresh, seed = self.recipe["scenes"]["fresh"], self.recipe["seed"]
        stream = self._fresh_chunks(image_size) if fresh else None
        elements = scene_element_dataset(lambda: stream if fresh else [train], image_size, keypoints=True)
        if not fresh:
            elements = elements.shuffle(min(len(train), self.recipe["data"]["shuffle_buffer"]), seed=seed)
        ds = augmented_targets(elements, self.recipe["data"]["augment"], seed, self.num_classes)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def fit(self, model, inputs, callbacks):
        return fit_scenes(model, inputs, callbacks, self.recipe, bool(self.recipe["scenes"]["fresh"]))

    def model_options(self, inputs: Inputs) -> dict:
        return {"landmarks": len(LANDMARK_NAMES), **super().model_options(inputs)}

    def build_losses(self):
        cfg = self.recipe["localisation"]
        return LocalisationLoss(self.num_classes, cfg["box_weight"], cfg["landmark_weight"])

    def evaluate(self, model, inputs) -> dict[str, float]:
        self._outputs = model.predict(self.test_scenes.images, batch_size=256, verbose=0)
        values = localisation_metrics(self.test_scenes, self._outputs, self.num_classes,
                                      self.recipe["localisation"]["pc_threshold"])
        return {f"test_{k}": v for k, v in values.items()}

    def log_figures(self, model, inputs, history, out_dir: Path) -> list[Path]:
        out = []
        if history:
            out.append(plots.save(plots.training_curves(history), out_dir / "training_curves.png"))
        n = min(8, len(self.test_scenes))
        outputs = getattr(self, "_outputs", None)
        d = decode_localisation(outputs[:n] if outputs is not None else model.predict(self.test_scenes.images[:n], verbose=0),
                                self.num_classes)
        tiles = []
        for i in range(n):
            s = self.test_scenes
            im = draw_detections(s.images[i], s.boxes[i], s.classes[i], colour=(255, 255, 255),
                                 thickness=1, labels=False)
            if d["pc"][i] > self.recipe["localisation"]["pc_threshold"]:
                im = draw_detections(im, d["boxes"][i : i + 1], d["classes"][i : i + 1], d["pc"][i : i + 1],
                                     inputs.class_names, landmarks=d["landmarks"][i : i + 1])
            tiles.append(im)
        out.append(write_png(out_dir / "localisation.png", tile(tiles, columns=4)))
        return out

    def export(self, model, inputs, root, name) -> Path:
        c, threshold = self.num_classes, self.recipe["localisation"]["pc_threshold"]

        def serve(images):
            y = tf.cast(model(images, training=False), tf.float32)
            boxes = corners_from_midpoint(y[:, 1:5])[:, None]
            present = y[:, 0] > threshold
            return {
                "detection_boxes": tf.clip_by_value(boxes, 0.0, 1.0),
                "detection_scores": y[:, :1],
                "detection_classes": tf.cast(tf.argmax(y[:, 5 : 5 + c], -1), tf.float32)[:, None],
                "num_detections": tf.cast(present, tf.int32),
                "landmarks": tf.reshape(y[:, 5 + c :], [-1, 1, len(LANDMARK_NAMES), 2]),
            }

        assets = {CLASS_NAMES_FILE: "\n".join(inputs.class_names) + "\n",
                  RECIPE_ASSET: yaml.safe_dump(self.recipe, sort_keys=False)}
        return export_image_model(serve, model, root, name, inputs.input_shape[:2], 3, assets, decode=decode_image)
