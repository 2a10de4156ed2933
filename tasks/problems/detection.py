"""Object detection with YOLO on labelled scenes: anchors by k-means, grid targets, mAP, NMS in the export.

Data: ``data.dataset: scenes:fashion_mnist`` (or ``scenes:digits``) makes
scenes with ``pipelines.scenes`` — real objects on real photos, exact boxes;
training scenes use the catalog's *training* objects, test scenes its *test*
objects and other seeds, so the test scenes are held out. ``voc:DIR``,
``coco:FILE.json`` and ``yolo:DIR`` read a labelled dataset through
``pipelines.annotations`` (split by ``data.val_fraction``/``test_fraction``). ``data.augment``
applies the box-aware augmentation policy (boxes move with the pixels) before
the targets are encoded.

``scenes.fresh`` (default true, generated scenes only): every epoch trains on
``scenes.train`` *new* scenes from an endless seeded stream, so the detector
never sees a scene twice and cannot memorise backgrounds.

Recipe section ``detection``: ``anchors`` (k of the k-means), thresholds of
the post-processing (``score_threshold`` 0.6: discard ``pc <= 0.6``;
``iou_threshold`` 0.5: suppress IoU >= 0.5, per class), ``max_detections``,
and the loss weights. Section ``scenes``: how many scenes and what they hold.

Evaluation: VOC mAP@0.5 and COCO mAP@[.5:.95] on the held-out scenes (logged
as ``test_map50_voc``, ``test_map_coco`` ...). mAP integrates precision over
all recall levels, so it ranks detections down to ``eval_score_threshold``
(0.05, the usual practice) rather than stopping at the serving threshold;
figures: training curves and
predicted vs true boxes. Export: uint8 images or encoded bytes in,
``detection_boxes``, ``detection_scores``, ``detection_classes``,
``num_detections`` out (decoding + NMS inside the graph).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from models.anchors import box_shapes, kmeans_anchors, mean_best_iou
from models.yolo import YoloLoss, detect, encode_targets
from pipelines import scene_data
from pipelines.decode import decode_image
from pipelines.scene_data import scene_element_dataset, scenes_fingerprint
from pipelines.scenes import Scenes
from serving.export import CLASS_NAMES_FILE, export_image_model
from tasks.core.errors import UserError
from tasks.core.task import RECIPE_ASSET, Inputs, Task, progress_verbosity, register_task
from tasks.evaluation.mean_average_precision import detection_metrics
from tasks.figures import plots
from tasks.figures.detection_drawing import draw_detections, tile, write_png

ANCHORS_ASSET = "anchors.json"
SCENE_DEFAULTS = {
    "train": 3000, "val": 300, "test": 500, "fresh": True,
    "objects_per_scene": [1, 4], "object_size": [24, 48], "max_overlap": 0.1,
}
# the recipe defaults every scene detector shares (YOLO here, Fast/Faster R-CNN in tasks.problems.two_stage)
SCENE_TASK_DEFAULTS = {
    "data": {"dataset": "scenes:fashion_mnist", "image_size": [128, 128], "test_fraction": 0.1},
    "scenes": dict(SCENE_DEFAULTS),
}
POSTPROCESS_DEFAULTS = {"score_threshold": 0.6, "iou_threshold": 0.5, "max_detections": 50, "eval_score_threshold": 0.05}
MAX_BOXES = 32


def load_scene_splits(dataset: str, image_size, cfg: dict, seed: int, val_fraction: float = 0.1,
                      test_fraction: float = 0.1) -> tuple[Scenes, Scenes, Scenes]:
    """``pipelines.scene_data.load_scene_splits``; what it cannot read is a ``UserError`` naming ``data.dataset``."""
    try:
        return scene_data.load_scene_splits(dataset, image_size, cfg, seed, val_fraction, test_fraction)
    except ValueError as err:
        raise UserError(f"data.dataset {dataset!r}: {err}") from None


def fresh_scene_stream(dataset: str, image_size, cfg: dict, seed: int) -> Iterator[Scenes]:
    """``pipelines.scene_data.fresh_scene_stream`` of ``scenes:<objects>``, with ``UserError`` as above."""
    try:
        return scene_data.fresh_scene_stream(dataset.partition(":")[2], image_size, cfg, seed)
    except ValueError as err:
        raise UserError(f"data.dataset {dataset!r}: {err}") from None


def fit_scenes(model: keras.Model, inputs: Inputs, callbacks: list, recipe: dict, fresh: bool):
    """``model.fit``; with a fresh (endless) scene stream an epoch is ``scenes.train`` scenes."""
    train = recipe["train"]
    steps = train["steps_per_epoch"]
    if steps is None and fresh:
        steps = -(-recipe["scenes"]["train"] // train["batch_size"])
    return model.fit(inputs.train, validation_data=inputs.val, epochs=train["epochs"], steps_per_epoch=steps,
                     callbacks=callbacks, verbose=progress_verbosity())


def predict_detections(model, images: np.ndarray, anchors, num_classes: int, score_threshold=0.6,
                       iou_threshold=0.5, max_detections=100, batch_size: int = 64,
                       one_class_per_box: bool = False) -> list[tuple]:
    """Run the YOLO model + decoding + NMS; per image ``(boxes [D, 4], scores [D], classes [D])``."""
    fn = tf.function(lambda x: detect(model(x, training=False), anchors, num_classes, score_threshold,
                                      iou_threshold, max_detections, one_class_per_box), reduce_retracing=True)
    out = []
    for i in range(0, len(images), batch_size):
        d = {k: v.numpy() for k, v in fn(tf.constant(images[i : i + batch_size])).items()}
        for j, n in enumerate(d["num_detections"]):
            out.append((d["detection_boxes"][j, :n], d["detection_scores"][j, :n], d["detection_classes"][j, :n].astype(int)))
    return out


def evaluate_detections(scenes: Scenes, detections: list[tuple]) -> dict[str, float]:
    """mAP numbers of per-image detections against the scenes' ground truth."""
    return detection_metrics(scenes.boxes, scenes.classes, [d[0] for d in detections],
                             [d[1] for d in detections], [d[2] for d in detections])


def detections_figure(scenes: Scenes, detections: list[tuple], class_names, count: int = 8) -> np.ndarray:
    """Held-out scenes: true boxes thin white, predictions coloured with class and score."""
    tiles = []
    for i in range(min(count, len(scenes))):
        im = draw_detections(scenes.images[i], scenes.boxes[i], scenes.classes[i], colour=(255, 255, 255),
                             thickness=1, labels=False)
        boxes, scores, classes = detections[i]
        tiles.append(draw_detections(im, boxes, classes, scores, class_names))
    return tile(tiles, columns=4)


@register_task("detection")
class DetectionTask(Task):
    """YOLO detection (``model.name: yolo``) on generated scenes."""

    defaults = dict(SCENE_TASK_DEFAULTS, model={"name": "yolo"},
                    detection=dict(POSTPROCESS_DEFAULTS, anchors=3, coord_weight=5.0, noobj_weight=0.5))

    def build_inputs(self) -> Inputs:
        data, det = self.recipe["data"], self.recipe["detection"]
        image_size = data["image_size"] or [128, 128]
        self.train_scenes, val, self.test_scenes = load_scene_splits(
            data["dataset"], image_size, self.recipe["scenes"], self.recipe["seed"], data["val_fraction"],
            data["test_fraction"])
        wh = box_shapes(np.concatenate(self.train_scenes.boxes))
        self.anchors = kmeans_anchors(wh, det["anchors"], seed=self.recipe["seed"])
        stride = int(self.recipe["model"]["options"].get("stride", 16))
        self.grid = int(image_size[0]) // stride
        self.num_classes = len(self.train_scenes.class_names)
        bs = self.recipe["train"]["batch_size"]
        return Inputs(
            train=self._train_dataset(bs),
            val=self._dataset(val).batch(bs),
            test=self._dataset(self.test_scenes).batch(bs),
            input_shape=(int(image_size[0]), int(image_size[1]), 3),
            class_names=self.train_scenes.class_names,
            info={"fingerprint": scenes_fingerprint(self.train_scenes, val, self.test_scenes),
                  "sizes": {"train": len(self.train_scenes), "val": len(val), "test": len(self.test_scenes)},
                  "anchors": self.anchors.tolist(), "anchor_mean_iou": mean_best_iou(wh, self.anchors)},
        )

    def _encode(self, boxes, classes) -> np.ndarray:
        return encode_targets(boxes, classes, self.anchors, self.grid, self.num_classes)

    def _dataset(self, scenes: Scenes) -> tf.data.Dataset:
        targets = np.stack([self._encode(b, c) for b, c in zip(scenes.boxes, scenes.classes, strict=False)])
        return tf.data.Dataset.from_tensor_slices((scenes.images, targets))

    def _fresh(self) -> bool:
        return bool(self.recipe["scenes"]["fresh"]) and self.recipe["data"]["dataset"].startswith("scenes:")

    def _train_elements(self) -> tf.data.Dataset:
        """Unbatched ``{image, boxes, box_labels}``: fresh scenes without end, or the fixed training scenes."""
        if self._fresh():
            stream = fresh_scene_stream(self.recipe["data"]["dataset"], self.train_scenes.images.shape[1:3],
                                        self.recipe["scenes"], self.recipe["seed"])  # persists across epochs
            return scene_element_dataset(lambda: stream, self.train_scenes.images.shape[1:3])
        scenes = self.train_scenes
        counts = np.array([min(len(b), MAX_BOXES) for b in scenes.boxes], np.int32)
        boxes = np.zeros((len(scenes), MAX_BOXES, 4), np.float32)
        labels = np.zeros((len(scenes), MAX_BOXES), np.int64)
        for i, (b, c) in enumerate(zip(scenes.boxes, scenes.classes, strict=True)):
            boxes[i, : counts[i]], labels[i, : counts[i]] = b[:MAX_BOXES], c[:MAX_BOXES]
        ds = tf.data.Dataset.from_tensor_slices({"image": scenes.images, "boxes": boxes, "box_labels": labels,
                                                 "count": counts})
        ds = ds.shuffle(min(len(scenes), self.recipe["data"]["shuffle_buffer"]), seed=self.recipe["seed"])
        return ds.map(lambda e: {"image": e["image"], "boxes": e["boxes"][: e["count"]],
                                 "box_labels": e["box_labels"][: e["count"]]})

    def _augmented(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        """Scene elements through ``data.augment`` (boxes move with the pixels); as they are without a policy."""
        policy = self.recipe["data"]["augment"]
        if not policy:
            return ds
        from pipelines.augment import augment_dataset
        from pipelines.augment_policy import validate_policy

        try:
            validate_policy(policy)
        except ValueError as err:
            raise UserError(f"data.augment: {err}") from None
        return augment_dataset(ds, policy, self.recipe["seed"])

    def _train_dataset(self, batch_size: int) -> tf.data.Dataset:
        policy = self.recipe["data"]["augment"]
        if not policy and not self._fresh():
            ds = self._dataset(self.train_scenes)
            ds = ds.shuffle(min(len(self.train_scenes), self.recipe["data"]["shuffle_buffer"]), seed=self.recipe["seed"])
            return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        ds = self._augmented(self._train_elements())
        anchors, grid, k = self.anchors, self.grid, self.num_classes
        shape = (grid, grid, len(anchors), 5 + k)

        def targets(boxes, labels):
            return encode_targets(boxes, labels, anchors, grid, k)

        def encode(e):
            y = tf.numpy_function(targets, [e["boxes"], e["box_labels"]], tf.float32)
            return e["image"], tf.ensure_shape(y, shape)

        ds = ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def fit(self, model: keras.Model, inputs: Inputs, callbacks: list) -> keras.callbacks.History:
        return fit_scenes(model, inputs, callbacks, self.recipe, self._fresh())

    def model_options(self, inputs: Inputs) -> dict:
        options = {"anchors": self.anchors.tolist(), **super().model_options(inputs)}
        self.anchors = np.asarray(options["anchors"], np.float32)
        return options

    def build_losses(self):
        det = self.recipe["detection"]
        return YoloLoss(coord=det["coord_weight"], noobj=det["noobj_weight"])

    def _detections(self, model, images, score_threshold: float) -> list[tuple]:
        det = self.recipe["detection"]
        return predict_detections(model, images, self.anchors, self.num_classes, score_threshold,
                                  det["iou_threshold"], det["max_detections"])

    def evaluate(self, model: keras.Model, inputs: Inputs) -> dict[str, float]:
        det = self.recipe["detection"]
        ranked = self._detections(model, self.test_scenes.images, det["eval_score_threshold"])
        metrics = {f"test_{k}": v for k, v in evaluate_detections(self.test_scenes, ranked).items()}
        self._test_detections = [tuple(part[d[1] > det["score_threshold"]] for part in d) for d in ranked]
        metrics["anchor_mean_iou"] = float(inputs.info["anchor_mean_iou"])
        return metrics

    def log_figures(self, model, inputs, history, out_dir: Path) -> list[Path]:
        out = []
        if history:
            out.append(plots.save(plots.training_curves(history), out_dir / "training_curves.png"))
        dets = getattr(self, "_test_detections", None) or self._detections(
            model, self.test_scenes.images[:8], self.recipe["detection"]["score_threshold"])
        out.append(write_png(out_dir / "detections.png", detections_figure(self.test_scenes, dets, inputs.class_names)))
        return out

    def export(self, model, inputs, root, name) -> Path:
        det, anchors, k = self.recipe["detection"], self.anchors, self.num_classes

        def serve(images):
            return detect(model(images, training=False), anchors, k, det["score_threshold"], det["iou_threshold"],
                          det["max_detections"])

        assets = {CLASS_NAMES_FILE: "\n".join(inputs.class_names) + "\n",
                  RECIPE_ASSET: yaml.safe_dump(self.recipe, sort_keys=False),
                  ANCHORS_ASSET: json.dumps(anchors.tolist())}
        return export_image_model(serve, model, root, name, inputs.input_shape[:2], 3, assets, decode=decode_image)
